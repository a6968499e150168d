"""The config repo read for an audit: every commit of an experiment, its signature, its files.

``fl-gitops verify`` rebuilds an experiment from its history alone, so it needs more of
each commit than ``ConfigRepo.log`` gives: the parents, the paths it touched (added,
changed or deleted), the status of its signature against an allowed-signers file the
auditor brings, and the experiment's files as they were at that commit. Git reports an
SSH signature as ``%G?`` (``G`` good and allowed, ``U`` good but the key is not an
allowed signer, ``B`` bad, ``N`` none, ``E`` not checkable), ``%GK`` (the key's
fingerprint) and ``%GS`` (the principal the allowed-signers file gives that key).

Like the rest of ``gitops/``, git runs through GitPython's ``repo.git`` and a failure is a
``GitError`` naming the repository, never a commit's content.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import git

from fl_gitops.errors import GitError, InputError
from fl_gitops.gitops._catfile import batch_input, parse_batch
from fl_gitops.gitops._commit import parse_trailers
from fl_gitops.gitops._credentials import redact
from fl_gitops.gitops._names import check_repo_path

__all__ = ["AuditCommit", "HistoryReader", "Signature"]

_ERROR_LINES = 12
# What of a signature may be shown: a key fingerprint and an allowed signer's principal.
_FINGERPRINT_RE = re.compile(r"SHA256:[A-Za-z0-9+/]{43}")
_PRINCIPAL_RE = re.compile(r"[A-Za-z0-9@._+*-]{1,128}")
_STATUSES = frozenset("GBUXYREN")


@dataclass(frozen=True)
class Signature:
    """A commit's signature as git judged it against the allowed signers.

    Attributes:
        status: git's ``%G?`` letter (``G`` good and allowed, ``N`` none ...).
        key: the signing key's fingerprint (``SHA256:...``), or "" if none or unreadable.
        signer: the allowed signer's principal for that key, or "".
    """

    status: str
    key: str = ""
    signer: str = ""

    @property
    def good(self) -> bool:
        """Signed, intact, and by a key the allowed-signers file lists."""
        return self.status == "G"


@dataclass(frozen=True)
class AuditCommit:
    """One commit that touched the experiment, as an audit reads it.

    Attributes:
        sha: the full commit id.
        parents: the parents' ids (none for a root commit).
        author: ``name <email>``, as git records it.
        committed_at: the committer date.
        trailers: the message's ``Key: value`` trailers.
        paths: the repository paths the commit added, changed or deleted under the
            experiment (against its first parent).
        signature: the signature's status, or None when signatures were not checked.
    """

    sha: str
    parents: tuple[str, ...]
    author: str
    committed_at: datetime
    trailers: dict[str, str]
    paths: tuple[str, ...]
    signature: Signature | None = None


class HistoryReader:
    """Reads a local clone (or bare repository) of the config repo for an audit.

    Args:
        root: the work tree of a clone, or a bare repository.
        allowed_signers: an SSH allowed-signers file (``gpg.ssh.allowedSignersFile``);
            None reads no signature at all.

    Raises:
        InputError: ``root`` is not a git repository, or the allowed-signers file is
            not a readable file.
    """

    def __init__(self, root: Path, *, allowed_signers: Path | None = None) -> None:
        self.root = Path(root)
        try:
            repo = git.Repo(self.root)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise InputError(f"{self.root}: not a git repository") from None
        self._git_cmd = repo.git
        self.allowed_signers = None
        if allowed_signers is not None:
            allowed = Path(allowed_signers)
            if not allowed.is_file() or not os.access(allowed, os.R_OK):
                raise InputError(
                    f"--allowed-signers {allowed}: expected a readable allowed_signers file"
                )
            self.allowed_signers = allowed.resolve()

    def commits(self, path: str, *, ref: str = "HEAD") -> list[AuditCommit]:
        """Every commit at ``ref`` that touched ``path``, oldest first (parents first).

        Raises:
            InputError: a path outside the repository.
            GitError: git failed (an unknown ref, a broken repository).
        """
        path = check_repo_path(path)
        fields = ["%H", "%P", "%an <%ae>", "%cI"]
        if self.allowed_signers is not None:
            fields += ["%G?", "%GK", "%GS"]
        fmt = "%x1e" + "%x1f".join([*fields, "%(trailers:only,unfold)"]) + "%x1d"
        out = self._run(
            "log",
            "--reverse",
            "--topo-order",
            "-z",
            "--name-only",
            "--no-renames",
            f"--format={fmt}",
            ref,
            "--",
            path,
        )
        commits = []
        for chunk in str(out).split("\x1e"):
            if not chunk.strip("\0\n"):
                continue
            head, _, names = chunk.partition("\x1d")
            parts = head.split("\x1f")
            sha, parents, author, when = parts[:4]
            signature = None
            if self.allowed_signers is not None:
                signature = _signature(*parts[4:7])
            touched = tuple(n for n in names.strip("\n").split("\0") if n.strip("\n"))
            commits.append(
                AuditCommit(
                    sha=sha,
                    parents=tuple(parents.split()),
                    author=author,
                    committed_at=datetime.fromisoformat(when),
                    trailers=parse_trailers(parts[-1]),
                    paths=tuple(n.strip("\n") for n in touched),
                    signature=signature,
                )
            )
        return commits

    def read_files(self, sha: str, paths: Sequence[str]) -> list[bytes | None]:
        """The content of each path at commit ``sha`` (None: not there), in one cat-file.

        Raises:
            InputError: a path outside the repository.
            GitError: git failed.
        """
        if not paths:
            return []
        data = self._run("cat-file", "--batch", input=batch_input(sha, paths))
        assert isinstance(data, bytes)
        return parse_batch(data, len(paths))

    def _run(self, cmd: str, *args: str, input: bytes | None = None) -> Any:
        """One git command; its stdout (bytes for ``cat-file``), or GitError."""
        config: list[str] = []
        if self.allowed_signers is not None:
            config = [
                "-c",
                "gpg.format=ssh",
                "-c",
                f"gpg.ssh.allowedSignersFile={self.allowed_signers}",
            ]
        try:
            with tempfile.TemporaryFile() as stdin:
                if input is not None:
                    stdin.write(input)
                    stdin.seek(0)
                return self._git_cmd.execute(
                    ["git", *config, cmd, *args],
                    istream=stdin,
                    strip_newline_in_stdout=False,
                    stdout_as_string=cmd != "cat-file",
                )
        except git.GitCommandError as exc:
            stderr = exc.stderr if isinstance(exc.stderr, str) else str(exc.stderr or "")
            stderr = stderr.strip().removeprefix("stderr:").strip().strip("'")
            lines = [line for line in stderr.splitlines() if line.strip()]
            tail = redact("\n".join(lines[-_ERROR_LINES:]), ())
            raise GitError(f"git {cmd} failed in {self.root}: {tail}") from None


def _signature(status: str, key: str, signer: str) -> Signature:
    """A signature with only what may be shown: git's letter, a fingerprint, a principal."""
    status = status.strip()
    return Signature(
        status=status if status in _STATUSES else "E",
        key=key if _FINGERPRINT_RE.fullmatch(key) else "",
        signer=signer if _PRINCIPAL_RE.fullmatch(signer) else "",
    )
