"""Opening pull (merge) requests through a forge's REST API: GitHub and GitLab.

Pull-request mode pushes each round to its own branch; when the blueprint names a forge and
a token is mounted, this module opens the PR (GitHub) or MR (GitLab) for that branch, or
finds the one already open so that a round never gets two. Plain ``urllib`` with timeouts:
no new dependency. HTTP failures become ``GitError`` with a trimmed response body; the
token travels only in a request header and is redacted from every message.

The shapes follow the forges' REST documentation:

- GitHub: ``GET /repos/{owner}/{repo}/pulls?head={owner}:{branch}&state=open`` lists,
  ``POST /repos/{owner}/{repo}/pulls`` with ``title``, ``head``, ``base``, ``body`` creates
  (201, ``html_url``; 422 when one already exists); ``Authorization: Bearer <token>``.
- GitLab: ``GET /projects/{id}/merge_requests?source_branch=..&target_branch=..&state=opened``
  lists, ``POST /projects/{id}/merge_requests`` with ``source_branch``, ``target_branch``,
  ``title``, ``description`` creates (201, ``web_url``; 409 when one already exists);
  ``PRIVATE-TOKEN: <token>``; ``{id}`` is the URL-encoded project path or its number.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fl_gitops.errors import GitError, InputError
from fl_gitops.gitops._credentials import CREDENTIALS_DIR_ENV, TOKEN_ENV, redact

__all__ = [
    "FORGES",
    "FORGE_TOKEN_DIR_ENV",
    "FORGE_TOKEN_ENV",
    "PullRequest",
    "PullRequestSpec",
    "ensure_pull_request",
]

FORGES = ("github", "gitlab")
FORGE_TOKEN_ENV = "FL_FORGE_TOKEN"
FORGE_TOKEN_DIR_ENV = "FL_FORGE_TOKEN_DIR"
DEFAULT_API_URLS = {"github": "https://api.github.com", "gitlab": "https://gitlab.com/api/v4"}
_BODY_LIMIT = 300


@dataclass(frozen=True)
class PullRequestSpec:
    """Where and how to open the PR for a round branch.

    Attributes:
        forge: ``"github"``, ``"gitlab"``, or None to push the branch only.
        repository: ``owner/name`` (GitHub) or the project path or numeric id (GitLab);
            empty means "take it from the remote URL".
        token: the forge API token (left out of ``repr``); None pushes the branch only.
        api_url: the API root; None means the public forge.
        timeout: seconds per HTTP request.
    """

    forge: str | None = None
    repository: str = ""
    token: str | None = field(default=None, repr=False)
    api_url: str | None = None
    timeout: float = 15.0

    def __post_init__(self) -> None:
        if self.forge is not None and self.forge not in FORGES:
            raise InputError(
                f"pull request forge {self.forge!r}: expected one of {', '.join(FORGES)}"
            )

    @classmethod
    def from_environment(
        cls,
        environ: Mapping[str, str],
        *,
        forge: str | None,
        repository: str = "",
        api_url: str | None = None,
    ) -> PullRequestSpec:
        """Build a spec whose token comes from the environment or a mounted Secret.

        The token is the first of: ``FL_FORGE_TOKEN``; the file ``token`` in
        ``FL_FORGE_TOKEN_DIR`` (the blueprint's ``tokenSecretRef``, mounted); the file
        ``forge-token``, ``token`` or ``password`` in ``FL_GIT_CREDENTIALS_DIR``;
        ``FL_GIT_TOKEN``. One GitHub or GitLab token often serves both git and the API.
        """
        token = environ.get(FORGE_TOKEN_ENV) or None
        candidates: list[tuple[str | None, tuple[str, ...]]] = [
            (environ.get(FORGE_TOKEN_DIR_ENV), ("token",)),
            (environ.get(CREDENTIALS_DIR_ENV), ("forge-token", "token", "password")),
        ]
        for directory, names in candidates:
            for name in names if directory and token is None else ():
                path = os.path.join(str(directory), name)
                if os.path.isfile(path):
                    with open(path, encoding="utf-8") as fh:
                        token = fh.read().strip() or None
                    if token:
                        break
        token = token or environ.get(TOKEN_ENV) or None
        return cls(forge=forge, repository=repository, token=token, api_url=api_url)

    @classmethod
    def from_blueprint(
        cls, pull_request: Mapping[str, Any], environ: Mapping[str, str]
    ) -> PullRequestSpec:
        """The spec for a blueprint's ``spec.gitops.pullRequest`` block.

        Reads ``forge`` (``github``, ``gitlab`` or ``none``), ``project`` and ``apiUrl``;
        the token comes from the environment as in :meth:`from_environment`.

        Raises:
            InputError: an unknown forge.
        """
        forge = pull_request.get("forge") or None
        return cls.from_environment(
            environ,
            forge=None if forge == "none" else forge,
            repository=str(pull_request.get("project") or ""),
            api_url=pull_request.get("apiUrl") or None,
        )


@dataclass(frozen=True)
class PullRequest:
    """An open PR or MR: its web URL, number (GitHub) or iid (GitLab), and whether new."""

    url: str
    number: int
    created: bool


def ensure_pull_request(
    spec: PullRequestSpec,
    *,
    repository: str,
    head: str,
    base: str,
    title: str,
    body: str,
) -> PullRequest:
    """Find the open PR from ``head`` into ``base``, or open one.

    A create that the forge refuses because the PR already exists (another reconciler won
    the race) is answered by looking it up again: never two PRs for one branch.

    Raises:
        InputError: no repository could be determined.
        GitError: the forge answered with an error or could not be reached.
    """
    if spec.forge is None or not spec.token:
        raise InputError("pull request: a forge and a token are needed to open a PR")
    if not repository:
        raise InputError(f"pull request: the {spec.forge} repository is unknown; set it explicitly")
    api = _ForgeClient(spec)
    if spec.forge == "github":
        return _github(api, repository, head, base, title, body)
    return _gitlab(api, repository, head, base, title, body)


def _github(
    api: _ForgeClient, repository: str, head: str, base: str, title: str, body: str
) -> PullRequest:
    owner = repository.split("/", 1)[0]
    path = f"/repos/{repository}/pulls"

    def find() -> PullRequest | None:
        query = urllib.parse.urlencode({"head": f"{owner}:{head}", "base": base, "state": "open"})
        found = api.request("GET", f"{path}?{query}")
        for pr in found if isinstance(found, list) else []:
            if pr.get("head", {}).get("ref", head) == head:
                return PullRequest(url=str(pr["html_url"]), number=int(pr["number"]), created=False)
        return None

    def create() -> PullRequest:
        payload = {"title": title, "head": head, "base": base, "body": body}
        pr = api.request("POST", path, payload)
        return PullRequest(url=str(pr["html_url"]), number=int(pr["number"]), created=True)

    # 422: "A pull request already exists for ..."
    return _find_or_create(find, create, exists_status=422)


def _gitlab(
    api: _ForgeClient, repository: str, head: str, base: str, title: str, body: str
) -> PullRequest:
    project = urllib.parse.quote(repository, safe="")
    path = f"/projects/{project}/merge_requests"

    def find() -> PullRequest | None:
        query = urllib.parse.urlencode(
            {"source_branch": head, "target_branch": base, "state": "opened"}
        )
        found = api.request("GET", f"{path}?{query}")
        for mr in found if isinstance(found, list) else []:
            if mr.get("source_branch", head) == head:
                return PullRequest(url=str(mr["web_url"]), number=int(mr["iid"]), created=False)
        return None

    def create() -> PullRequest:
        payload = {
            "source_branch": head,
            "target_branch": base,
            "title": title,
            "description": body,
        }
        mr = api.request("POST", path, payload)
        return PullRequest(url=str(mr["web_url"]), number=int(mr["iid"]), created=True)

    # 409: "Another open merge request already exists ..."
    return _find_or_create(find, create, exists_status=409)


def _find_or_create(
    find: Callable[[], PullRequest | None],
    create: Callable[[], PullRequest],
    *,
    exists_status: int,
) -> PullRequest:
    """The open PR if there is one, else a new one; a create refused with ``exists_status``
    (another writer opened it between our look and our create) is answered by looking again."""
    existing = find()
    if existing:
        return existing
    try:
        return create()
    except _HTTPStatusError as exc:
        if exc.status == exists_status:
            again = find()
            if again:
                return again
        raise


class _HTTPStatusError(GitError):
    """A forge answered with an HTTP error status (kept to tell "already exists" apart)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class _ForgeClient:
    def __init__(self, spec: PullRequestSpec) -> None:
        assert spec.forge is not None and spec.token
        self.forge = spec.forge
        self.base = (spec.api_url or DEFAULT_API_URLS[spec.forge]).rstrip("/")
        self.token = spec.token
        self.timeout = spec.timeout

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "fl-gitops"}
        if self.forge == "github":
            headers["Accept"] = "application/vnd.github+json"
            headers["Authorization"] = f"Bearer {self.token}"
            headers["X-GitHub-Api-Version"] = "2022-11-28"
        else:
            headers["PRIVATE-TOKEN"] = self.token
        return headers

    def request(self, method: str, path: str, payload: Mapping[str, Any] | None = None) -> Any:
        url = self.base + path
        data = None
        headers = self._headers()
        if payload is not None:
            data = json.dumps(payload).encode("utf-8")
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        where = f"{self.forge}: {method} {path.split('?', 1)[0]}"
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            body = exc.read().decode("utf-8", "replace")
            text = " ".join(body.split())[:_BODY_LIMIT]
            message = redact(f"{where} failed: HTTP {exc.code}: {text}", (self.token,))
            raise _HTTPStatusError(exc.code, message) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            message = redact(f"{where} failed: cannot reach {self.base}: {reason}", (self.token,))
            raise GitError(message) from None
        try:
            return json.loads(raw.decode("utf-8")) if raw else None
        except ValueError:
            raise GitError(f"{where}: the answer is not JSON") from None
