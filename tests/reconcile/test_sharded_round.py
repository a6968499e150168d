"""A round aggregated by the hub's shards (``spec.aggregation.shards: 3``), level-triggered.

The real parts: the reconcile pass, Git (a bare remote), a file store, and ``LocalHub``'s
Job runner, which runs the shard entrypoint (``fl-gitops aggregate --inputs ... --shard
auto/3``) in real detached processes. The clusters are the fleet's deterministic ones
(``fleet.py``; no torch). The round's model and record must be one pod's, bit for bit,
whatever is killed on the way: a pass after it created the Job, a shard's worker.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from fl_gitops.gitops import ConfigRepo
from fl_gitops.hub import LocalHub
from fl_gitops.reconcile import Aggregate, PassHooks, PassResult, RetryRound, Wait, reconcile_once
from fl_gitops.render import Names
from fl_gitops.tensors import serialize

from .fleet import EXP, PATH, Fleet, blueprint_text, git, make_remote

CLUSTERS = ["cluster-a", "cluster-b", "cluster-c", "cluster-d"]


class Killed(Exception):
    """Stands for the pass's process dying at a step."""


def _blueprint(store: Path, shards: int, **changes: Any) -> str:
    text = blueprint_text(store, rounds=2, **changes)
    if shards == 1:
        return text
    extra = f"  aggregation:\n    shards: {shards}\n    backoffLimitPerIndex: 2\n"
    return text.replace("spec:\n", "spec:\n" + extra, 1)


class Run:
    """One experiment: its remote, store, fleet (with a LocalHub over a state dir)."""

    def __init__(self, base: Path, shards: int, **changes: Any) -> None:
        base.mkdir(parents=True)
        self.base = base
        self.store = base / "store"
        self.remote = make_remote(base, _blueprint(self.store, shards, **changes))
        self.fleet = Fleet(base, self.remote, self.store, CLUSTERS, hub_dir=base / "hub")
        self.seen: set[str] = set()  # the Jobs' files seen while a pass waited for them

    def hub(self) -> LocalHub:
        """A fresh LocalHub over the same directory: a later pass in another process."""
        return LocalHub(self.base / "hub")

    def reconcile(self, hooks: PassHooks | None = None, hub: LocalHub | None = None) -> PassResult:
        repo = ConfigRepo.open(str(self.remote), branch="main", workdir=self.base / "reconciler")
        return reconcile_once(
            repo, hub or self.fleet.hub, path=PATH, now=datetime.now(UTC), hooks=hooks,
            sleep=lambda s: None,
        )  # fmt: skip

    def until_aggregated(self, timeout: float = 120.0) -> PassResult:
        """Passes (each with a fresh hub object) until one is not waiting for the shards."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.reconcile(hub=self.hub())
            if result.shards is None:
                return result
            assert isinstance(result.action, Wait)
            self.seen |= {p.name for p in (self.base / "hub" / "shard-jobs").glob("*/*/*")}
            assert result.message.startswith("aggregating round ")
            assert result.message.endswith(" of 3 shards done")
            assert time.monotonic() < deadline, result.message
            time.sleep(0.2)

    def show(self, rel: str) -> dict[str, Any]:
        return yaml.safe_load(git(self.remote, "show", f"main:{PATH}/{rel}"))

    def final(self) -> tuple[str, list[dict[str, Any]]]:
        state = self.show("hub/round-state.yaml")["data"]
        records = [self.show(f".history/round-{r}.yaml") for r in (1, 2)]
        return state["globalModelDigest"], records


def _comparable(record: dict[str, Any]) -> dict[str, Any]:
    """A round record without what only a sharded round says (its shards and plan)."""
    return {k: v for k, v in record.items() if k != "aggregation"}


def _two_rounds(run: Run) -> None:
    run.reconcile()  # round 1's roster
    for _ in range(2):
        run.fleet.run_jobs()
        result = run.until_aggregated()
        assert isinstance(result.action, Aggregate), result.message


@pytest.fixture(scope="module")
def one_pod(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, list[dict[str, Any]]]:
    run = Run(tmp_path_factory.mktemp("one-pod") / "run", shards=1)
    _two_rounds(run)
    return run.final()


def test_a_round_in_three_shards_commits_one_pods_model_and_record(one_pod, tmp_path):
    run = Run(tmp_path / "run", shards=3)
    _two_rounds(run)
    digest, records = run.final()
    assert digest == one_pod[0]
    assert [_comparable(r) for r in records] == [_comparable(r) for r in one_pod[1]]
    for record in records:  # the record names the shards that made it
        assert record["aggregation"]["shards"] == 3
        assert record["aggregation"]["plan"].startswith("sha256:")
    # Merged and published: the shards' Job is deleted, its workers gone, and their files
    # (slices of a model the store now holds whole); the inputs document stays.
    assert not list((run.base / "hub" / "shard-jobs" / "fl-system").iterdir())
    for round_ in (1, 2):
        left = [p.name for p in (run.store / "rounds" / str(round_) / "aggregation").iterdir()]
        assert len(left) == 1 and left[0].startswith("inputs-"), left


def test_a_pass_killed_after_creating_the_job_and_a_killed_shard_still_give_one_pods_model(
    one_pod, tmp_path
):
    run = Run(tmp_path / "run", shards=3)
    run.reconcile()
    run.fleet.run_jobs()

    def die() -> None:
        raise Killed

    with pytest.raises(Killed):
        run.reconcile(PassHooks(after_shard_job=die))
    # The Job the killed pass created runs on: its three workers are there.
    (job,) = (run.base / "hub" / "shard-jobs" / "fl-system").iterdir()
    workers = run.hub().shard_workers("fl-system", job.name)
    assert sorted(workers) == [0, 1, 2]
    os.killpg(workers[1], signal.SIGKILL)  # one shard's pod dies mid-round
    result = run.until_aggregated()
    assert isinstance(result.action, Aggregate), result.message
    # Index 1 ran again, alone: a second attempt, none for the others.
    assert "index-1.attempt-2.log" in run.seen
    assert not {"index-0.attempt-2.log", "index-2.attempt-2.log"} & run.seen
    run.fleet.run_jobs()
    assert isinstance(run.until_aggregated().action, Aggregate)
    digest, records = run.final()
    assert digest == one_pod[0]
    assert [_comparable(r) for r in records] == [_comparable(r) for r in one_pod[1]]


def test_a_shard_job_out_of_retries_retries_the_round_with_the_hubs_reason(tmp_path):
    run = Run(tmp_path / "run", shards=3, min_clusters=4)
    run.reconcile()
    run.fleet.run_jobs()
    result = run.reconcile()
    assert isinstance(result.action, Wait) and result.shards is not None
    (job,) = (run.base / "hub" / "shard-jobs" / "fl-system").iterdir()
    # Shard 2 keeps dying: its first run and both retries (backoffLimitPerIndex 2).
    deadline = time.monotonic() + 60
    while True:
        result = run.reconcile(hub=run.hub())
        if result.shards is None:
            break
        for index, pid in run.hub().shard_workers("fl-system", job.name).items():
            if index == 2:
                os.killpg(pid, signal.SIGKILL)
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert isinstance(result.action, RetryRound)
    assert "the aggregation shards failed: FailedIndexes: shard index 2 failed 3 times" in (
        result.message
    )
    assert not job.exists()  # the failed Job is deleted once the retry is committed


def test_a_shards_output_swapped_after_its_job_ended_is_refused_and_the_round_retried(
    one_pod, tmp_path
):
    """A bucket writer replaces shard 1's model slice once the Job is done, and rewrites its
    decision file to name the new bytes: the decision no longer hashes to what the shard's
    pod reported through the hub as it ended, so the pass merges nothing and retries the
    round; the retry's shards give one pod's model."""
    run = Run(tmp_path / "run", shards=3, min_clusters=4)
    run.reconcile()
    run.fleet.run_jobs()
    swapped: list[str] = []

    def swap() -> None:
        for decision in sorted(run.store.glob("rounds/1/aggregation/shards-a1-*/*.decision.json")):
            if swapped or not decision.name.startswith("shard-0001-"):
                continue
            others = list(decision.parent.glob("*.decision.json"))
            if len(others) < 3:  # the Job is not done yet
                return
            model = decision.with_name(decision.name.replace("decision.json", "model.bin"))
            data = bytearray(model.read_bytes())
            data[0] ^= 0xFF
            model.write_bytes(bytes(data))
            doc = json.loads(decision.read_text())
            doc["slice"] = "sha256:" + hashlib.sha256(bytes(data)).hexdigest()
            decision.write_text(json.dumps(doc, indent=1) + "\n")
            swapped.append(str(decision))

    deadline = time.monotonic() + 120
    while True:
        result = run.reconcile(hooks=PassHooks(after_shard_job=swap), hub=run.hub())
        if result.shards is None:
            break
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert swapped
    assert isinstance(result.action, RetryRound), result.message
    assert "the aggregation shards' files in the store are not the ones they reported" in (
        result.message
    )
    assert "which its shard reported through the hub as it ended" in result.message
    run.fleet.run_jobs()  # the retry's Jobs: round 1 again, attempt 2
    result = run.until_aggregated()
    assert isinstance(result.action, Aggregate), result.message
    assert run.show("hub/round-state.yaml")["data"]["round"] == "2"
    assert run.show(".history/round-1.yaml")["model"] == one_pod[1][0]["model"]


def _shard_dirs(run: Run, round_: int) -> list[str]:
    return sorted(p.name for p in run.store.glob(f"rounds/{round_}/aggregation/shards-*"))


def test_a_pass_killed_after_its_push_leaves_shard_dirs_the_next_pass_removes(tmp_path):
    """Published but not cleaned up: the next pass finds round 1 left behind in Git and
    removes its shards' directory (a whole model's worth of slices); the inputs stay."""
    run = Run(tmp_path / "run", shards=3)
    run.reconcile()
    run.fleet.run_jobs()

    def killed() -> None:
        raise Killed

    deadline = time.monotonic() + 120
    while True:
        try:
            result = run.reconcile(hooks=PassHooks(after_push=killed), hub=run.hub())
        except Killed:
            break
        assert isinstance(result.action, Wait) and time.monotonic() < deadline
        time.sleep(0.2)
    assert run.show("hub/round-state.yaml")["data"]["round"] == "2"
    assert len(_shard_dirs(run, 1)) == 1
    run.reconcile(hub=run.hub())  # round 2 waits for its clusters: nothing to commit
    assert _shard_dirs(run, 1) == []
    assert list(run.store.glob("rounds/1/aggregation/inputs-*.json"))


def test_in_pull_request_mode_a_rounds_shard_dirs_go_once_the_pull_request_is_merged(
    one_pod, tmp_path
):
    run = Run(tmp_path / "run", shards=3, mode="pull-request")
    first = run.reconcile()
    git(run.remote, "update-ref", "refs/heads/main", first.publish.commit)  # round 1's PR
    run.fleet.run_jobs()
    result = run.until_aggregated()
    assert isinstance(result.action, Aggregate), result.message
    branch = f"fl-gitops/{EXP}/round-2"
    assert result.publish.branch == branch
    # Not merged yet: the next pass aggregates round 1 again from the same files.
    assert len(_shard_dirs(run, 1)) == 1
    again = run.until_aggregated()
    assert again.model_digest == result.model_digest == one_pod[1][0]["model"]
    assert len(_shard_dirs(run, 1)) == 1
    git(run.remote, "update-ref", "refs/heads/main", git(run.remote, "rev-parse", branch))
    run.reconcile(hub=run.hub())
    assert _shard_dirs(run, 1) == []


def test_shards_on_a_hub_that_cannot_run_them_is_a_clear_error(tmp_path):
    from fl_gitops.errors import InputError

    run = Run(tmp_path / "run", shards=3)
    run.reconcile()
    run.fleet.run_jobs()

    class ReadOnlyHub:
        """A hub that answers the pass's questions and runs no Job."""

        def __init__(self, hub: LocalHub) -> None:
            self.decided_clusters = hub.decided_clusters
            self.job_statuses = hub.job_statuses

    with pytest.raises(InputError, match=r"spec.aggregation.shards: 3 shards need a hub"):
        run.reconcile(hub=ReadOnlyHub(run.fleet.hub))  # type: ignore[arg-type]


def test_the_shards_job_is_named_by_the_round_and_its_inputs_digest(tmp_path):
    run = Run(tmp_path / "run", shards=3)
    run.reconcile()
    run.fleet.run_jobs()
    result = run.reconcile()
    assert result.shards is not None
    (job,) = (run.base / "hub" / "shard-jobs" / "fl-system").iterdir()
    (inputs,) = (run.store / "rounds" / "1" / "aggregation").glob("inputs-*.json")
    digest = "sha256:" + inputs.name[len("inputs-") : -len(".json")]
    assert job.name == Names(EXP, "fl-system", 1).aggregation_job(digest)
    # A second pass (another process's hub) finds that Job: no second one.
    run.reconcile(hub=run.hub())
    assert len(list((run.base / "hub" / "shard-jobs" / "fl-system").iterdir())) == 1
    run.until_aggregated()


def test_too_few_valid_updates_in_the_shards_retry_the_round_as_one_pod_does(tmp_path):
    """An update replaced in the store after its cluster reported: quorum 4 is missed; the
    sharded round's retry gives one pod's reasons, word for word."""
    messages = []
    for shards in (1, 3):
        run = Run(tmp_path / f"run-{shards}", shards=shards, min_clusters=4)
        run.reconcile()
        run.fleet.run_jobs()
        meta = run.fleet.store.read_update_meta(1, "cluster-b")
        data = bytearray(run.fleet.store.get_update(1, "cluster-b"))
        data[-1] ^= 1  # one bit of its last tensor
        keep = {k: v for k, v in meta.items() if k not in ("sha256", "round", "cluster")}
        run.fleet.store.put_update(1, "cluster-b", bytes(data), keep)
        result = run.until_aggregated()
        assert isinstance(result.action, RetryRound), result.message
        messages.append(result.message)
    assert messages[0] == messages[1]
    assert "rejected cluster-b: the store's update hashes to blake3-blocks:" in messages[1]


def _spec(args: tuple[str, ...], **changes: Any) -> Any:
    from fl_gitops.hub import ShardJobSpec

    fields: dict[str, Any] = {
        "namespace": "fl-system", "name": "exp-agg-r1-0123abcd", "experiment": "exp",
        "round": 1, "shards": 2, "image": "unused", "args": args,
        "service_account": "exp-aggregate", "active_deadline_seconds": 3600,
        "backoff_limit_per_index": 1,
    }  # fmt: skip
    return ShardJobSpec(**{**fields, **changes})


def _look_until(hub: LocalHub, spec: Any, done: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        state = hub.shard_job(spec)
        if done(state):
            return state
        assert time.monotonic() < deadline, state
        time.sleep(0.1)


def test_a_local_shard_job_past_its_deadline_fails_and_its_workers_are_killed(tmp_path):
    # Both indexes run shard 0 of 2 by hand: each waits for a shard 1 that never comes.
    model = tmp_path / "m.safetensors"
    model.write_bytes(serialize({"w": np.zeros(4, dtype=np.float32)}))
    (tmp_path / "updates").mkdir()
    args = (
        "aggregate", "--model", str(model), "--updates", str(tmp_path / "updates"),
        "--round", "1", "--strategy", "fedavg", "--shard", "0/2", "--wait", "120",
        "--out", str(tmp_path / "shards"),
    )  # fmt: skip
    hub = LocalHub(tmp_path / "hub")
    spec = _spec(args, active_deadline_seconds=2)
    first = hub.shard_job(spec)
    assert first.exists and first.active == 2 and not first.failed
    pids = hub.shard_workers(spec.namespace, spec.name)
    assert sorted(pids) == [0, 1]
    state = _look_until(hub, spec, lambda s: s.failed)
    assert state.reason == (
        "DeadlineExceeded: the Job was active longer than its activeDeadlineSeconds (2)"
    )
    assert state.active == 0 and not state.complete
    assert hub.shard_workers(spec.namespace, spec.name) == {}
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    # Another process's hub over the directory sees the same failed Job; deleting forgets it.
    again = LocalHub(tmp_path / "hub").shard_job(spec)
    assert again.failed and again.reason == state.reason
    assert hub.delete_shard_job(spec.namespace, spec.name)
    assert not hub.delete_shard_job(spec.namespace, spec.name)
    assert hub.shard_job(spec, create=False).exists is False


def test_a_local_shard_exiting_2_fails_the_job_at_once_without_a_retry(tmp_path):
    hub = LocalHub(tmp_path / "hub")
    spec = _spec(("aggregate", "--no-such-flag"), backoff_limit_per_index=3)
    state = _look_until(hub, spec, lambda s: s.failed or s.complete)
    assert state.failed and state.reason.startswith("PodFailurePolicy: shard index ")
    assert "exited 2 (an input error; a retry would read the same inputs)" in state.reason
    where = tmp_path / "hub" / "shard-jobs" / "fl-system" / spec.name
    assert not list(where.glob("index-*.attempt-2.log"))  # never run again
    index = state.reason.split("shard index ", 1)[1].split()[0]  # the one that exited first
    log = (where / f"index-{index}.attempt-1.log").read_text()
    assert "error: the following arguments are required: --out" in log


def test_status_shows_the_rounds_shards_while_they_run(tmp_path, capsys):
    import json

    from fl_gitops.cli import main

    run = Run(tmp_path / "run", shards=3)
    run.reconcile()
    run.fleet.run_jobs()
    result = run.reconcile()
    assert isinstance(result.action, Wait) and result.shards is not None
    args = [
        "status",
        "--repo",
        str(run.remote),
        "--path",
        PATH,
        "--local-hub",
        str(run.base / "hub"),
    ]
    capsys.readouterr()
    assert main([*args, "-o", "json"]) == 0
    shards = json.loads(capsys.readouterr().out)["aggregation"]
    (job,) = (run.base / "hub" / "shard-jobs" / "fl-system").iterdir()
    assert shards["job"] == f"fl-system/{job.name}" and shards["shards"] == 3
    assert not shards["failed"] and shards["done"] + shards["active"] <= 3
    assert main(args) == 0
    assert "aggregating round 1 in 3 shards: " in capsys.readouterr().out
    # Once the round is merged and committed, there is no Job to show.
    assert isinstance(run.until_aggregated().action, Aggregate)
    assert main([*args, "-o", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["aggregation"] is None
