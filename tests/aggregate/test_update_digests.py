"""An update's digest names its algorithm: ``blake3-blocks:`` (what clusters report now:
BLAKE3, about 3.5x faster to check than SHA-256, over a list of block hashes that a shard
checks its slice against), or ``blake3:`` and ``sha256:`` of the whole file (rounds
reported before). A round checks each update with the algorithm its reported digest
names, and gives the same model either way."""

from __future__ import annotations

import json

import blake3
import numpy as np
import pytest

from fl_gitops.aggregate import NotEnoughUpdates, aggregate_from_store, aggregate_round
from fl_gitops.reports import HubReport, ReportError, parse_report
from fl_gitops.store import ModelStore
from fl_gitops.tensors import serialize, sha256_digest, update_digest

SHAPES = {"a.weight": (64, 33), "b.bias": (33,)}


def model(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {n: rng.normal(size=s).astype(np.float32) for n, s in SHAPES.items()}


def _round(tmp_path, algorithms: list[str]) -> tuple[str, list[tuple[str, str, dict]]]:
    base = tmp_path / "base.safetensors"
    base_bytes = serialize(model(0))
    base.write_bytes(base_bytes)
    updates = []
    for k, algorithm in enumerate(algorithms):
        data = serialize(model(10 + k))
        path = tmp_path / f"c{k}.safetensors"
        path.write_bytes(data)
        digest = {
            "blake3-blocks": update_digest(data),
            "blake3": "blake3:" + blake3.blake3(data).hexdigest(),
            "sha256": sha256_digest(data),
        }[algorithm]
        meta = {
            "round": 1,
            "cluster": f"c{k}",
            "base_model": sha256_digest(base_bytes),
            "num_examples": 10 + k,
            "metrics": {},
            "sha256": digest,
        }
        updates.append((f"c{k}", str(path), meta))
    return str(base), updates


@pytest.mark.parametrize("strategy", ["fedavg", "fedmedian", "krum"])
def test_every_algorithm_and_a_mixed_round_give_the_same_model(tmp_path, strategy: str) -> None:
    results = []
    for i, algorithms in enumerate(
        (
            ["sha256"] * 5,
            ["blake3"] * 5,
            ["blake3-blocks"] * 5,
            ["blake3-blocks", "sha256", "blake3", "blake3-blocks", "blake3"],
        )
    ):
        here = tmp_path / str(i)
        here.mkdir()
        base, updates = _round(here, algorithms)
        result = aggregate_round(base, updates, strategy=strategy, round=1)
        assert result.rejected == {}
        results.append(result.digest)
    assert len(set(results)) == 1
    assert results[0].startswith("sha256:")  # models stay content-addressed by SHA-256


@pytest.mark.parametrize("algorithm", ["blake3", "blake3-blocks"])
def test_a_replaced_update_is_refused_naming_both_digests(tmp_path, algorithm: str) -> None:
    base, updates = _round(tmp_path, [algorithm] * 4)
    cluster, path, meta = updates[2]
    other = serialize(model(99))
    with open(path, "wb") as f:
        f.write(other)
    result = aggregate_round(base, updates, strategy="fedavg", round=1)
    reason = result.rejected[cluster]
    assert meta["sha256"] in reason
    found = update_digest(other) if algorithm == "blake3-blocks" else None
    assert (found or "blake3:" + blake3.blake3(other).hexdigest()) in reason


def test_the_hub_reports_either_algorithm_and_nothing_else() -> None:
    metrics = json.dumps({})
    for digest in ("blake3-blocks:" + "c" * 64, "blake3:" + "a" * 64, "sha256:" + "b" * 64):
        report = parse_report({"digest": digest, "numExamples": "3", "metrics": metrics})
        assert report.digest == digest
    for digest in (
        "md5:" + "a" * 64,
        "blake3:" + "A" * 64,
        "blake3:" + "a" * 63,
        "blake3-block:" + "a" * 64,
    ):
        with pytest.raises(ReportError):
            parse_report({"digest": digest, "numExamples": "3", "metrics": metrics})


def test_a_block_list_report_through_the_hub_is_the_authority(tmp_path) -> None:
    store = ModelStore.open(str(tmp_path / "store"))
    base = store.put_model(serialize(model(0)))
    reported = {}
    for k in range(3):
        data = serialize(model(10 + k))
        store.put_update(1, f"c{k}", data, {"base_model": base, "num_examples": 5 + k})
        reported[f"c{k}"] = HubReport(update_digest(data), 5 + k, {})
    result = aggregate_from_store(store, 1, base, strategy="fedavg", reported=reported)
    assert sorted(result.contributors) == ["c0", "c1", "c2"]
    # The hub names other bytes for c1: refused, whatever the store's metadata says.
    reported["c1"] = HubReport(update_digest(b"other bytes"), 6, {})
    result = aggregate_from_store(store, 1, base, strategy="fedavg", reported=reported)
    assert "c1" in result.rejected and "c1" not in result.contributors
    reported = {c: HubReport(update_digest(b"x"), 5, {}) for c in ("c0", "c1", "c2")}
    with pytest.raises(NotEnoughUpdates):
        aggregate_from_store(store, 1, base, strategy="fedavg", reported=reported)
