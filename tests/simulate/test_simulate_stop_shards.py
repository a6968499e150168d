"""A simulation stopped while a round's shards run (Ctrl-C, SIGTERM, an error) leaves no
shard worker behind: the local Job controller's detached workers are killed and their Jobs
forgotten, and running the simulation again finishes the experiment."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fl_gitops.cli import main
from fl_gitops.hub import LocalHub, ShardJobSpec
from fl_gitops.simulate import _run
from fl_gitops.tensors import serialize

REPO = Path(__file__).resolve().parents[2]
STOCK = REPO / "blueprints" / "digits-fedavg.yaml"


def _waiting_job(tmp: Path, name: str) -> ShardJobSpec:
    """A 2-index Job whose workers each run shard 0 of 2 by hand, waiting for a shard 1
    that never comes: workers that stay alive until someone stops them."""
    model = tmp / f"{name}.safetensors"
    model.write_bytes(serialize({"w": np.zeros(4, dtype=np.float32)}))
    (tmp / f"{name}-updates").mkdir()
    args = (
        "aggregate", "--model", str(model), "--updates", str(tmp / f"{name}-updates"),
        "--round", "1", "--strategy", "fedavg", "--shard", "0/2", "--wait", "120",
        "--out", str(tmp / f"{name}-shards"),
    )  # fmt: skip
    return ShardJobSpec(
        namespace="fl-system", name=name, experiment="exp", round=1, shards=2, image="unused",
        args=args, service_account="exp-aggregate", active_deadline_seconds=3600,
        backoff_limit_per_index=1,
    )  # fmt: skip


def _running(pid: int) -> bool:
    """Alive and not a zombie (a killed child this test process has not reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _gone(pids: list[int]) -> bool:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not any(_running(pid) for pid in pids):
            return True
        time.sleep(0.05)
    return False


def test_deleting_every_shard_job_kills_every_worker(tmp_path: Path) -> None:
    hub = LocalHub(tmp_path / "hub")
    specs = [_waiting_job(tmp_path, f"exp-agg-r1-{i}") for i in range(2)]
    for spec in specs:
        assert hub.shard_job(spec).active == 2
    pids = [p for s in specs for p in hub.shard_workers(s.namespace, s.name).values()]
    assert len(pids) == 4
    assert LocalHub(tmp_path / "hub").delete_all_shard_jobs() == 2
    assert _gone(pids)
    assert all(not hub.shard_job(s, create=False).exists for s in specs)
    assert LocalHub(tmp_path / "hub").delete_all_shard_jobs() == 0


def test_a_simulation_interrupted_while_shards_run_leaves_none_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    started: list[int] = []
    real_tick = _run._Loop.tick

    def tick(self: Any, result: Any) -> Any:
        # The round's shards are running on the simulation's own hub when Ctrl-C comes.
        hub = LocalHub(self.world.hub)
        spec = _waiting_job(tmp_path, "exp-agg-r1-stopped")
        hub.shard_job(spec)
        started.extend(hub.shard_workers(spec.namespace, spec.name).values())
        raise KeyboardInterrupt

    monkeypatch.setattr(_run._Loop, "tick", tick)
    args = ["simulate", str(STOCK), "--clusters", "3", "--rounds", "1", "--workdir", str(work)]
    assert main([*args, "--no-plot", "-q", "--aggregation-shards", "2"]) == 130
    assert len(started) == 2
    assert _gone(started)
    assert not list((work / "hub").glob("shard-jobs/*/*/job.json"))
    monkeypatch.setattr(_run._Loop, "tick", real_tick)
    assert main([*args, "--no-plot", "-q", "--aggregation-shards", "2"]) == 0
