"""The hub, not the store, is the authority on a round's updates.

Real Git, a local hub (its agent reads each Job's result file as the result ConfigMap's
feedback) and a file store. A cluster that reports nothing valid, or whose update in the
store is not the one it reported, is rejected with the reason; the round goes on with
the rest, or retries below quorum.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fl_gitops.reconcile import Aggregate, RetryRound
from fl_gitops.reports import report_data
from fl_gitops.tensors import load_bytes, serialize

from .fleet import Fleet, blueprint_text, git, make_remote, reconcile_pass, round_record

CLUSTERS = ["cluster-a", "cluster-b", "cluster-c", "cluster-d"]
RESULT = "fl-digits-small-r1-result"


@pytest.fixture
def world(tmp_path: Path):
    store = tmp_path / "store"
    remote = make_remote(tmp_path, blueprint_text(store))
    fleet = Fleet(tmp_path, remote, store, CLUSTERS)
    return tmp_path, remote, fleet


def _run(fleet: Fleet, results: dict[str, dict[str, str] | None]) -> None:
    """Every Job writes its update; those in ``results`` report that instead of the truth."""
    for work in fleet.sync():
        record = fleet.write_update(work.config)
        fleet.write_result(work, record)
        if work.cluster in results:
            data = results[work.cluster]
            if data is None:
                work.result_file.unlink()
            else:
                work.result_file.write_text(json.dumps(data))
        fleet.agent.report(work, succeeded=True)


def test_a_succeeded_job_that_reported_nothing_is_rejected_and_the_round_goes_on(world):
    tmp, remote, fleet = world
    reconcile_pass(tmp, remote, fleet)
    _run(fleet, {"cluster-b": None})
    result = reconcile_pass(tmp, remote, fleet)
    assert result.action == Aggregate(tuple(CLUSTERS), (), timed_out=False)
    record = round_record(remote)
    assert record["contributors"] == ["cluster-a", "cluster-c", "cluster-d"]
    assert record["rejected"] == {
        "cluster-b": (
            f"no valid result reported through the hub: result ConfigMap {RESULT}: "
            "digest: not reported"
        )
    }


def test_a_bad_report_is_rejected_with_its_reason_and_none_of_its_bytes(tmp_path):
    tmp, store = tmp_path, tmp_path / "store"
    remote = make_remote(tmp, blueprint_text(store, min_clusters=2))
    fleet = Fleet(tmp, remote, store, CLUSTERS)
    reconcile_pass(tmp, remote, fleet)
    digest = "sha256:" + "0" * 64
    _run(
        fleet,
        {
            "cluster-a": {**report_data(digest, 1, {}), "numExamples": "9" * 30},
            "cluster-c": {**report_data(digest, 1, {}), "metrics": '{"x": "CLUSTER-BYTES"}'},
        },
    )
    reconcile_pass(tmp, remote, fleet)
    record = round_record(remote)
    assert record["contributors"] == ["cluster-b", "cluster-d"]
    prefix = f"no valid result reported through the hub: result ConfigMap {RESULT}: "
    assert record["rejected"] == {
        "cluster-a": prefix + "numExamples: expected an integer from 0 to 2^53 - 1",
        "cluster-c": prefix + "metrics.x: expected a number",
    }
    log = git(remote, "log", "-1", "--format=%B", "main")
    assert "CLUSTER-BYTES" not in log and "9" * 30 not in log


def test_weights_are_the_reported_num_examples_not_the_stores(world):
    tmp, remote, fleet = world
    reconcile_pass(tmp, remote, fleet)
    _run(fleet, {})
    # a party with bucket access inflates cluster-d's num_examples in its metadata only
    meta_path = Path(fleet.store.uri.removeprefix("file://")) / "rounds/1/updates/cluster-d.json"
    meta = json.loads(meta_path.read_text())
    honest = meta["num_examples"]
    meta["num_examples"] = 10**9
    meta_path.write_text(json.dumps(meta))
    reconcile_pass(tmp, remote, fleet)
    record = round_record(remote)
    assert record["contributors"] == CLUSTERS
    examples = {"cluster-a": 100, "cluster-b": 110, "cluster-c": 120, "cluster-d": honest}
    total = sum(examples.values())
    assert record["weights"] == {c: round(n / total, 6) for c, n in examples.items()}


def test_an_update_replaced_in_the_store_is_rejected_naming_both_digests(world):
    tmp, remote, fleet = world
    reconcile_pass(tmp, remote, fleet)
    _run(fleet, {})
    # replaced by a valid-looking update, with metadata rewritten to match (bucket access)
    stored = fleet.store.read_update_meta(1, "cluster-a")
    reported = stored["sha256"]
    update = load_bytes(fleet.store.get_update(1, "cluster-a"))
    forged = {k: (v * np.float32(0.5)).astype(np.float32) for k, v in sorted(update.items())}
    keep = {k: v for k, v in stored.items() if k not in ("sha256", "round", "cluster")}
    replaced = fleet.store.put_update(1, "cluster-a", serialize(forged), keep)["sha256"]
    assert replaced != reported
    reconcile_pass(tmp, remote, fleet)
    record = round_record(remote)
    assert record["contributors"] == ["cluster-b", "cluster-c", "cluster-d"]
    assert record["rejected"] == {
        "cluster-a": f"the store's update hashes to {replaced}, the hub reported {reported}"
    }


def test_below_quorum_for_want_of_reports_the_round_is_retried_saying_why(world):
    tmp, remote, fleet = world
    reconcile_pass(tmp, remote, fleet)
    _run(fleet, {"cluster-a": None, "cluster-b": None})
    result = reconcile_pass(tmp, remote, fleet)
    assert isinstance(result.action, RetryRound)
    assert (
        f"cluster-a: no valid result reported through the hub: result ConfigMap {RESULT}: "
        "digest: not reported" in result.message
    )
