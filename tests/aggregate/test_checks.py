"""Poisoned updates are each rejected with their reason while the rest are aggregated."""

from __future__ import annotations

import io
import json
import pickle
import zipfile

import numpy as np
import pytest

from fl_gitops.aggregate import NotEnoughUpdates, aggregate_round
from fl_gitops.aggregate.checks import Limits
from fl_gitops.tensors import serialize, sha256_digest

SHAPE = (4, 3)


def honest(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "b": rng.normal(size=3).astype(np.float32),
        "w": rng.normal(size=SHAPE).astype(np.float32),
    }


@pytest.fixture
def rf(round_files):
    rf = round_files({"b": np.zeros(3, np.float32), "w": np.zeros(SHAPE, np.float32)})
    # Honest clusters sort before, between and after the poisoned ones, so a late
    # rejection has to undo what was already summed.
    for name, seed in (("aa-honest", 1), ("mm-honest", 2), ("zz-honest", 3)):
        rf.add(name, honest(seed), num_examples=seed * 10)
    return rf


def clean_digest(rf) -> str:
    return aggregate_round(
        rf.base_path,
        [rf.written[c] for c in ("aa-honest", "mm-honest", "zz-honest")],
        strategy="fedavg",
        round=1,
    ).digest


def poisoned_bytes_and_reasons(rf):
    """cluster -> (file bytes or tensors, meta overrides, expected reason)."""
    nan = honest(4)
    nan["w"][1, 2] = np.nan
    inf = honest(5)
    inf["b"][0] = -np.inf
    good = serialize(honest(6))
    truncated = good[:-5]
    wrong_shape = honest(7) | {"w": np.zeros((3, 4), np.float32)}
    wrong_dtype = honest(8) | {"w": np.zeros(SHAPE, np.float64)}
    missing = {"w": np.zeros(SHAPE, np.float32)}
    pickled = pickle.dumps(honest(9))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", pickled)
    zipped = buf.getvalue()
    # A header whose offsets claim the second tensor overlaps the first.
    liar_header = json.dumps(
        {
            "b": {"dtype": "F32", "shape": [3], "data_offsets": [0, 12]},
            "w": {"dtype": "F32", "shape": [4, 3], "data_offsets": [8, 56]},
        }
    ).encode()
    liar = len(liar_header).to_bytes(8, "little") + liar_header + bytes(56)
    oversized = serialize(honest(10), {"padding": "x" * 4096})
    base = rf.base_digest
    other = "sha256:" + "0" * 64
    return {
        "nan": (
            serialize(nan),
            {},
            "tensor 'w' holds NaN or Inf",
        ),
        "inf": (
            serialize(inf),
            {},
            "tensor 'b' holds NaN or Inf",
        ),
        "shape": (
            serialize(wrong_shape),
            {},
            "tensor 'w' has shape [3, 4], expected [4, 3]",
        ),
        "dtype": (
            serialize(wrong_dtype),
            {},
            "tensor 'w' has dtype F64, expected F32",
        ),
        "names": (
            serialize(missing),
            {},
            "tensor names differ from the global model's: missing b",
        ),
        "stale": (
            good,
            {"round": 0},
            "update is for round 0, expected round 1",
        ),
        "wrong-base": (
            good,
            {"base_model": other},
            f"update was trained from {other}, expected {base}",
        ),
        "digest": (
            good,
            {"sha256": sha256_digest(b"something else")},
            f"file hashes to {sha256_digest(good)}, "
            f"metadata says {sha256_digest(b'something else')}",
        ),
        "truncated": (
            truncated,
            {},
            "not a valid safetensors file: tensor data needs 60 bytes but the file holds "
            "55 after its header: truncated",
        ),
        "pickle": (
            pickled,
            {},
            "not a valid safetensors file: it is a Python pickle, not safetensors "
            "(never unpickled)",
        ),
        "zip": (
            zipped,
            {},
            "not a valid safetensors file: it is a zip archive (torch.save?), not "
            "safetensors (never unpickled)",
        ),
        "liar": (
            liar,
            {},
            "not a valid safetensors file: tensor 'w': data starts at 8, expected 12 "
            "(overlapping or missing bytes)",
        ),
        "oversized": (
            oversized,
            {},
            f"update file is {len(oversized)} bytes, larger than the bound of "
            f"{rf.base_path.stat().st_size + 1024}",
        ),
        "unknown": (
            good,
            {},
            "cluster is not on the roster of round 1",
        ),
        "no-examples": (
            good,
            {"num_examples": 0},
            "num_examples: expected an integer from 1 to 9007199254740992",
        ),
        "absurd-examples": (
            good,
            {"num_examples": 2**60},
            "num_examples: expected an integer from 1 to 9007199254740992",
        ),
    }


def test_each_poisoned_update_is_rejected_with_its_reason_and_the_rest_aggregate(rf):
    cases = poisoned_bytes_and_reasons(rf)
    for cluster, (data, overrides, _) in cases.items():
        rf.add(cluster, data=data, **overrides)
    roster = set(rf.written) - {"unknown"}
    limits = Limits(max_update_bytes=rf.base_path.stat().st_size + 1024)
    result = aggregate_round(
        rf.base_path, rf.updates(), strategy="fedavg", round=1, roster=roster, limits=limits
    )
    assert result.rejected == {c: reason for c, (_, _, reason) in sorted(cases.items())}
    assert result.contributors == ["aa-honest", "mm-honest", "zz-honest"]
    assert result.digest == clean_digest(rf)
    assert result.record["rejected"] == result.rejected


@pytest.mark.parametrize("strategy", ["fedmedian", "krum", "fedadam"])
def test_rejections_are_the_same_for_every_strategy(rf, strategy):
    cases = poisoned_bytes_and_reasons(rf)
    for cluster in ("nan", "digest", "truncated", "pickle", "stale"):
        data, overrides, _ = cases[cluster]
        rf.add(cluster, data=data, **overrides)
    options = {"f": 0} if strategy == "krum" else {}
    result = aggregate_round(
        rf.base_path, rf.updates(), strategy=strategy, options=options, round=1
    )
    assert sorted(result.rejected) == ["digest", "nan", "pickle", "stale", "truncated"]
    assert result.rejected["nan"] == cases["nan"][2]


def test_metadata_that_is_not_an_object_or_lacks_fields_is_malformed(rf):
    rf.add("no-digest", honest(4))
    del rf.written["no-digest"].meta["sha256"]
    rf.add("other-name", honest(5))
    rf.written["other-name"].meta["cluster"] = "someone-else"
    rf.written["not-object"] = type(rf.written["no-digest"])("not-object", "nowhere", None)
    result = aggregate_round(rf.base_path, rf.updates(), strategy="fedavg", round=1)
    assert result.rejected == {
        "no-digest": "metadata has no 'sha256'",
        "not-object": "metadata is not a JSON object",
        "other-name": "metadata names another cluster than 'other-name'",
    }


def test_metadata_without_its_file_is_rejected(rf):
    update = rf.add("gone", honest(4))
    rf.updates_dir.joinpath("gone.safetensors").unlink()
    result = aggregate_round(rf.base_path, rf.updates(), strategy="fedavg", round=1)
    assert update.cluster == "gone"
    assert result.rejected == {"gone": "metadata is present but the update file is not"}


def test_an_update_too_far_from_the_global_model_breaks_the_norm_bound(rf):
    far = honest(4)
    far["w"] *= 1000
    rf.add("far", far)
    norm = float(np.sqrt(sum(np.sum(t.astype(np.float64) ** 2) for t in far.values())))
    result = aggregate_round(
        rf.base_path,
        rf.updates(),
        strategy="fedavg",
        round=1,
        limits=Limits(max_l2_norm=50.0),
    )
    assert result.rejected == {
        "far": f"L2 distance to the global model is {norm:.6g}, over the bound of 50"
    }
    assert result.digest == clean_digest(rf)


def test_too_few_valid_updates_raise_with_every_reason(round_files):
    rf = round_files({"w": np.zeros(2, np.float32)})
    rf.add("a", {"w": np.float32([1, np.nan])})
    rf.add("b", {"w": np.float32([1, 2])}, round=7)
    with pytest.raises(NotEnoughUpdates) as exc:
        aggregate_round(rf.base_path, rf.updates(), strategy="fedavg", round=1)
    assert str(exc.value) == "round 1: 0 valid update(s), at least 1 needed"
    assert exc.value.more == [
        "rejected a: tensor 'w' holds NaN or Inf",
        "rejected b: update is for round 7, expected round 1",
    ]


def test_min_updates_is_a_quorum(rf):
    with pytest.raises(NotEnoughUpdates) as exc:
        aggregate_round(
            rf.base_path, rf.updates(), strategy="fedavg", round=1, limits=Limits(min_updates=4)
        )
    assert str(exc.value) == "round 1: 3 valid update(s), at least 4 needed"
