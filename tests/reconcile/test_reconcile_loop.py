"""The reconcile pass against real Git (a bare remote on disk), the local hub and a file store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from fl_gitops.gitops import ConfigRepo
from fl_gitops.reconcile import Aggregate, Finish, RetryRound, StartRound, Wait, reconcile_once

from .fleet import EXP, PATH, Fleet, blueprint_text, git, make_remote

CLUSTERS = ["cluster-a", "cluster-b", "cluster-c", "cluster-d"]


@pytest.fixture
def world(tmp_path: Path):
    store = tmp_path / "store"
    remote = make_remote(tmp_path, blueprint_text(store))
    fleet = Fleet(tmp_path, remote, store, CLUSTERS)
    return tmp_path, remote, fleet


def _pass(tmp: Path, remote: Path, fleet: Fleet, *, workdir: str = "reconciler", now=None, **kw):
    repo = ConfigRepo.open(str(remote), branch="main", workdir=tmp / workdir)
    return reconcile_once(
        repo, fleet.hub, path=PATH, now=now or datetime.now(UTC), sleep=lambda s: None, **kw
    )


def _commits(remote: Path) -> list[str]:
    return git(remote, "log", "--format=%s", "main").splitlines()


def _state(remote: Path) -> dict:
    text = git(remote, "show", f"main:{PATH}/hub/round-state.yaml")
    return yaml.safe_load(text)["data"]


def test_first_pass_takes_the_roster_from_the_hub_and_commits_round_one(world):
    tmp, remote, fleet = world
    result = _pass(tmp, remote, fleet)
    assert result.action == StartRound(tuple(CLUSTERS))
    assert _commits(remote)[0] == f"fl({EXP}): round 1 roster"
    roster = yaml.safe_load(git(remote, "show", f"main:{PATH}/roster.yaml"))
    assert roster["clusters"] == CLUSTERS and roster["source"] == "hub"
    works = git(remote, "ls-tree", "--name-only", f"main:{PATH}/works").splitlines()
    assert works == [f"{c}.yaml" for c in CLUSTERS]
    # Round 0's model is in the store, under the digest the round state names.
    assert fleet.store.has_model(_state(remote)["globalModelDigest"])


def test_a_pass_with_nothing_to_do_makes_no_commit(world):
    tmp, remote, fleet = world
    _pass(tmp, remote, fleet)
    before = git(remote, "rev-parse", "main")
    result = _pass(tmp, remote, fleet)
    assert isinstance(result.action, Wait)
    assert "0 succeeded" in result.message
    assert git(remote, "rev-parse", "main") == before


def test_round_waits_until_every_roster_cluster_is_done_then_aggregates(world):
    tmp, remote, fleet = world
    _pass(tmp, remote, fleet)
    fleet.run_jobs(skip=["cluster-d"])
    assert isinstance(_pass(tmp, remote, fleet).action, Wait)
    fleet.run_jobs()
    result = _pass(tmp, remote, fleet)
    assert result.action == Aggregate(tuple(CLUSTERS), (), timed_out=False)
    assert _commits(remote)[0] == f"fl({EXP}): round 1 -> 2"
    record = yaml.safe_load(git(remote, "show", f"main:{PATH}/.history/round-1.yaml"))
    assert record["contributors"] == CLUSTERS
    assert record["model"] == _state(remote)["globalModelDigest"] == result.model_digest
    trailers = git(remote, "log", "-1", "--format=%(trailers:only)", "main")
    assert f"FL-Experiment: {EXP}" in trailers
    assert "FL-Round: 2" in trailers
    assert f"FL-Model: {result.model_digest}" in trailers
    assert "FL-Blueprint: sha256:" in trailers


def test_after_the_timeout_a_quorum_is_enough_and_the_missing_cluster_is_recorded(world):
    tmp, remote, fleet = world
    _pass(tmp, remote, fleet)
    fleet.run_jobs(skip=["cluster-d"])
    later = datetime.now(UTC) + timedelta(minutes=31)
    result = _pass(tmp, remote, fleet, now=later)
    assert isinstance(result.action, Aggregate)
    record = yaml.safe_load(git(remote, "show", f"main:{PATH}/.history/round-1.yaml"))
    assert record["contributors"] == ["cluster-a", "cluster-b", "cluster-c"]
    assert record["timedOut"] is True
    assert record["status"]["cluster-d"] != "Succeeded"


def test_below_quorum_retries_once_with_a_new_job_then_fails_the_experiment(world):
    tmp, remote, fleet = world
    _pass(tmp, remote, fleet)
    fleet.run_jobs(fail=["cluster-a", "cluster-b"])
    result = _pass(tmp, remote, fleet)
    assert isinstance(result.action, RetryRound)
    assert _commits(remote)[0] == f"fl({EXP}): round 1 retry (attempt 2)"
    work = yaml.safe_load(git(remote, "show", f"main:{PATH}/works/cluster-a.yaml"))
    job = work["spec"]["manifestConfigs"][0]["resourceIdentifier"]["name"]
    assert job == f"fl-{EXP}-r1-a2"
    fleet.run_jobs(fail=["cluster-a", "cluster-b"])
    result = _pass(tmp, remote, fleet)
    assert isinstance(result.action, Finish)
    state = _state(remote)
    assert state["phase"] == "Failed"
    assert "2 of 4 clusters succeeded" in state["message"]
    assert git(remote, "ls-tree", "--name-only", f"main:{PATH}").count("works") == 0


def test_the_experiment_completes_after_its_last_round(world):
    tmp, remote, fleet = world
    _pass(tmp, remote, fleet)
    for _ in range(3):
        fleet.run_jobs()
        assert isinstance(_pass(tmp, remote, fleet).action, Aggregate)
    state = _state(remote)
    assert state["phase"] == "Completed" and state["round"] == "3"
    assert _commits(remote)[:3] == [
        f"fl({EXP}): round 3 -> completed",
        f"fl({EXP}): round 2 -> 3",
        f"fl({EXP}): round 1 -> 2",
    ]
    assert isinstance(_pass(tmp, remote, fleet).action, Wait)
    # The hub prunes the works once the experiment is over.
    assert fleet.sync() == []


def test_two_reconcilers_running_the_same_pass_make_one_round_commit(world):
    tmp, remote, fleet = world
    _pass(tmp, remote, fleet)
    fleet.run_jobs()
    first = _pass(tmp, remote, fleet, workdir="one")
    second = _pass(tmp, remote, fleet, workdir="two")
    assert isinstance(first.action, Aggregate)
    assert isinstance(second.action, Wait)  # it found round 2 already committed
    subjects = _commits(remote)
    assert subjects.count(f"fl({EXP}): round 1 -> 2") == 1
    assert git(remote, "rev-list", "--merges", "main") == ""


def test_pull_request_mode_pushes_one_branch_per_round_and_notices_the_merge(tmp_path):
    store = tmp_path / "store"
    remote = make_remote(tmp_path, blueprint_text(store, mode="pull-request"))
    fleet = Fleet(tmp_path, remote, store, CLUSTERS)
    main_before = git(remote, "rev-parse", "main")
    first = _pass(tmp_path, remote, fleet)
    assert first.publish.branch == f"fl-gitops/{EXP}/round-1"
    assert git(remote, "rev-parse", "main") == main_before  # the target is untouched
    branch_tip = git(remote, "rev-parse", f"fl-gitops/{EXP}/round-1")
    # Until the PR merges, every pass derives the same change and reuses the branch.
    again = _pass(tmp_path, remote, fleet)
    assert git(remote, "rev-parse", f"fl-gitops/{EXP}/round-1") == branch_tip
    assert again.publish.pushed is False
    branches = git(remote, "for-each-ref", "--format=%(refname:short)", "refs/heads").splitlines()
    assert branches == ["fl-gitops/digits-small/round-1", "main"]
    # A person merges the PR (here: a fast-forward of main); the next pass sees round 1 running.
    git(remote, "update-ref", "refs/heads/main", branch_tip)
    fleet.run_jobs()
    result = _pass(tmp_path, remote, fleet)
    assert isinstance(result.action, Aggregate)
    assert result.publish.branch == f"fl-gitops/{EXP}/round-2"


def test_render_check_in_the_config_repo_agrees_with_what_reconcile_committed(world, capsys):
    from fl_gitops.cli import main
    from fl_gitops.placement import generate_inventory, inventory_list

    tmp, remote, fleet = world
    _pass(tmp, remote, fleet)
    fleet.run_jobs()
    _pass(tmp, remote, fleet)  # round 1 -> 2, roster from the hub
    clone = tmp / "ci-checkout"
    git(tmp, "clone", "-q", str(remote), str(clone))
    inventory = tmp / "inventory.yaml"
    blueprint = clone / PATH / "blueprint.yaml"
    spec = yaml.safe_load(blueprint.read_text())["spec"]["placement"]
    inventory.write_text(yaml.safe_dump(inventory_list(generate_inventory(7, spec=spec))))
    argv = ["render", str(blueprint), "--inventory", str(inventory), "--out", str(clone)]
    assert main([*argv, "--check"]) == 0, capsys.readouterr().out
