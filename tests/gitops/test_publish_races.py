"""Racing writers, rejected pushes, bounded retries and kills between commit and push.

Two reconcilers may run the same pass at once: exactly one commit per logical change must
land, the other converges without error, and the target branch is never force-pushed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from fl_gitops.errors import GitError
from fl_gitops.gitops import Change, ConfigRepo, PublishHooks, PublishResult, default_backoff

from .conftest import git, remote_log, run_in_threads
from .test_config_repo import write_round


def assert_linear_without_force_push(bare: Path, branch: str = "main") -> None:
    """No merge commits, and every update of the branch was a fast-forward."""
    assert git(bare, "rev-list", "--merges", branch) == ""
    reflog = (bare / "logs" / "refs" / "heads" / branch).read_text().splitlines()
    assert reflog, "the remote keeps a reflog (core.logAllRefUpdates=always)"
    for line in reflog:
        old, new = line.split()[:2]
        if set(old) != {"0"}:
            git(bare, "merge-base", "--is-ancestor", old, new)  # fails the test if not


def push_from_elsewhere(bare: Path, tmp_path: Path, name: str, text: str) -> None:
    """Another writer moves the remote tip (a plain clone, a plain push)."""
    clone = tmp_path / f"elsewhere-{name}"
    if not clone.exists():
        git(tmp_path, "clone", "-q", str(bare), str(clone))
    git(clone, "pull", "-q", "--ff-only", "origin", "main")
    (clone / f"{name}.txt").write_text(text)
    git(clone, "add", "-A")
    git(clone, "commit", "-q", "-m", f"elsewhere {name}")
    git(clone, "push", "-q", "origin", "HEAD:main")


def test_a_rejected_push_is_retried_from_the_new_tip_after_a_backoff(
    remote: Path, tmp_path: Path
) -> None:
    repo = ConfigRepo.open(str(remote), branch="main", workdir=tmp_path / "w")
    calls: list[str] = []
    delays: list[float] = []

    def derive(root: Path) -> Change:
        calls.append(git(root, "rev-parse", "HEAD").strip())
        if len(calls) == 1:  # someone else pushes while we derive
            push_from_elsewhere(remote, tmp_path, "other", "x\n")
        (root / "round.yaml").write_text("round: 1\n")
        return Change(message="fl(x): round 0 -> 1")

    result = repo.publish(derive, sleep=delays.append)

    assert result.pushed and result.attempts == 2
    assert delays == [default_backoff(1)] == [0.5]
    assert calls[1] != calls[0]  # derived again, from the new tip
    assert remote_log(remote) == ["fl(x): round 0 -> 1", "elsewhere other", "seed"]
    assert_linear_without_force_push(remote)


def test_pushes_rejected_every_time_end_in_a_git_error_naming_the_branch(
    remote: Path, tmp_path: Path
) -> None:
    repo = ConfigRepo.open(str(remote), branch="main", workdir=tmp_path / "w")
    delays: list[float] = []
    attempt = iter(range(100))

    def derive(root: Path) -> Change:
        push_from_elsewhere(remote, tmp_path, "busy", f"{next(attempt)}\n")
        (root / "round.yaml").write_text("round: 1\n")
        return Change(message="fl(x): round 0 -> 1")

    with pytest.raises(GitError) as err:
        repo.publish(derive, max_attempts=4, sleep=delays.append, backoff=lambda n: n * 1.5)

    assert str(err.value) == (
        f"push to branch main on remote {remote} was rejected 4 times "
        "(other writers kept moving it); giving up"
    )
    assert delays == [1.5, 3.0, 4.5]  # no sleep after the last attempt
    assert "fl(x): round 0 -> 1" not in remote_log(remote)
    assert_linear_without_force_push(remote)


def test_the_thread_runner_reports_a_thread_that_did_not_end() -> None:
    release = threading.Event()
    try:
        errors = run_in_threads(lambda n: n == 2 and release.wait(30), [1, 2], timeout=0.2)
        assert [str(e) for e in errors] == ["thread for 2 still running after 0.2s"]
        assert all(isinstance(e, TimeoutError) for e in errors)
    finally:
        release.set()


def test_default_backoff_doubles_up_to_a_cap() -> None:
    assert [default_backoff(n) for n in range(1, 8)] == [0.5, 1, 2, 4, 8, 8, 8]


def test_two_writers_deriving_from_the_same_tip_make_one_commit(
    remote: Path, tmp_path: Path
) -> None:
    # Two identities, so that the two commits differ even when made in the same second.
    writers = [
        ConfigRepo.open(
            str(remote), branch="main", workdir=tmp_path / f"w{i}", user_name=f"reconciler-{i}"
        )
        for i in (1, 2)
    ]
    both_derived = threading.Barrier(2, timeout=30)
    results: dict[int, PublishResult] = {}

    def run(i: int) -> None:
        first = True
        step = write_round(1)

        def derive(root: Path) -> Change | None:
            nonlocal first
            change = step(root)
            if first:
                first = False
                both_derived.wait()  # both have read the same tip and written round 1
            return change

        results[i] = writers[i].publish(derive, sleep=lambda s: None)

    assert run_in_threads(run, (0, 1)) == []
    assert remote_log(remote) == ["fl(digits): round 0 -> 1", "seed"]
    winner = [r for r in results.values() if r.pushed]
    loser = [r for r in results.values() if not r.pushed]
    assert len(winner) == 1 and len(loser) == 1
    assert winner[0].commit == git(remote, "rev-parse", "main").strip()
    assert loser[0] == PublishResult(None, False, 2, "main")  # re-derived: nothing left to do
    assert_linear_without_force_push(remote)


def test_writers_making_the_identical_commit_push_it_once(remote: Path, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    when = datetime(2026, 2, 2, tzinfo=UTC)
    writers = [
        ConfigRepo.open(str(remote), branch="main", workdir=tmp_path / f"w{i}") for i in (1, 2)
    ]
    both_committed = threading.Barrier(2, timeout=30)
    results: list[PublishResult] = []

    def derive(root: Path) -> Change | None:
        if (root / "round.yaml").exists():
            return None
        (root / "round.yaml").write_text("round: 1\n")
        return Change(message="fl(x): round 0 -> 1", committed_at=when)

    def run(repo: ConfigRepo) -> None:
        hooks = PublishHooks(after_commit=both_committed.wait)
        results.append(repo.publish(derive, hooks=hooks, sleep=lambda s: None))

    assert run_in_threads(run, writers) == []
    tip = git(remote, "rev-parse", "main").strip()
    assert remote_log(remote) == ["fl(x): round 0 -> 1", "seed"]
    winner, loser = sorted(results, key=lambda r: not r.pushed)
    assert winner.pushed and winner.commit == tip
    # The loser either found the remote already at its commit ("up to date"), or lost the
    # ref update, re-derived on the new tip and found nothing to do: both converge.
    assert not loser.pushed and loser.commit in (tip, None)
    assert_linear_without_force_push(remote)


def test_writers_racing_through_several_rounds_commit_each_round_once(
    remote: Path, tmp_path: Path
) -> None:
    writers = [
        ConfigRepo.open(str(remote), branch="main", workdir=tmp_path / f"w{i}") for i in range(3)
    ]
    start = threading.Barrier(len(writers), timeout=30)

    def run(repo: ConfigRepo) -> None:
        start.wait()
        for n in (1, 2, 3):
            repo.publish(write_round(n), sleep=lambda s: None, max_attempts=10)

    assert run_in_threads(run, writers, timeout=120) == []
    assert remote_log(remote) == [
        "fl(digits): round 2 -> 3",
        "fl(digits): round 1 -> 2",
        "fl(digits): round 0 -> 1",
        "seed",
    ]
    assert_linear_without_force_push(remote)


class Killed(Exception):
    """Stands for the pod being killed at a hook."""


def kill() -> None:
    raise Killed


def test_a_kill_after_commit_leaves_the_remote_untouched_and_the_rerun_converges(
    make_remote: Callable[..., Path], tmp_path: Path
) -> None:
    from datetime import UTC, datetime

    when = datetime(2026, 2, 2, tzinfo=UTC)

    def derive(root: Path) -> Change | None:
        state = root / "round.yaml"
        if state.exists():
            return None
        state.write_text("round: 1\n")
        return Change(message="fl(x): round 0 -> 1", committed_at=when)

    # The uninterrupted run, on its own remote.
    clean = make_remote("clean")
    ConfigRepo.open(str(clean), branch="main", workdir=tmp_path / "clean-w").publish(derive)

    bare = make_remote("killed")
    workdir = tmp_path / "killed-w"
    before = git(bare, "rev-parse", "main")
    with pytest.raises(Killed):
        ConfigRepo.open(str(bare), branch="main", workdir=workdir).publish(
            derive, hooks=PublishHooks(after_commit=kill)
        )
    assert git(bare, "rev-parse", "main") == before
    assert git(workdir, "rev-parse", "HEAD") != before  # the local commit exists, unpushed

    # The next pod reuses the work dir: the unpushed commit is dropped and re-derived.
    rerun = ConfigRepo.open(str(bare), branch="main", workdir=workdir).publish(derive)

    assert rerun.pushed
    assert git(bare, "rev-parse", "main^{tree}") == git(clean, "rev-parse", "main^{tree}")
    assert git(bare, "rev-parse", "main") == git(clean, "rev-parse", "main")
    assert remote_log(bare) == ["fl(x): round 0 -> 1", "seed"]


def test_a_kill_after_push_is_not_committed_twice_on_rerun(remote: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "w"
    with pytest.raises(Killed):
        ConfigRepo.open(str(remote), branch="main", workdir=workdir).publish(
            write_round(1), hooks=PublishHooks(after_push=kill)
        )
    assert remote_log(remote) == ["fl(digits): round 0 -> 1", "seed"]

    rerun = ConfigRepo.open(str(remote), branch="main", workdir=workdir).publish(write_round(1))

    assert rerun == PublishResult(None, False, 1, "main")
    assert remote_log(remote) == ["fl(digits): round 0 -> 1", "seed"]


def test_a_push_refused_for_another_reason_is_a_git_error_not_a_retry(
    remote: Path, tmp_path: Path
) -> None:
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'main is protected' >&2\nexit 1\n")
    hook.chmod(0o755)
    repo = ConfigRepo.open(str(remote), branch="main", workdir=tmp_path / "w")
    delays: list[float] = []

    with pytest.raises(GitError) as err:
        repo.publish(write_round(1), sleep=delays.append)

    assert str(err.value).startswith(f"push to branch main on remote {remote} failed: ")
    assert "main is protected" in str(err.value)
    assert delays == []
