"""A bare repository on this machine, created with its first commit and read at a ref.

The simulation's config remote is a bare repository in its work dir: it is created here
with the experiment's blueprint as its first commit (no seed clone, nothing to delete
afterwards), and read here as Argo CD reads a repo: the files of one branch's tip, many
in one ``git cat-file --batch``. Like ``ConfigRepo``, every git command runs the git
binary through GitPython, and a failure is a ``GitError`` naming the repository and the
ref, with credentials redacted.

It is created whole or not at all: built in a temporary directory beside its place and
renamed into it, so a process killed half-way leaves no repository without a branch. One
that has lost its branch anyway (an older version killed half-way, the branch deleted)
gets it back from a clone that saw its last tip (:meth:`BareRepo.restore_branch`), or its
first commit again (:meth:`BareRepo.write_first_commit`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import git

from fl_gitops.errors import GitError, InputError
from fl_gitops.gitops._catfile import batch_input, parse_batch
from fl_gitops.gitops._commit import Change, commit_message
from fl_gitops.gitops._credentials import redact
from fl_gitops.gitops._names import check_repo_path

__all__ = ["BareRepo"]

_ERROR_LINES = 12


class BareRepo:
    """A bare repository at ``git_dir`` (a local path)."""

    def __init__(self, git_dir: Path) -> None:
        self.git_dir = Path(git_dir)
        self._git_cmd = git.Git(str(self.git_dir))
        self._git_cmd.update_environment(GIT_DIR=str(self.git_dir))

    @classmethod
    def create(
        cls,
        git_dir: Path,
        *,
        branch: str,
        files: Mapping[str, bytes],
        change: Change,
        user_name: str,
        user_email: str,
    ) -> BareRepo:
        """A new bare repository whose ``branch`` holds one commit of ``files``.

        Args:
            git_dir: where the repository goes; must not exist yet.
            branch: the branch the commit is on (and HEAD names).
            files: repository path -> content.
            change: the commit's message and trailers.
            user_name: the author and committer name.
            user_email: the author and committer email.

        Raises:
            InputError: ``git_dir`` exists, or a path is outside the repository.
            GitError: git failed.
        """
        git_dir = Path(git_dir)
        if git_dir.exists():
            raise InputError(f"{git_dir}: already exists; expected a new bare repository")
        paths = {check_repo_path(p): data for p, data in files.items()}
        git_dir.parent.mkdir(parents=True, exist_ok=True)
        for stale in git_dir.parent.glob(f".{git_dir.name}.new-*"):
            shutil.rmtree(stale, ignore_errors=True)  # what a killed create left
        building = Path(tempfile.mkdtemp(prefix=f".{git_dir.name}.new-", dir=git_dir.parent))
        try:
            try:
                git.Git(str(building.parent)).init("-q", "--bare", "-b", branch, str(building))
            except git.GitCommandError as exc:
                raise GitError(f"git init failed in {git_dir}: {_stderr(exc)}") from None
            cls(building)._write_commit(branch, paths, change, user_name, user_email)
            os.rename(building, git_dir)
        except BaseException:
            shutil.rmtree(building, ignore_errors=True)
            raise
        return cls(git_dir)

    def branch_tip(self, branch: str) -> str | None:
        """The sha ``branch`` points at; None when the repository has no such branch."""
        status, out, _err = self._git_cmd.execute(
            ["git", "rev-parse", "--verify", "-q", f"refs/heads/{branch}^{{commit}}"],
            with_extended_output=True,
            with_exceptions=False,
        )
        sha = str(out).strip()
        return sha if status == 0 and sha else None

    def write_first_commit(
        self,
        branch: str,
        *,
        files: Mapping[str, bytes],
        change: Change,
        user_name: str,
        user_email: str,
    ) -> str:
        """Make ``branch`` (which must not exist) hold one commit of ``files``; its sha.

        Raises:
            InputError: the branch exists, or a path is outside the repository.
            GitError: git failed.
        """
        if self.branch_tip(branch) is not None:
            raise InputError(f"{self.git_dir}: branch {branch} exists already")
        paths = {check_repo_path(p): data for p, data in files.items()}
        return self._write_commit(branch, paths, change, user_name, user_email)

    def restore_branch(self, branch: str, clone: Path) -> str | None:
        """Put back a missing ``branch`` at the tip the clone at ``clone`` last saw of it.

        The clone's remote-tracking ref (what the last fetch or push saw) is preferred to
        its local branch (which may hold a commit never pushed). The branch is only ever
        created, never moved.

        Returns:
            The restored tip, or None when the clone has neither ref (or is not there).

        Raises:
            GitError: git failed.
        """
        if self.branch_tip(branch) is not None:
            raise InputError(f"{self.git_dir}: branch {branch} exists already")
        source = Path(clone)
        if not (source / ".git").is_dir():
            return None
        for ref in (f"refs/remotes/origin/{branch}", f"refs/heads/{branch}"):
            status, _out, _err = self._git_cmd.execute(
                ["git", "fetch", "-q", "--no-tags", str(source), f"{ref}:refs/heads/{branch}"],
                with_extended_output=True,
                with_exceptions=False,
            )
            if status == 0:
                return self.branch_tip(branch)
        return None

    def _write_commit(
        self,
        branch: str,
        paths: Mapping[str, bytes],
        change: Change,
        user_name: str,
        user_email: str,
    ) -> str:
        with tempfile.TemporaryDirectory(prefix="fl-gitops-index-") as tmp:
            index = {"GIT_INDEX_FILE": os.path.join(tmp, "index")}
            for path, data in sorted(paths.items()):
                blob = self._run("hash-object", "-w", "--stdin", input=data).strip()
                self._run(
                    "update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=index
                )
            tree = self._run("write-tree", env=index).strip()
        identity = {
            "GIT_AUTHOR_NAME": user_name,
            "GIT_AUTHOR_EMAIL": user_email,
            "GIT_COMMITTER_NAME": user_name,
            "GIT_COMMITTER_EMAIL": user_email,
        }
        message = commit_message(change).encode()
        commit = str(self._run("commit-tree", tree, input=message, env=identity)).strip()
        # "" as the old value: create the branch, never move one that appeared meanwhile.
        self._run("update-ref", f"refs/heads/{branch}", commit, "")
        return commit

    def read_blobs(self, ref: str, paths: Sequence[str]) -> list[bytes | None]:
        """The content of each path at ``ref`` (None: not there), in one ``git cat-file``.

        Raises:
            InputError: a path outside the repository.
            GitError: git failed.
        """
        if not paths:
            return []
        out = self._run("cat-file", "--batch", input=batch_input(ref, paths))
        return parse_batch(out if isinstance(out, bytes) else out.encode(), len(paths))

    def _run(
        self, cmd: str, *args: str, input: bytes | None = None, env: dict[str, str] | None = None
    ) -> Any:
        """One git command; its stdout (bytes for ``cat-file``), or GitError."""
        try:
            if input is None:
                return getattr(self._git_cmd, cmd.replace("-", "_"))(
                    *args, env=env, strip_newline_in_stdout=False
                )
            with tempfile.TemporaryFile() as stdin:
                stdin.write(input)
                stdin.seek(0)
                return self._git_cmd.execute(
                    ["git", cmd, *args],
                    istream=stdin,
                    env=env,
                    strip_newline_in_stdout=False,
                    stdout_as_string=cmd != "cat-file",
                )
        except git.GitCommandError as exc:
            raise GitError(f"git {cmd} failed in {self.git_dir}: {_stderr(exc)}") from None


def _stderr(exc: git.GitCommandError) -> str:
    stderr = exc.stderr if isinstance(exc.stderr, str) else str(exc.stderr or "")
    stderr = stderr.strip().removeprefix("stderr:").strip().strip("'")
    lines = [line for line in stderr.splitlines() if line.strip()]
    return redact("\n".join(lines[-_ERROR_LINES:]), ())
