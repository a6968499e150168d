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

Every git operation runs the git binary through GitPython's ``repo.git`` (its pure-Python
index is several times slower on large trees). Errors are ``GitError`` naming the branch
and the remote, with credentials redacted.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
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

__all__ = [
    "DEFAULT_USER_EMAIL",
    "DEFAULT_USER_NAME",
    "MODES",
    "ConfigRepo",
    "PublishHooks",
    "PublishResult",
    "default_backoff",
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

    One ConfigRepo owns its work dir: two writers need two work dirs (they may share the
    remote; that is what the push retry is for).
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
    ) -> None:
        self._repo = repo
        self._auth = auth
        self.url = url
        self.branch = branch
        self.root = Path(repo.working_tree_dir or ".")
        self.user_name = user_name
        self.user_email = user_email

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
    ) -> ConfigRepo:
        """Clone the repo into ``workdir`` (or fetch, if it is already there) and sync.

        Args:
            url: a local path, ``file://``, ``https://`` or ssh (``user@host:path``) URL.
            branch: the target branch (e.g. ``main``).
            workdir: where the work tree lives; created if absent.
            credentials: for https or ssh; None for a local remote or ambient auth.
            user_name: the commit author and committer name.
            user_email: the commit author and committer email.

        Raises:
            InputError: a bad URL or branch name, or a work dir that is something else.
            GitError: the remote cannot be read, or has no such branch.
        """
        url = normalize_url(url)
        _check_branch_name(branch)
        workdir = Path(workdir)
        refused = InputError(f"workdir {workdir}: expected an empty directory or a git work tree")
        if (workdir / ".git").is_dir():
            try:
                repo = git.Repo(workdir)
            except (git.InvalidGitRepositoryError, git.NoSuchPathError):
                raise refused from None
        elif workdir.exists() and (not workdir.is_dir() or any(workdir.iterdir())):
            raise refused
        else:
            workdir.mkdir(parents=True, exist_ok=True)
            try:
                repo = git.Repo.init(workdir)
            except git.GitCommandError as exc:
                raise GitError(f"git init failed in {workdir}: {exc.stderr}") from None
        auth = GitAuth(credentials)
        repo.git.update_environment(**auth.env)
        self = cls(
            repo,
            url=url,
            branch=branch,
            auth=auth,
            user_name=user_name,
            user_email=user_email,
        )
        # A pass killed in the middle of a git command leaves its lock behind; this work
        # dir has one owner, so the lock is stale.
        (workdir / ".git" / "index.lock").unlink(missing_ok=True)
        if REMOTE in [r.name for r in repo.remotes]:
            self._git("remote", "set-url", REMOTE, url)
        else:
            self._git("remote", "add", REMOTE, url)
        self.sync()
        return self

    def close(self) -> None:
        """Remove the private credential files (also done when the object is collected)."""
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
        self._git(
            "commit",
            "-q",
            "--no-verify",
            "--no-gpg-sign",
            "--cleanup=whitespace",
            "-F",
            str(msg_file),
            env=env,
        )
        return self.head()

    def _push(self, refspec: str, branch: str, *options: str) -> str:
        """Push; "pushed", "up-to-date" (the remote already has it) or "rejected" (another
        writer got there first)."""
        status, out, err = self._git_status(
            "push", "--porcelain", "--no-verify", *options, REMOTE, refspec
        )
        if status == 0:
            flags = [line.split("\t", 1)[0] for line in out.splitlines() if "\t" in line]
            return "up-to-date" if flags and all(f == "=" for f in flags) else "pushed"
        rejected = [line for line in out.splitlines() if line.startswith("!")]
        for line in rejected:
            if "[rejected]" in line or any(m in line for m in _RACE_MARKERS):
                return "rejected"
        raise GitError(
            f"push to branch {branch} on {self._remote_name()} failed: {self._tail(err or out)}"
        )

    def _fetch_branch(self, branch: str) -> bool:
        """Fetch one branch into its remote-tracking ref; False if the remote lacks it."""
        tracking = f"refs/remotes/{REMOTE}/{branch}"
        status, _out, err = self._git_status(
            "fetch", "--quiet", "--no-tags", REMOTE, f"+refs/heads/{branch}:{tracking}"
        )
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


def _check_branch_name(branch: str) -> None:
    ok = bool(branch) and not branch.startswith("-")
    if ok:
        with contextlib.suppress(git.GitCommandError):
            git.Git().check_ref_format("--branch", branch)
            return
    raise InputError(f"branch name {branch!r}: not a valid git branch name")
