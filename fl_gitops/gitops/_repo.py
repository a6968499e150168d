"""The config repo as the reconcile job uses it: sync, derive, commit if changed, push.

Git is the only record of which round an experiment is in, so writing to it follows a few
strict rules (the ones Argo CD Image Updater and Kargo follow when they write back):

- every pass starts from the remote tip exactly (fetch, hard reset, clean), so a local
  commit that never reached the remote (a pass killed before its push) is dropped and
  derived again;
- a derive step that changes nothing makes no commit;
- a rejected push is answered by fetching, deriving again from the new tip and retrying,
  a bounded number of times with backoff; the target branch is never force-pushed, so
  history stays linear and every old tip stays an ancestor of the new one;
- in pull-request mode each round goes to its own deterministic branch, an existing branch
  holding the same change is reused, and a forge PR is opened once.

Every local git operation runs the git binary through GitPython's ``repo.git`` (its
pure-Python index is several times slower on large trees). Errors are ``GitError`` naming
the branch and the remote, with credentials redacted.

A pass must end, whatever the remote does (the CronJob forbids overlapping runs, so a
hung pass would skip every later one):

- every network call (fetch, push) runs in its own process group under a timeout and is
  killed with its helpers (``git-remote-http``, ``ssh``) when it runs out; curl gives up
  on a transfer stalled below one byte a second, ssh on a silent connection;
- the work dir is a cache with one owner at a time: a file lock beside it
  (``.<name>.lock``) is held from ``open`` to ``close``, and a second pass waits for it,
  a bounded time; holding it, the locks a killed git left inside ``.git`` are removed;
- a work dir git can no longer read (a corrupt object, index or HEAD) is removed and
  cloned again, when it is a clone of the same remote (it holds nothing the remote lacks);
- a ref lock left on the remote by a killed git is reported as the lock it is.

With a signing key every commit the pass makes is signed (``_signing.py``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import git

from fl_gitops.errors import GitError, InputError
from fl_gitops.gitops._commit import Change, CommitInfo, commit_message, parse_trailers
from fl_gitops.gitops._credentials import Credentials, GitAuth, redact
from fl_gitops.gitops._forge import PullRequestSpec, ensure_pull_request
from fl_gitops.gitops._names import (
    check_repo_path,
    display_url,
    normalize_url,
    repository_from_url,
)
from fl_gitops.gitops._signing import SigningKey, config_env, signing_config

__all__ = [
    "DEFAULT_LOCK_TIMEOUT",
    "DEFAULT_NETWORK_TIMEOUT",
    "DEFAULT_USER_EMAIL",
    "DEFAULT_USER_NAME",
    "MODES",
    "ConfigRepo",
    "PublishHooks",
    "PublishResult",
    "default_backoff",
    "remember_signing_key",
]

DEFAULT_USER_NAME = "fl-gitops"
DEFAULT_USER_EMAIL = "fl-gitops@localhost"
MODES = ("direct", "pull-request")
REMOTE = "origin"

# What a push answer says when another writer got there first. "[rejected]" covers
# non-fast-forward, fetch first and a failed lease (stale info); the "[remote rejected]"
# reasons are a server losing its own compare-and-swap on the ref in a close race.
_RACE_MARKERS = (
    "cannot lock ref",
    "failed to update ref",
    "but expected",
    "incorrect old value",
)
_ERROR_LINES = 12

#: Seconds one fetch or push may take before it is killed.
DEFAULT_NETWORK_TIMEOUT = 120.0
#: Seconds a pass waits for another pass to let go of a shared work dir.
DEFAULT_LOCK_TIMEOUT = 120.0
# curl aborts a transfer slower than _LOW_SPEED_LIMIT bytes/s for this many seconds.
_LOW_SPEED_LIMIT = 1
_LOW_SPEED_TIME = 60
# Where a clone remembers the key it signs with (what `simulate` sets for its reconciler).
_SIGNING_KEY_CONFIG = "fl-gitops.signingKey"
# What git says when a ref's lock file is already there.
_REF_LOCK_RE = re.compile(r"Unable to create '(?P<lock>[^']+\.lock)': File exists")


def default_backoff(attempt: int) -> float:
    """Seconds to wait after the ``attempt``-th rejected push: 0.5, 1, 2, 4, 8, 8..."""
    return float(min(0.5 * 2 ** (attempt - 1), 8.0))


@dataclass(frozen=True)
class PublishHooks:
    """Callbacks at the two points where a kill matters (fault-injection tests raise here).

    ``after_commit`` runs once the local commit exists and before it is pushed;
    ``after_push`` runs once the remote has it.
    """

    after_commit: Callable[[], None] | None = None
    after_push: Callable[[], None] | None = None


@dataclass(frozen=True)
class PublishResult:
    """What a publish did.

    Attributes:
        commit: the commit that now carries the change; None when there was nothing to do.
        pushed: whether this call pushed (False: nothing changed, or a PR branch reused).
        attempts: passes through the sync-derive-push loop (1 when nobody raced).
        branch: where the change went: the target branch, or the PR branch.
        pull_request_url: the forge PR or MR, when one was opened or found.
    """

    commit: str | None
    pushed: bool
    attempts: int
    branch: str
    pull_request_url: str | None = None


class ConfigRepo:
    """A work tree of the config repo, synced to one branch of one remote.

    One ConfigRepo owns its work dir, through the file lock beside it: a second writer on
    the same work dir waits for the first to close (they may share the remote; that is
    what the push retry is for).
    """

    def __init__(
        self,
        repo: git.Repo,
        *,
        url: str,
        branch: str,
        auth: GitAuth,
        user_name: str,
        user_email: str,
        signing_key: SigningKey | None = None,
        network_timeout: float = DEFAULT_NETWORK_TIMEOUT,
    ) -> None:
        self._repo = repo
        self._auth = auth
        self.url = url
        self.branch = branch
        self.root = Path(repo.working_tree_dir or ".")
        self.user_name = user_name
        self.user_email = user_email
        self.signing_key = signing_key
        self.network_timeout = network_timeout
        self._lock: _WorkdirLock | None = None
        self._workdir = self.root
        self._lock_timeout = DEFAULT_LOCK_TIMEOUT
        self._ref_lock: str | None = None

    # ------------------------------------------------------------------ opening

    @classmethod
    def open(
        cls,
        url: str,
        *,
        branch: str,
        workdir: Path,
        credentials: Credentials | None = None,
        user_name: str = DEFAULT_USER_NAME,
        user_email: str = DEFAULT_USER_EMAIL,
        signing_key: SigningKey | None = None,
        network_timeout: float = DEFAULT_NETWORK_TIMEOUT,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    ) -> ConfigRepo:
        """Clone the repo into ``workdir`` (or fetch, if it is already there) and sync.

        Args:
            url: a local path, ``file://``, ``https://`` or ssh (``user@host:path``) URL.
            branch: the target branch (e.g. ``main``).
            workdir: where the work tree lives; created if absent.
            credentials: for https or ssh; None for a local remote or ambient auth.
            user_name: the commit author and committer name.
            user_email: the commit author and committer email.
            signing_key: signs every commit; None: the key the clone remembers
                (:func:`remember_signing_key`), if any, else commits are not signed.
            network_timeout: seconds one fetch or push may take before it is killed.
            lock_timeout: seconds to wait for another pass using the same work dir.

        Raises:
            InputError: a bad URL or branch name, or a work dir that is something else.
            GitError: the remote cannot be read, or has no such branch; a network call
                timed out; the work dir stayed in use for ``lock_timeout``.
        """
        url = normalize_url(url)
        _check_branch_name(branch)
        if network_timeout <= 0:
            raise InputError(f"network timeout {network_timeout}: expected a positive number")
        workdir = Path(workdir)
        lock = _WorkdirLock.acquire(workdir, lock_timeout)
        try:
            try:
                self = cls._open_locked(
                    url, branch, workdir, credentials, user_name, user_email,
                    signing_key, network_timeout,
                )  # fmt: skip
            except (GitError, _Unreadable) as exc:
                # A clone git can no longer read is a cache gone bad: clone it again.
                if not _is_own_clone(workdir, url) or not _unhealthy(workdir, exc):
                    if isinstance(exc, _Unreadable):
                        raise exc.refused from None
                    raise
                remembered = signing_key or _remembered_key(workdir)
                shutil.rmtree(workdir)
                self = cls._open_locked(
                    url, branch, workdir, credentials, user_name, user_email,
                    remembered, network_timeout,
                )  # fmt: skip
                if remembered is not None and signing_key is None:
                    remember_signing_key(workdir, remembered.path)
        except BaseException:
            lock.release()
            raise
        self._lock = lock
        self._workdir = workdir
        self._lock_timeout = lock_timeout
        return self

    @contextlib.contextmanager
    def idle(self) -> Iterator[None]:
        """Let go of the work dir while this process waits between passes.

        A ``reconcile --watch`` holds its clone for days; without this, a pass run by hand
        (or a CronJob run) on the same cache waited its lock timeout and failed. Inside the
        block another process may use, move or even re-clone the work tree, so the next
        pass must start with :meth:`sync`, as every pass does; on the way out the lock is
        taken back (waiting up to the open's ``lock_timeout``) and git lock files that a
        killed process left are removed, as at open.

        Raises:
            GitError: on the way out, the work dir stayed in use for ``lock_timeout``.
        """
        if self._lock is None:
            yield
            return
        self._repo.close()  # git's long-lived helpers would outlive a re-cloned tree
        self._lock.release()
        self._lock = None
        try:
            yield
        finally:
            self._lock = _WorkdirLock.acquire(self._workdir, self._lock_timeout)
            _remove_stale_locks(self._workdir / ".git")

    @classmethod
    def _open_locked(
        cls,
        url: str,
        branch: str,
        workdir: Path,
        credentials: Credentials | None,
        user_name: str,
        user_email: str,
        signing_key: SigningKey | None,
        network_timeout: float,
    ) -> ConfigRepo:
        refused = InputError(f"workdir {workdir}: expected an empty directory or a git work tree")
        if (workdir / ".git").is_dir():
            try:
                repo = git.Repo(workdir)
            except (git.InvalidGitRepositoryError, git.NoSuchPathError):
                raise _Unreadable(refused) from None
        elif workdir.exists() and (not workdir.is_dir() or any(workdir.iterdir())):
            raise refused
        else:
            workdir.mkdir(parents=True, exist_ok=True)
            try:
                repo = git.Repo.init(workdir)
            except git.GitCommandError as exc:
                raise GitError(f"git init failed in {workdir}: {exc.stderr}") from None
        # This work dir has one owner (the lock beside it), so a lock a git killed
        # mid-command left inside it is stale.
        _remove_stale_locks(workdir / ".git")
        if signing_key is None:
            signing_key = _remembered_key(workdir)
        auth = GitAuth(credentials)
        repo.git.update_environment(**auth.env)
        self = cls(
            repo,
            url=url,
            branch=branch,
            auth=auth,
            user_name=user_name,
            user_email=user_email,
            signing_key=signing_key,
            network_timeout=network_timeout,
        )
        try:
            if REMOTE in [r.name for r in repo.remotes]:
                self._git("remote", "set-url", REMOTE, url)
            else:
                self._git("remote", "add", REMOTE, url)
            self.sync()
        except BaseException:
            self._close_repo()
            raise
        return self

    def close(self) -> None:
        """Remove the private credential files, let go of the work dir (also done when the
        object is collected, or when the process exits)."""
        self._close_repo()
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def _close_repo(self) -> None:
        self._auth.close()
        self._repo.close()

    def __enter__(self) -> ConfigRepo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ reading

    def sync(self) -> str:
        """Fetch and check out ``origin/<branch>`` exactly; return the tip's sha.

        Local commits and changes are discarded and untracked files removed, except files
        the repo's ``.gitignore`` ignores (caches). The start of every pass.

        Raises:
            GitError: the fetch failed or the branch does not exist on the remote.
        """
        if not self._fetch_branch(self.branch):
            raise GitError(f"branch {self.branch} not found on {self._remote_name()}")
        self._checkout_target()
        return self.head()

    def head(self) -> str:
        """The sha of the checked-out commit."""
        return self._git("rev-parse", "HEAD").strip()

    def log(self, path: str, *, max_count: int | None = None) -> list[CommitInfo]:
        """Commits touching ``path`` on the checked-out branch, newest first.

        Raises:
            InputError: a path outside the repo.
        """
        path = check_repo_path(path)
        fmt = "%H%x1f%s%x1f%cI%x1f%an <%ae>%x1f%(trailers:only,unfold)%x1e"
        args = ["log", f"--format={fmt}"]
        if max_count is not None:
            args.append(f"--max-count={int(max_count)}")
        out = self._git(*args, "HEAD", "--", path)
        commits = []
        for record in out.split("\x1e"):
            record = record.strip("\n")
            if not record:
                continue
            sha, subject, when, author, trailers = record.split("\x1f", 4)
            commits.append(
                CommitInfo(
                    sha=sha,
                    subject=subject,
                    trailers=parse_trailers(trailers),
                    committed_at=datetime.fromisoformat(when),
                    author=author,
                )
            )
        return commits

    def last_change_time(self, path: str) -> datetime | None:
        """Committer time of the newest commit touching ``path``; None if none did."""
        path = check_repo_path(path)
        out = self._git("log", "-1", "--format=%cI", "HEAD", "--", path).strip()
        return datetime.fromisoformat(out) if out else None

    # ------------------------------------------------------------------ writing

    def publish(
        self,
        derive: Callable[[Path], Change | None],
        *,
        mode: str = "direct",
        round_branch: str | None = None,
        pr: PullRequestSpec | None = None,
        max_attempts: int = 5,
        backoff: Callable[[int], float] = default_backoff,
        sleep: Callable[[float], None] = time.sleep,
        hooks: PublishHooks | None = None,
        fresh: bool = False,
    ) -> PublishResult:
        """Sync, let ``derive`` write the change, commit it if anything changed, push.

        ``derive(root)`` writes files into the work tree and returns the Change to commit,
        or None for "nothing to do". It may run several times: after a rejected push it
        runs again on the new remote tip, and must then return None if another writer
        already made the same change.

        Args:
            derive: writes the change into the work tree.
            mode: ``"direct"`` pushes to the target branch; ``"pull-request"`` pushes to
                ``round_branch`` (derived from the target tip) and opens a PR when ``pr``
                names a forge and carries a token.
            round_branch: the PR branch (see ``round_branch_name``); pull-request mode only.
            pr: the forge to open the PR on; None pushes the branch only.
            max_attempts: passes through the loop before giving up.
            backoff: seconds to wait after the n-th rejected push (n from 1).
            sleep: how to wait (tests record the delays).
            hooks: callbacks after the commit and after the push.
            fresh: the caller has just called :meth:`sync` and read the tree; the first
                attempt derives from it without fetching again.

        Returns:
            What was done; ``commit`` is None when there was nothing to do.

        Raises:
            InputError: an unknown mode, or pull-request mode without a branch.
            GitError: git failed, or the push was rejected ``max_attempts`` times.
        """
        if mode not in MODES:
            raise InputError(f"gitops mode {mode!r}: expected one of {', '.join(MODES)}")
        if max_attempts < 1:
            raise InputError(f"max_attempts {max_attempts}: expected at least 1")
        if mode == "pull-request":
            if not round_branch:
                raise InputError("pull-request mode: a round branch is needed")
            _check_branch_name(round_branch)
            if round_branch == self.branch:
                raise InputError(
                    f"pull-request mode: the round branch must differ from {self.branch}"
                )
        hooks = hooks or PublishHooks()
        where = round_branch if mode == "pull-request" and round_branch else self.branch
        self._ref_lock = None
        for attempt in range(1, max_attempts + 1):
            if attempt > 1 or not fresh:
                self.sync()
            change = derive(self.root)
            if change is None:
                return PublishResult(None, False, attempt, where)
            message = commit_message(change)  # a bad message fails before anything moves
            self._git("add", "-A")
            touched = self._staged_paths()
            if not touched:
                return PublishResult(None, False, attempt, where)
            if mode == "direct":
                result = self._publish_direct(change, message, attempt, hooks)
            else:
                assert round_branch is not None
                result = self._publish_branch(
                    change, message, attempt, hooks, round_branch, touched, pr
                )
            if result is not None:
                return result
            if attempt < max_attempts:
                sleep(backoff(attempt))
        if self._ref_lock is not None:
            raise GitError(
                f"push to branch {where} on {self._remote_name()} failed {max_attempts} "
                f"times: the remote's ref lock {self._ref_lock} exists. Another git may be "
                "writing the branch, or one killed mid-write left the lock behind (a stale "
                "lock): if no git is running on the remote, remove that file"
            )
        raise GitError(
            f"push to branch {where} on {self._remote_name()} was rejected "
            f"{max_attempts} times (other writers kept moving it); giving up"
        )

    def restore(self, path: str, commit: str) -> None:
        """Put ``path`` in the work tree as it was at ``commit`` (for use inside a derive).

        Files under ``path`` that did not exist at ``commit`` are removed; files outside
        it are left alone. Nothing is committed: the derive that calls this returns the
        Change, and :meth:`publish` commits it on top (history is kept).

        Raises:
            InputError: a path outside the repo, or a commit that is not in the target
                branch's history.
            GitError: git failed.
        """
        path = check_repo_path(path)
        sha = self._commit_in_history(commit)
        self._git("rm", "-r", "-q", "--ignore-unmatch", "--", path)
        if self._exists_at(sha, path):
            self._git("checkout", sha, "--", path)

    # ------------------------------------------------------------------ internals

    def _publish_direct(
        self, change: Change, message: str, attempt: int, hooks: PublishHooks
    ) -> PublishResult | None:
        sha = self._commit(change, message)
        if hooks.after_commit:
            hooks.after_commit()
        # A plain push (no force, no "+"): the remote accepts it only as a fast-forward.
        outcome = self._push(f"HEAD:refs/heads/{self.branch}", self.branch)
        if outcome == "rejected":
            return None
        if hooks.after_push:
            hooks.after_push()
        # "up-to-date": another writer pushed the very same commit (same tree, parent,
        # identity and time); the change is there, but this call did not move the branch.
        return PublishResult(sha, outcome == "pushed", attempt, self.branch)

    def _publish_branch(
        self,
        change: Change,
        message: str,
        attempt: int,
        hooks: PublishHooks,
        round_branch: str,
        touched: set[str],
        pr: PullRequestSpec | None,
    ) -> PublishResult | None:
        tracking = f"refs/remotes/{REMOTE}/{round_branch}"
        existing = None
        if self._fetch_branch(round_branch):
            existing = self._git("rev-parse", tracking).strip()
            if self._holds_same_change(tracking, touched):
                url = self._ensure_pr(pr, round_branch, change)
                self._checkout_target()
                return PublishResult(existing, False, attempt, round_branch, url)
        sha = self._commit(change, message)
        if hooks.after_commit:
            hooks.after_commit()
        # Only the PR branch may be overwritten, and only if it is still what we saw (an
        # empty lease means "must not exist yet"): two racers cannot both create it.
        lease = f"--force-with-lease=refs/heads/{round_branch}:{existing or ''}"
        outcome = self._push(f"HEAD:refs/heads/{round_branch}", round_branch, lease)
        if outcome == "rejected":
            return None
        if hooks.after_push:
            hooks.after_push()
        url = self._ensure_pr(pr, round_branch, change)
        self._checkout_target()
        return PublishResult(sha, outcome == "pushed", attempt, round_branch, url)

    def _holds_same_change(self, ref: str, touched: set[str]) -> bool:
        """Whether ``ref`` already carries the staged change.

        Compared over the paths the staged change touches plus those the branch itself
        changed since it forked from the target: a target that moved on elsewhere does not
        make an otherwise identical PR branch stale.
        """
        if self._git("write-tree").strip() == self._git("rev-parse", f"{ref}^{{tree}}").strip():
            return True
        base = self._git_status("merge-base", ref, "HEAD")
        if base[0] != 0:
            return False
        branch_changed = set(
            self._git("diff", "--name-only", "-z", base[1].strip(), ref).split("\0")
        )
        differ = set(self._git("diff", "--cached", "--name-only", "-z", ref).split("\0"))
        relevant = (touched | branch_changed) - {""}
        return not (differ & relevant)

    def _ensure_pr(
        self, pr: PullRequestSpec | None, round_branch: str, change: Change
    ) -> str | None:
        if pr is None or pr.forge is None or not pr.token:
            return None
        repository = pr.repository or repository_from_url(self.url) or ""
        found = ensure_pull_request(
            pr,
            repository=repository,
            head=round_branch,
            base=self.branch,
            title=change.message.strip(),
            body=change.body,
        )
        return found.url

    def _commit(self, change: Change, message: str) -> str:
        msg_file = Path(self._repo.git_dir) / "FL_GITOPS_COMMIT_MSG"
        msg_file.write_text(message, encoding="utf-8")
        env = {
            "GIT_AUTHOR_NAME": self.user_name,
            "GIT_AUTHOR_EMAIL": self.user_email,
            "GIT_COMMITTER_NAME": self.user_name,
            "GIT_COMMITTER_EMAIL": self.user_email,
        }
        if change.committed_at is not None:
            when = change.committed_at
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            env["GIT_AUTHOR_DATE"] = env["GIT_COMMITTER_DATE"] = when.isoformat()
        # "whitespace" cleanup keeps lines starting with "#" (Markdown headings in a body).
        args = ["commit", "-q", "--no-verify", "--cleanup=whitespace", "-F", str(msg_file)]
        if self.signing_key is None:
            # Never a signature the pass did not ask for (a user's commit.gpgSign).
            self._git(*args[:3], "--no-gpg-sign", *args[3:], env=env)
            return self.head()
        with self.signing_key.private_copy() as key:
            signed = config_env(signing_config(key), {**self._auth.env, **env})
            self._git(*args[:3], "-S", *args[3:], env=signed)
        return self.head()

    def _push(self, refspec: str, branch: str, *options: str) -> str:
        """Push; "pushed", "up-to-date" (the remote already has it) or "rejected" (another
        writer got there first)."""
        status, out, err = self._network(
            "push",
            "--porcelain",
            "--no-verify",
            *options,
            REMOTE,
            refspec,
            what=f"push to branch {branch}",
        )
        if status == 0:
            flags = [line.split("\t", 1)[0] for line in out.splitlines() if "\t" in line]
            return "up-to-date" if flags and all(f == "=" for f in flags) else "pushed"
        rejected = [line for line in out.splitlines() if line.startswith("!")]
        for line in rejected:
            if "[rejected]" in line or any(m in line for m in _RACE_MARKERS):
                # A lock file that exists: maybe a writer right now, maybe a stale lock; it
                # is retried like a race but reported as the lock if it never goes away.
                lock = _REF_LOCK_RE.search(err) or _REF_LOCK_RE.search(out)
                found = os.path.normpath(lock["lock"]) if lock else None
                self._ref_lock = redact(found, self._auth.secrets) if found else None
                return "rejected"
        raise GitError(
            f"push to branch {branch} on {self._remote_name()} failed: {self._tail(err or out)}"
        )

    def _fetch_branch(self, branch: str) -> bool:
        """Fetch one branch into its remote-tracking ref; False if the remote lacks it."""
        tracking = f"refs/remotes/{REMOTE}/{branch}"
        status, _out, err = self._network(
            "fetch", "--quiet", "--no-tags", REMOTE, f"+refs/heads/{branch}:{tracking}",
            what=f"fetch of branch {branch}",
        )  # fmt: skip
        if status == 0:
            return True
        if "couldn't find remote ref" in err:
            # Forget a branch the remote no longer has (a merged, deleted PR branch).
            self._git_status("update-ref", "-d", tracking)
            return False
        raise GitError(
            f"fetch of branch {branch} from {self._remote_name()} failed: {self._tail(err)}"
        )

    def _checkout_target(self) -> None:
        tracking = f"refs/remotes/{REMOTE}/{self.branch}"
        self._git("checkout", "-q", "-f", "--no-track", "-B", self.branch, tracking)
        self._git("reset", "-q", "--hard", tracking)
        # No -x: files the repo ignores (caches) survive; everything else untracked goes.
        self._git("clean", "-q", "-f", "-d")

    def _staged_paths(self) -> set[str]:
        out = self._git("diff", "--cached", "--name-only", "-z", "HEAD")
        return {p for p in out.split("\0") if p}

    def _commit_in_history(self, commit: str) -> str:
        status, out, _err = self._git_status("rev-parse", "--verify", "-q", f"{commit}^{{commit}}")
        sha = out.strip()
        if status != 0 or not sha:
            raise InputError(f"commit {commit}: not found in the history of {self.branch}")
        status, _out, _err = self._git_status("merge-base", "--is-ancestor", sha, "HEAD")
        if status != 0:
            raise InputError(f"commit {commit}: not in the history of {self.branch}")
        return sha

    def _exists_at(self, sha: str, path: str) -> bool:
        return self._git_status("cat-file", "-e", f"{sha}:{path}")[0] == 0

    def _remote_name(self) -> str:
        return f"remote {display_url(self.url)}"

    def _tail(self, text: str) -> str:
        lines = [line for line in text.strip().splitlines() if line.strip()]
        return redact("\n".join(lines[-_ERROR_LINES:]), self._auth.secrets)

    def _git(self, *args: str, env: dict[str, str] | None = None) -> str:
        """Run one git command; its stdout, or GitError naming the branch and remote."""
        cmd, rest = args[0], args[1:]
        try:
            out: Any = getattr(self._repo.git, cmd.replace("-", "_"))(
                *rest, env=env, strip_newline_in_stdout=False
            )
        except git.GitCommandError as exc:
            stderr = exc.stderr if isinstance(exc.stderr, str) else str(exc.stderr or "")
            stderr = stderr.strip().removeprefix("stderr:").strip().strip("'")
            raise GitError(
                f"git {cmd} failed on branch {self.branch} ({self._remote_name()}): "
                f"{self._tail(stderr)}"
            ) from None
        return str(out)

    def _git_status(self, *args: str) -> tuple[int, str, str]:
        """Run one git command that may fail; (exit status, stdout, stderr)."""
        cmd, rest = args[0], args[1:]
        status, out, err = getattr(self._repo.git, cmd.replace("-", "_"))(
            *rest,
            with_extended_output=True,
            with_exceptions=False,
            strip_newline_in_stdout=False,
        )
        return int(status), str(out), str(err)

    def _network(self, *args: str, what: str) -> tuple[int, str, str]:
        """Run one git command that talks to the remote, bounded by ``network_timeout``.

        It runs in a process group of its own, so on a timeout git and every helper it
        started (``git-remote-http``, ``ssh``) are killed together.

        Returns:
            (exit status, stdout, stderr).

        Raises:
            GitError: the command did not finish in time.
        """
        stall = str(min(_LOW_SPEED_TIME, max(1, int(self.network_timeout))))
        cmd = [
            "git",
            "-c", f"http.lowSpeedLimit={_LOW_SPEED_LIMIT}",
            "-c", f"http.lowSpeedTime={stall}",
            *args,
        ]  # fmt: skip
        env = {**os.environ, **self._auth.env, "LC_ALL": "C", "LANGUAGE": "C"}
        env.pop("GIT_DIR", None)
        proc = subprocess.Popen(
            cmd,
            cwd=self.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(timeout=self.network_timeout)
        except BaseException:  # the timeout, or Ctrl-C / SIGTERM reaching this process
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            if not isinstance(sys.exc_info()[1], subprocess.TimeoutExpired):
                raise
            raise GitError(
                f"{what} from {self._remote_name()} did not finish in "
                f"{self.network_timeout:g}s and was stopped: the remote is not answering"
            ) from None
        return (
            proc.returncode,
            out.decode("utf-8", "replace"),
            err.decode("utf-8", "replace"),
        )


class _Unreadable(InputError):
    """git cannot open the work dir's repository (its HEAD or config is gone)."""

    def __init__(self, refused: InputError) -> None:
        super().__init__(str(refused))
        self.refused = refused


class _WorkdirLock:
    """An exclusive POSIX lock (``lockf``) on ``.<workdir>.lock`` beside the work dir.

    Beside it, not in it, so that removing a corrupt clone keeps the lock. The kernel
    lets go when the process dies, however it dies: a lock is never stale. It keeps other
    processes out (two passes, two CronJob runs on one volume); within one process POSIX
    locks do not conflict, so reopening a work dir there never waits on itself.
    """

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._finalizer = weakref.finalize(self, os.close, fd)

    @classmethod
    def acquire(cls, workdir: Path, timeout: float) -> _WorkdirLock:
        path = workdir.parent / f".{workdir.name}.lock"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError:
            raise InputError(
                f"workdir {workdir}: cannot create its lock file {path}; expected "
                f"{path.parent} to be a writable directory"
            ) from None
        deadline = time.monotonic() + max(0.0, timeout)
        delay = 0.05
        while True:
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return cls(path, fd)
            except OSError as exc:
                if exc.errno not in (errno.EACCES, errno.EAGAIN):
                    os.close(fd)
                    raise GitError(
                        f"workdir {workdir}: cannot lock {path}: {exc.strerror}"
                    ) from None
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise GitError(
                        f"workdir {workdir}: in use by another pass (it holds {path}); "
                        f"waited {timeout:g}s. Give this pass its own --workdir, or let the "
                        "other one finish"
                    ) from None
                time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
                delay = min(delay * 2, 1.0)

    def release(self) -> None:
        self._finalizer()  # closing the descriptor lets go of the lock


def remember_signing_key(workdir: Path, key_file: Path) -> None:
    """Make the clone at ``workdir`` (created empty if absent) sign with ``key_file``.

    The clone keeps the key's path (never the key) in its own config, and every
    :meth:`ConfigRepo.open` of it without a ``signing_key`` signs with that key: how
    ``simulate`` makes its reconcile passes sign.

    Raises:
        InputError: the key is not an SSH private key, or the work dir is something else.
        GitError: git failed.
    """
    key = SigningKey.from_file(key_file, source="signing key")
    workdir = Path(workdir)
    if not (workdir / ".git").is_dir():
        if workdir.exists() and any(workdir.iterdir()):
            raise InputError(f"workdir {workdir}: expected an empty directory or a git work tree")
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            git.Repo.init(workdir).close()
        except git.GitCommandError as exc:
            raise GitError(f"git init failed in {workdir}: {exc.stderr}") from None
    # The config file alone, so that a clone whose HEAD or objects are damaged (which
    # ConfigRepo.open clones again) still takes it.
    config = str(workdir / ".git" / "config")
    status, _out, err = git.Git().execute(
        ["git", "config", "--file", config, _SIGNING_KEY_CONFIG, str(key.path.resolve())],
        with_extended_output=True,
        with_exceptions=False,
    )
    if status != 0:
        raise GitError(f"git config failed in {workdir}: {str(err).strip()[-500:]}")


def _remembered_key(workdir: Path) -> SigningKey | None:
    config = workdir / ".git" / "config"
    if not config.is_file():
        return None
    status, out, _err = git.Git().execute(
        ["git", "config", "--file", str(config), "--get", _SIGNING_KEY_CONFIG],
        with_extended_output=True,
        with_exceptions=False,
    )
    value = str(out).strip()
    if status != 0 or not value:
        return None
    return SigningKey.from_file(value, source=f"{workdir}: {_SIGNING_KEY_CONFIG}")


def _is_own_clone(workdir: Path, url: str) -> bool:
    """Whether ``workdir`` is a clone of ``url`` by its config file (readable when the
    objects, index or HEAD are not): only then may it be removed and cloned again."""
    config = workdir / ".git" / "config"
    if not config.is_file():
        return False
    status, out, _err = git.Git().execute(
        ["git", "config", "--file", str(config), "--get", f"remote.{REMOTE}.url"],
        with_extended_output=True,
        with_exceptions=False,
    )
    return status == 0 and str(out).strip() == url


def _unhealthy(workdir: Path, exc: Exception) -> bool:
    """Whether the failure was the clone's own fault: git cannot read it, or fsck fails."""
    if isinstance(exc, _Unreadable):
        return True
    env = {**os.environ, "LC_ALL": "C"}
    env.pop("GIT_DIR", None)
    try:
        done = subprocess.run(
            ["git", "fsck", "--connectivity-only", "--no-dangling", "--no-progress"],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=DEFAULT_NETWORK_TIMEOUT,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode != 0


def _remove_stale_locks(git_dir: Path) -> None:
    """Remove the ``*.lock`` files a killed git left in a repository we own alone."""
    if not git_dir.is_dir():
        return
    candidates = list(git_dir.glob("*.lock"))
    refs = git_dir / "refs"
    if refs.is_dir():
        candidates += refs.rglob("*.lock")
    for lock in candidates:
        with contextlib.suppress(OSError):
            if lock.is_file() and not lock.is_symlink():
                lock.unlink()


def _check_branch_name(branch: str) -> None:
    ok = bool(branch) and not branch.startswith("-")
    if ok:
        with contextlib.suppress(git.GitCommandError):
            git.Git().check_ref_format("--branch", branch)
            return
    raise InputError(f"branch name {branch!r}: not a valid git branch name")
