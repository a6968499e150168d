"""The hub is the authority for a round's updates; the store's metadata is a convenience.

Anyone who can write to the bucket can replace a cluster's update and rewrite its metadata
to match. These rounds run over a real local store (files) with what each cluster reported
through the hub, and play that party: bytes replaced, metadata rewritten.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fl_gitops.aggregate import NotEnoughUpdates, aggregate_from_store
from fl_gitops.aggregate.checks import Limits
from fl_gitops.reports import HubReport
from fl_gitops.store import ModelStore
from fl_gitops.tensors import serialize, sha256_digest, update_digest

SHAPES = {"a.weight": (6, 5), "b.bias": (5,)}


def model(seed: int, scale: float = 1.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {n: (rng.normal(size=s) * scale).astype(np.float32) for n, s in SHAPES.items()}


@pytest.fixture
def store(tmp_path) -> ModelStore:
    return ModelStore.open(str(tmp_path / "store"))


def put_round(store: ModelStore, n: int = 4) -> tuple[str, dict[str, HubReport]]:
    """Round 1 of ``n`` clusters, each update in the store and reported through the hub."""
    base = store.put_model(serialize(model(0)))
    reported = {}
    for k in range(n):
        data = serialize(model(10 + k))
        record = store.put_update(
            1,
            f"c{k}",
            data,
            {"base_model": base, "num_examples": 10 * (k + 1), "metrics": {"acc": 0.1 * k}},
        )
        reported[f"c{k}"] = HubReport(record["sha256"], 10 * (k + 1), {"acc": 0.1 * k})
    return base, reported


def rewrite_meta(store: ModelStore, cluster: str, **fields: object) -> None:
    path = f"{store.root}/rounds/1/updates/{cluster}.json"
    meta = json.loads(store.fs.cat_file(path))
    meta.update(fields)
    store.fs.pipe_file(path, json.dumps(meta).encode())


def test_reported_rounds_give_the_bytes_of_a_by_hand_round_and_record_each_digest(store):
    base, reported = put_round(store)
    by_hand = aggregate_from_store(store, 1, base, strategy="fedavg")
    through_hub = aggregate_from_store(store, 1, base, strategy="fedavg", reported=reported)
    assert through_hub.digest == by_hand.digest
    assert through_hub.rejected == {}
    assert through_hub.record["updates"] == {c: r.digest for c, r in reported.items()}
    assert through_hub.record["authority"] == "hub"
    assert by_hand.record["authority"] == "store"


def test_an_update_replaced_with_rewritten_metadata_is_rejected_naming_both_digests(store):
    base, reported = put_round(store)
    # A party with write access to the bucket: a valid-looking update, metadata to match.
    forged = serialize(model(99, scale=1.0))
    store.put_update(1, "c2", forged, {"base_model": base, "num_examples": 10_000})
    result = aggregate_from_store(store, 1, base, strategy="fedavg", reported=reported)
    assert result.rejected == {
        "c2": f"the store's update hashes to {update_digest(forged)}, "
        f"the hub reported {reported['c2'].digest}"
    }
    assert result.contributors == ["c0", "c1", "c3"]
    assert "c2" not in result.record["updates"]
    # By hand, trusting the store, the forgery would have gone in.
    assert "c2" in aggregate_from_store(store, 1, base, strategy="fedavg").contributors


def test_the_weight_and_metrics_are_the_hubs_not_the_metadatas(store):
    base, reported = put_round(store, n=2)
    rewrite_meta(store, "c1", num_examples=2**53, metrics={"acc": 1e308})
    result = aggregate_from_store(store, 1, base, strategy="fedavg", reported=reported)
    assert result.rejected == {}
    assert result.weights == pytest.approx({"c0": 10 / 30, "c1": 20 / 30})
    assert result.record["num_examples"] == {"c0": 10, "c1": 20}
    assert result.metrics == pytest.approx({"acc": (0.0 * 10 + 0.1 * 20) / 30})


def test_a_cluster_the_hub_has_no_report_for_is_rejected_and_the_round_goes_on(store):
    base, reported = put_round(store)
    del reported["c3"]
    result = aggregate_from_store(store, 1, base, strategy="fedavg", reported=reported)
    assert result.rejected == {"c3": "no result reported through the hub"}
    assert result.contributors == ["c0", "c1", "c2"]


def test_a_reported_cluster_with_no_update_in_the_store_is_rejected(store):
    base, reported = put_round(store, n=2)
    reported["c9"] = HubReport("sha256:" + "a" * 64, 5)
    result = aggregate_from_store(store, 1, base, strategy="fedavg", reported=reported)
    assert result.rejected == {"c9": "no update in the store (its Job reported success)"}


def test_below_the_quorum_the_rejections_say_which_digest_failed(store):
    base, reported = put_round(store, n=2)
    reported["c0"] = HubReport("sha256:" + "0" * 64, 10)
    with pytest.raises(NotEnoughUpdates) as exc:
        aggregate_from_store(
            store, 1, base, strategy="fedavg", reported=reported, limits=Limits(min_updates=2)
        )
    # Hashed by the algorithm the hub's digest names (sha256 here), not the store's.
    with store.update_file(1, "c0") as path:
        actual = sha256_digest(Path(path).read_bytes())
    assert exc.value.rejected == {
        "c0": f"the store's update hashes to {actual}, the hub reported sha256:{'0' * 64}"
    }


def test_a_round_re_aggregated_from_its_record_and_the_store_gives_the_same_bytes(store):
    """What `fl-gitops verify --reaggregate` does: the record names every update to read."""
    base, reported = put_round(store, n=5)
    # c5 goes far: refused by the distance bound, yet its digest is recorded, because the
    # median that refused it must be found again.
    far = {n: a * np.float32(1e6) for n, a in model(15).items()}
    record = store.put_update(1, "c5", serialize(far), {"base_model": base, "num_examples": 7})
    reported["c5"] = HubReport(record["sha256"], 7)
    result = aggregate_from_store(
        store, 1, base, strategy="fedadam", reported=reported, limits=Limits(min_updates=3)
    )
    assert list(result.rejected) == ["c5"]
    rec = json.loads(json.dumps(result.record))  # as it is stored
    assert sorted(rec["updates"]) == ["c0", "c1", "c2", "c3", "c4", "c5"]
    again = aggregate_from_store(
        store,
        rec["round"],
        rec["base_model"],
        strategy=rec["strategy"],
        options=rec["options"],
        seed=rec["seed"],
        limits=Limits(**rec["limits"]),
        clusters=list(rec["updates"]),
        reported={
            c: HubReport(d, rec["num_examples"].get(c, 1)) for c, d in rec["updates"].items()
        },
    )
    assert again.digest == result.digest
    assert again.rejected == result.rejected
