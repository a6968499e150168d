"""A pass killed after any step and run again converges to the uninterrupted run's result."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from fl_gitops.gitops import ConfigRepo
from fl_gitops.reconcile import PassHooks, Wait, reconcile_once

from .fleet import PATH, Fleet, blueprint_text, git, make_remote

CLUSTERS = ["cluster-a", "cluster-b", "cluster-c", "cluster-d"]
STEPS = ["after_aggregate", "after_model_written", "after_commit", "after_push"]


class Killed(Exception):
    """Stands for the process dying at a step."""


def _kill() -> None:
    raise Killed


def _run(base: Path, kill_at: str | None) -> tuple[str, str, dict, list[str]]:
    """Two rounds of an experiment in ``base``; round 1's aggregation is killed at a step."""
    if base.exists():
        shutil.rmtree(base)
    base.mkdir()
    store = base / "store"
    remote = make_remote(base, blueprint_text(store, rounds=2))
    fleet = Fleet(base, remote, store, CLUSTERS)

    def run_pass(hooks: PassHooks | None = None):
        repo = ConfigRepo.open(str(remote), branch="main", workdir=base / "reconciler")
        return reconcile_once(
            repo, fleet.hub, path=PATH, now=datetime.now(UTC), hooks=hooks, sleep=lambda s: None
        )

    run_pass()
    fleet.run_jobs()
    if kill_at is not None:
        with pytest.raises(Killed):
            run_pass(PassHooks(**{kill_at: _kill}))
    run_pass()  # the rerun (or, uninterrupted, the only aggregation pass)
    assert isinstance(run_pass().action, Wait)  # converged: nothing more to do for round 2
    tree = git(remote, "rev-parse", "main^{tree}")
    state = yaml.safe_load(git(remote, "show", f"main:{PATH}/hub/round-state.yaml"))["data"]
    record = yaml.safe_load(git(remote, "show", f"main:{PATH}/.history/round-1.yaml"))
    subjects = git(remote, "log", "--format=%s", "main").splitlines()
    return tree, state["globalModelDigest"], record, subjects


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("faults") / "run"
    return base, _run(base, None)


@pytest.mark.parametrize("step", STEPS)
def test_a_pass_killed_at_a_step_reruns_to_the_same_tree_and_model(uninterrupted, step):
    base, (tree, digest, record, subjects) = uninterrupted
    # Same paths as the uninterrupted run, so the rendered store URI is the same too.
    got_tree, got_digest, got_record, got_subjects = _run(base, step)
    assert got_digest == digest
    assert got_tree == tree
    # No update lost or counted twice.
    assert got_record["contributors"] == CLUSTERS
    assert got_record["weights"] == record["weights"]
    assert sum(got_record["weights"].values()) == pytest.approx(1.0)
    assert got_subjects == subjects  # one commit per step of the experiment, none repeated
