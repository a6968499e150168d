"""Names that must be right before git sees them: PR branch names, repo URLs, repo paths.

Pure functions: they validate user-facing values and raise ``InputError`` that names the
value and what was expected.
"""

from __future__ import annotations

import re
import urllib.parse
from pathlib import Path, PurePosixPath

from fl_gitops.errors import InputError

__all__ = [
    "check_repo_path",
    "display_url",
    "normalize_url",
    "repository_from_url",
    "round_branch_name",
]

BRANCH_PREFIX = "fl-gitops"
# An experiment name is a Kubernetes object name (DNS label); safe as a ref component.
_EXPERIMENT_RE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_SCP_LIKE_RE = re.compile(r"(?P<user>[^@/:\s]+@)?(?P<host>[^@/:\s]{2,}):(?P<path>[^/].*|/.*)")
_SCHEMES = ("file", "https", "http", "ssh", "git+ssh", "ssh+git")


def round_branch_name(experiment: str, round_number: int) -> str:
    """The pull-request branch for one round: ``fl-gitops/<exp>/round-<N>``.

    Deterministic, so that every reconciler working on the same round pushes to the same
    branch and an existing branch (or PR) is found again.

    Raises:
        InputError: the experiment is not a DNS label, or the round is not a positive int.
    """
    if not _EXPERIMENT_RE.fullmatch(experiment):
        raise InputError(
            f"experiment name {experiment!r}: expected a DNS label "
            "(lowercase letters, digits and '-', at most 63 characters)"
        )
    if isinstance(round_number, bool) or not isinstance(round_number, int) or round_number < 1:
        raise InputError(f"round number {round_number!r}: expected an integer >= 1")
    return f"{BRANCH_PREFIX}/{experiment}/round-{round_number}"


def normalize_url(url: str) -> str:
    """Check a config repo URL and make a local path absolute.

    Accepts a local path, ``file://``, ``https://`` (or ``http://``), ``ssh://`` and scp-like
    ``user@host:path``.

    Raises:
        InputError: another scheme, or a password in the URL (credentials belong in
            ``FL_GIT_TOKEN`` or a mounted Secret, not in a URL that git would store).
    """
    text = url.strip()
    if not text:
        raise InputError("repo URL: expected a path or URL, got an empty string")
    if "://" in text:
        parts = urllib.parse.urlsplit(text)
        if parts.scheme.lower() not in _SCHEMES:
            raise InputError(
                f"repo URL {display_url(text)}: expected a local path, file://, https:// or ssh URL"
            )
        if parts.password is not None:
            raise InputError(
                f"repo URL {display_url(text)}: carries a password; put the token in "
                "FL_GIT_TOKEN or a mounted Secret (FL_GIT_CREDENTIALS_DIR) instead"
            )
        return text
    if "::" in text:  # git's transport::address syntax (ext::, fd::)
        raise InputError(f"repo URL {text}: expected a local path, file://, https:// or ssh URL")
    if _SCP_LIKE_RE.fullmatch(text) and not Path(text).exists():
        return text
    return str(Path(text).expanduser().resolve())


def display_url(url: str) -> str:
    """The URL with any ``user:password@`` reduced to ``user@``: safe to print."""
    if "://" not in url:
        return url
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def repository_from_url(url: str) -> str | None:
    """``owner/name`` (GitHub) or ``group/sub/name`` (GitLab) from a remote URL, if any."""
    if "://" in url:
        path = urllib.parse.urlsplit(url).path
    else:
        match = _SCP_LIKE_RE.fullmatch(url)
        if not match:
            return None
        path = match["path"]
    path = path.strip("/")
    if path.endswith(".git"):
        path = path[: -len(".git")]
    return path if "/" in path else None


def check_repo_path(path: str) -> str:
    """A path inside the repo, relative and without ``..``, in POSIX form.

    Raises:
        InputError: an absolute path, one that leaves the repo, or an empty one.
    """
    pure = PurePosixPath(path.replace("\\", "/"))
    if not path or pure.is_absolute() or ".." in pure.parts or str(pure) in ("", "."):
        raise InputError(f"repo path {path!r}: expected a relative path inside the repository")
    return str(pure)
