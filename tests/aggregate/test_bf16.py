"""BF16 models and updates through the aggregation: one rounding, float64 sums, checks.

The equality of every strategy's bytes across shard counts on BF16 is in test_shards.py;
here: the value FedAvg writes (the float64 mean rounded once, as torch rounds it), the
streaming path on tensors many summing blocks long, the dtype check, a server optimiser's
state, and the peak memory in accumulator terms.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from fl_gitops.aggregate import aggregate_round
from fl_gitops.aggregate.strategies._arith import BLOCK
from fl_gitops.tensors import (
    BF16,
    load_bytes,
    narrow,
    parse_header,
    serialize,
    sha256_digest,
    widen,
)
from tests.aggregate.conftest import RoundFiles
from tests.aggregate.test_aggregate_memory import peak
from tests.aggregate.test_shards import run_shards


def bf16_model(seed: int, shapes: dict[str, tuple[int, ...]], scale: float = 1.0):
    rng = np.random.default_rng(seed)
    return {n: narrow(rng.normal(size=s) * scale) for n, s in shapes.items()}


def test_fedavg_writes_the_float64_mean_rounded_once_to_bf16(round_files):
    shapes = {"w": (50, 40), "b": (40,)}
    rf = round_files(bf16_model(0, shapes))
    ups = [(f"c{k}", bf16_model(10 + k, shapes), 1 + 3 * k) for k in range(5)]
    for name, tensors, n in ups:
        rf.add(name, tensors, num_examples=n)
    result = aggregate_round(rf.base_path, rf.updates(), strategy="fedavg", round=1)
    assert not result.rejected
    header = parse_header(result.model, len(result.model))
    assert {t.dtype for t in header.tensors.values()} == {"BF16"}
    got = load_bytes(result.model)
    total = sum(n for _, _, n in ups)
    for name in shapes:
        acc = np.zeros(shapes[name])
        for _, tensors, n in ups:
            acc += n * widen(tensors[name]).astype(np.float64)
        mean = acc / total
        assert got[name].tobytes() == narrow(mean).tobytes()
        # torch's own float64 -> bfloat16 cast, an independent rounding, agrees.
        theirs = torch.from_numpy(mean).to(torch.bfloat16).view(torch.int16).numpy()
        assert got[name].view(np.int16).tobytes() == theirs.tobytes()


@pytest.fixture(scope="module")
def long_bf16(tmp_path_factory) -> RoundFiles:
    """Tensors many summing blocks long (and longer than the default grid), a NaN update
    and one 1e30 times farther than the rest."""
    shapes = {"emb": (1_300_000,), "head": (3 * BLOCK + 5,)}
    rf = RoundFiles(tmp_path_factory.mktemp("bf16-long"), bf16_model(0, shapes))
    for k in range(5):
        rf.add(f"c{k}", bf16_model(10 + k, shapes), num_examples=2 + k)
    nan = bf16_model(20, shapes)
    nan["head"].view(np.uint16)[BLOCK + 3] = 0x7FC0
    rf.add("nan", nan, num_examples=1)
    rf.add("huge", bf16_model(21, shapes, scale=1e30), num_examples=1)
    return rf


@pytest.mark.parametrize("strategy", ["fedavg", "fedmedian", "krum"])
def test_long_bf16_tensors_are_checked_summed_and_sharded_alike(long_bf16, tmp_path, strategy):
    options = {"f": 1} if strategy == "krum" else None
    pod = aggregate_round(long_bf16.base_path, long_bf16.updates(), strategy=strategy,
                          options=options, round=1, seed=2)  # fmt: skip
    assert set(pod.rejected) == {"nan", "huge"}
    assert "NaN or Inf" in pod.rejected["nan"]
    merged = run_shards(long_bf16, tmp_path / "s", 3, strategy=strategy, options=options, seed=2)
    assert merged.model == pod.model
    assert merged.record == pod.record
    out = load_bytes(pod.model)
    assert out["emb"].dtype == BF16 and np.isfinite(widen(out["emb"])).all()


def test_an_update_in_another_dtype_than_the_model_is_refused_naming_both(round_files):
    rf = round_files(bf16_model(0, {"w": (8,)}))
    rf.add("ok", bf16_model(1, {"w": (8,)}))
    rf.add("f32", {"w": np.zeros(8, dtype=np.float32)})
    result = aggregate_round(rf.base_path, rf.updates(), strategy="fedavg", round=1)
    assert list(result.rejected) == ["f32"]
    assert "tensor 'w' has dtype F32, expected BF16" in result.rejected["f32"]


def test_a_server_optimisers_moments_of_a_bf16_model_are_kept_in_float32(round_files):
    shapes = {"w": (30,)}
    rf = round_files(bf16_model(0, shapes))
    for k in range(3):
        rf.add(f"c{k}", bf16_model(5 + k, shapes), num_examples=1 + k)
    first = aggregate_round(rf.base_path, rf.updates(), strategy="fedadam", round=1)
    assert first.new_state is not None
    state = parse_header(first.new_state, len(first.new_state))
    assert {t.dtype for t in state.tensors.values()} == {"F32"}
    assert parse_header(first.model, len(first.model)).tensors["w"].dtype == "BF16"
    again = aggregate_round(rf.base_path, rf.updates(), strategy="fedadam", round=1,
                            state=first.new_state)  # fmt: skip
    assert again.record["state"]["resumed"] is True
    assert again.model != first.model  # the moments carried over


@pytest.mark.slow
def test_peak_memory_of_bf16_stays_within_the_float32_bound_in_accumulator_bytes(tmp_path):
    """float32 is held under 3x its model, 12 bytes an element: 1.5x the float64 sum. BF16
    is widened a block at a time, so the same 1.5x of the sum must hold (6x its model)."""
    shapes = {"a": (2000, 1000), "b": (2000, 1000), "c": (1000, 1000), "d": (3000, 1000)}
    params = 8_000_000
    rng = np.random.default_rng(0)
    base = {n: narrow(rng.standard_normal(s, dtype=np.float32)) for n, s in shapes.items()}
    base_bytes = serialize(base)
    (tmp_path / "base.safetensors").write_bytes(base_bytes)
    for i in range(8):
        shift = np.float32(i / 100)
        data = serialize({n: narrow(widen(a) + shift) for n, a in base.items()})
        (tmp_path / f"c{i:02d}.safetensors").write_bytes(data)
        meta = {"round": 1, "cluster": f"c{i:02d}", "base_model": sha256_digest(base_bytes),
                "num_examples": 10 + i, "sha256": sha256_digest(data)}  # fmt: skip
        (tmp_path / f"c{i:02d}.json").write_text(json.dumps(meta))
    used, model = peak(Path(tmp_path), 8)
    assert model < 2 * params + 1024  # BF16: two bytes an element
    assert used < 1.5 * 8 * params, f"{used / (8 * params):.2f}x the float64 sum"
