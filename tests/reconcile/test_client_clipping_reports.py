"""Client-side clipping through the hub's reports (``dp.clipping: client``): real Git, a
local hub and a file store, clusters that clip their own (deterministic) update with
``client.clip`` to the clip in their round config and report the bit. The pass counts the
reported bits, keeps them in the record, carries the next clip into the next round's
configs, and rejects, each with its reason, a report without the bit, a bit that is not
``true`` or ``false``, and an update farther than the clip."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml

from fl_gitops.client.clip import clip_update, update_norm
from fl_gitops.reconcile import Aggregate
from fl_gitops.reports import report_data
from fl_gitops.simulate._agent import RoundWork
from fl_gitops.tensors import load_bytes, serialize

from .fleet import PATH, Fleet, blueprint_text, git, make_remote, reconcile_pass, round_record

CLUSTERS = ["cluster-a", "cluster-b", "cluster-c", "cluster-d"]
CLIP = 0.5
DP = (
    "    dp:\n"
    f"      clipNorm: {CLIP}\n"
    "      noiseMultiplier: 0.5\n"
    "      seed: 2\n"
    "      clipping: client\n"
    "      adaptive: {targetQuantile: 0.5, learningRate: 0.5, clippedCountStddev: 1.0}\n"
)


@pytest.fixture
def world(tmp_path: Path):
    store = tmp_path / "store"
    text = blueprint_text(store, min_clusters=2).replace(
        "    name: fedavg\n", "    name: fedavg\n" + DP
    )
    remote = make_remote(tmp_path, text)
    fleet = Fleet(tmp_path, remote, store, CLUSTERS)
    return tmp_path, remote, fleet


def _job(fleet: Fleet, work: RoundWork, *, clip: bool = True) -> tuple[dict[str, str], float]:
    """A cluster's Job: its step from the global model (0.01 (i + 1) on every weight, so
    cluster-a's is within 0.5 and the others are not), clipped to the config's clip unless
    ``clip`` is False; the update stored and the report's data, with the true bit."""
    config = work.config
    assert config.client_clip is not None
    base = load_bytes(fleet.store.get_model(config.global_digest))
    step = np.float32(0.01 * (config.roster_index + 1))
    update = {k: (v + step).astype(np.float32) for k, v in sorted(base.items())}
    norm = update_norm(update, base)
    if clip:
        update, within = clip_update(update, base, config.client_clip)
    else:
        within = norm <= config.client_clip
    meta = {"base_model": config.global_digest, "num_examples": 100, "metrics": {}}
    record = fleet.store.put_update(config.round, config.cluster, serialize(update), meta)
    data = report_data(record["sha256"], 100, {}, unclipped=within)
    return data, norm


def _run(
    fleet: Fleet,
    reports: dict[str, Callable[[dict[str, str]], dict[str, str]]] | None = None,
    no_clip: frozenset[str] = frozenset(),
) -> dict[str, float]:
    """Every Job runs and reports; ``reports`` rewrites a cluster's report, and the
    clusters in ``no_clip`` send their step unclipped. Returns each step's norm."""
    norms = {}
    for work in fleet.sync():
        data, norms[work.cluster] = _job(fleet, work, clip=work.cluster not in no_clip)
        if reports and work.cluster in reports:
            data = reports[work.cluster](data)
        work.result_file.parent.mkdir(parents=True, exist_ok=True)
        work.result_file.write_text(json.dumps(data))
        fleet.agent.report(work, succeeded=True)
    return norms


def test_the_bits_are_counted_recorded_and_the_next_clip_reaches_the_next_configs(world):
    tmp, remote, fleet = world
    reconcile_pass(tmp, remote, fleet)
    configs = {w.cluster: w.config for w in fleet.sync()}
    assert {c.client_clip for c in configs.values()} == {CLIP}
    norms = _run(fleet)
    assert norms["cluster-a"] < CLIP < norms["cluster-b"]
    result = reconcile_pass(tmp, remote, fleet)
    assert result.action == Aggregate(tuple(CLUSTERS), (), timed_out=False)
    dp = round_record(remote)["dp"]
    assert dp["clipping"] == "client"
    assert dp["clipNorm"] == CLIP
    assert "reportedUnclipped" not in dp  # who was clipped is not published
    kept = fleet.store.get_round_record(1)
    assert (kept["attempt"], kept["model"]) == (1, round_record(remote)["model"])
    assert kept["reportedUnclipped"] == {
        "cluster-a": True,
        "cluster-b": False,
        "cluster-c": False,
        "cluster-d": False,
    }
    assert dp["nextClipNorm"] == pytest.approx(
        CLIP * math.exp(-0.5 * (dp["noisyUnclippedFraction"] - 0.5))
    )
    # Round 2's configs carry the clip round 1 chose, and so does the round state.
    works = fleet.sync()
    assert {w.config.round for w in works} == {2}
    assert {w.config.client_clip for w in works} == {dp["nextClipNorm"]}
    state = yaml.safe_load(git(remote, "show", f"main:{PATH}/hub/round-state.yaml"))
    assert float(state["data"]["clipNorm"]) == dp["nextClipNorm"]


def test_a_report_without_the_bit_is_rejected_and_the_round_goes_on(world):
    tmp, remote, fleet = world
    reconcile_pass(tmp, remote, fleet)
    _run(fleet, {"cluster-c": lambda data: {k: v for k, v in data.items() if k != "unclipped"}})
    reconcile_pass(tmp, remote, fleet)
    record = round_record(remote)
    assert record["contributors"] == ["cluster-a", "cluster-b", "cluster-d"]
    assert record["rejected"] == {
        "cluster-c": (
            "no valid result reported through the hub: unclipped: not reported "
            "(the blueprint's dp.clipping is client)"
        )
    }
    kept = fleet.store.get_round_record(1)["reportedUnclipped"]
    assert set(kept) == {"cluster-a", "cluster-b", "cluster-d"}


def test_a_bit_that_is_not_true_or_false_is_rejected_saying_what_was_expected(world):
    tmp, remote, fleet = world
    reconcile_pass(tmp, remote, fleet)
    _run(fleet, {"cluster-b": lambda data: {**data, "unclipped": "yes"}})
    reconcile_pass(tmp, remote, fleet)
    record = round_record(remote)
    assert "cluster-b" not in record["contributors"]
    reason = record["rejected"]["cluster-b"]
    assert reason.endswith('unclipped: expected "true" or "false"')
    assert "yes" not in reason  # never the value a cluster sent


def test_an_update_farther_than_the_clip_is_refused_whatever_its_bit_says(world):
    tmp, remote, fleet = world
    reconcile_pass(tmp, remote, fleet)
    norms = _run(fleet, no_clip=frozenset({"cluster-d"}))
    reconcile_pass(tmp, remote, fleet)
    record = round_record(remote)
    assert record["contributors"] == ["cluster-a", "cluster-b", "cluster-c"]
    assert record["rejected"] == {
        "cluster-d": (
            f"L2 distance to the global model is {norms['cluster-d']:.6g}, over the bound of "
            f"{CLIP * (1 + 1e-6):.6g}: the round's clip (dp.clipping: client), which an "
            "honest cluster's Job clips its update to"
        )
    }
