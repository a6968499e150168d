"""A shard combines its slice in sub-slices, in bounded memory, and still gives one pod's bytes.

16-bit models are the case: a float64 value per element of the slice is four times the
slice, so a shard folds phase 1's sum only over a prefix of its slice (a budget) and reads
the rest again, a sub-slice at a time. Here the sub-slices are forced small (100 elements,
or 50,000 against 256 KiB blocks), so that a slice spans many of them and their boundaries
fall inside tensors and inside the blocks of an update's block list; the fold's budget is
the default (half the slice for F16 and BF16), none, or a cut inside a tensor. Every
strategy, F16 and BF16, N = 1 and 3: the bytes, rejections, record and state of one pod.
The bytes served from the store are counted block by block, and the memory of a shard is
traced against issue 12's "(model / N) x 3".
"""

from __future__ import annotations

import tracemalloc
from typing import ClassVar

import numpy as np
import pytest

from fl_gitops.aggregate import Update, aggregate_round
from fl_gitops.aggregate._shards import (
    RangeFile,
    Shard,
    StoreRangeFile,
    _subslices,
    merge_shards,
    open_range,
    shard_combine,
)
from fl_gitops.aggregate.strategies import STRATEGIES
from fl_gitops.reports import HubReport
from fl_gitops.store import ModelStore
from fl_gitops.tensors import BLOCK_BYTES, read_header, serialize
from tests.aggregate.conftest import RoundFiles, run_phases
from tests.aggregate.test_shards import GRID, OPTIONS, hostile_round, to_bf16, to_f16

SUB = 100  # elements: a.weight (1200) spans 12 sub-slices, c.weight (1500) 15


CASTS = {"f16": to_f16, "bf16": to_bf16}


@pytest.fixture(scope="module", params=sorted(CASTS))
def hostile16(request, tmp_path_factory) -> RoundFiles:
    return hostile_round(tmp_path_factory.mktemp(f"sub-{request.param}"), CASTS[request.param])


# None: the default budget (F16 and BF16 fold half the slice); 0: nothing folded, every
# sub-slice read again; 3000 bytes: 375 float64 values, a cut inside a.weight.
@pytest.mark.parametrize("fold_budget", [None, 0, 3000])
@pytest.mark.parametrize("of", [1, 3])
@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_every_strategy_in_small_sub_slices_gives_one_pods_bytes(
    hostile16, tmp_path, strategy, of, fold_budget
):
    kwargs = {"strategy": strategy, "options": OPTIONS.get(strategy), "seed": 3}
    pod = aggregate_round(
        hostile16.base_path, hostile16.updates(), round=1, chunk_elements=GRID, **kwargs
    )
    shards = run_phases(
        hostile16.base_path, hostile16.updates()[::-1], tmp_path / "s", of,
        chunk_elements=GRID, subslice_elements=SUB, fold_budget=fold_budget, **kwargs,
    )  # fmt: skip
    merged = merge_shards([tmp_path / "s"])
    assert merged.model == pod.model
    assert merged.digest == pod.digest
    assert merged.rejected == pod.rejected
    assert set(merged.rejected) == {"nan", "huge", "forged"}
    assert merged.weights == pod.weights
    assert merged.new_state == pod.new_state
    assert merged.record == pod.record
    # The walk cut inside tensors, many times over.
    subs = [s for p in shards[0].pieces for s in _subslices(p, SUB, None)]
    assert len(subs) > 10
    assert any(0 < s.start < read_header(hostile16.base_path).tensors[s.name].size for s in subs)


@pytest.mark.parametrize("strategy", ["fedadam", "fedavgm"])
def test_a_state_resumed_and_written_in_sub_slices_is_one_pods(hostile16, tmp_path, strategy):
    """The prior state is read a sub-slice at a time and the new one written as each
    finishes (its families spooled): the state file is the pod's, bit for bit."""
    common = {"strategy": strategy, "round": 1, "chunk_elements": GRID}
    first = aggregate_round(hostile16.base_path, hostile16.updates(), **common)
    pod = aggregate_round(hostile16.base_path, hostile16.updates(), state=first.new_state, **common)
    run_phases(
        hostile16.base_path, hostile16.updates(), tmp_path / "s", 3, strategy=strategy,
        chunk_elements=GRID, state=first.new_state, subslice_elements=SUB, fold_budget=1000,
    )  # fmt: skip
    merged = merge_shards([tmp_path / "s"])
    assert merged.new_state == pod.new_state
    assert merged.model == pod.model
    assert merged.record["state"] == {"names": pod.record["state"]["names"], "resumed": True}


# ------------------------------------------------------------------ bytes served


SHAPES = {"a.weight": (700, 1000), "b.bias": (1000,), "c.weight": (300, 500)}  # 1.7 MB in F16


class Served(StoreRangeFile):
    """Ranges the store served beneath the shard's block checks, each one recorded."""

    log: ClassVar[list[tuple[str, int, int]]] = []

    def read(self, start: int, length: int) -> bytes:
        Served.log.append((self.path, start, length))
        return super().read(start, length)


def counting(path: str) -> RangeFile:
    return Served(path) if "://" in path else RangeFile(path)


def f16_model(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {n: rng.normal(size=s).astype(np.float16) for n, s in SHAPES.items()}


def blocks_of(ranges: list[tuple[int, int]], size: int) -> int:
    """The bytes of the 256 KiB blocks that the byte ranges touch, each block once."""
    first_last = [(lo // BLOCK_BYTES, (hi - 1) // BLOCK_BYTES) for lo, hi in ranges if hi > lo]
    touched = {i for a, b in first_last for i in range(a, b + 1)}
    return sum(min(size, (i + 1) * BLOCK_BYTES) - i * BLOCK_BYTES for i in touched)


@pytest.mark.parametrize(("fold_budget", "sub"), [(0, 50_000), (0, 1 << 20), (None, 50_000)])
def test_the_combine_fetches_each_block_of_what_it_reads_again_once(tmp_path, fold_budget, sub):
    """Sub-slices of 100 KB end inside the 256 KiB blocks of the block list: the combine
    still fetches each block it needs once (the checked file keeps the block a read ends
    in, and each update's file stays open across the sub-slices). With nothing folded it
    reads the slice's blocks again; with the default budget, those of the unfolded half."""
    store = ModelStore.open(f"memory://subslices-{tmp_path.name}-{sub}-{fold_budget}")
    base_bytes = serialize(f16_model(0))
    base = store.put_model(base_bytes)
    base_path = tmp_path / "base.safetensors"
    base_path.write_bytes(base_bytes)
    updates = []
    for k in range(4):
        meta = {"base_model": base, "num_examples": 10 + k}
        record = store.put_update(1, f"c{k}", serialize(f16_model(10 + k)), meta)
        report = HubReport(record["sha256"], 10 + k, {})
        updates.append(Update(f"c{k}", store.update_uri(1, f"c{k}"), record, report))
    local = []
    for u in updates:
        path = tmp_path / f"{u.cluster}.safetensors"
        path.write_bytes(store.get_update(1, u.cluster))
        local.append(Update(u.cluster, str(path), u.meta, u.reported))
    pod = aggregate_round(base_path, local, strategy="fedavg", round=1, chunk_elements=1 << 14)
    of, me = 3, 1
    out = tmp_path / "s"
    out.mkdir()
    shards = [
        Shard(base_path, updates, strategy="fedavg", round=1, shard=i, of=of, out=out,
              chunk_elements=1 << 14, opener=counting if i == me else open_range,
              subslice_elements=sub, fold_budget=fold_budget)
        for i in range(of)
    ]  # fmt: skip
    Served.log = []
    for s in shards:
        s.stats()
    phase1 = list(Served.log)
    Served.log = []
    kept = [s.reduce() for s in shards]
    for s, k in zip(shards, kept, strict=True):
        shard_combine(s, k, wait=lambda paths: None)
    again = list(Served.log)
    assert merge_shards([out]).model == pod.model
    mine = shards[me]
    folded = mine.fold if fold_budget is None else 0
    assert (folded > 0) == (fold_budget is None)
    for u in updates:
        header = read_header(tmp_path / f"{u.cluster}.safetensors")
        size = (tmp_path / f"{u.cluster}.safetensors").stat().st_size
        slice_ranges, unfolded = [], []
        left = folded
        for p in mine.pieces:
            info = header.tensors[p.name]
            item = info.np_dtype.itemsize
            slice_ranges.append((info.start + p.start * item, info.start + p.stop * item))
            skip = min(left, p.size)
            left -= skip
            unfolded.append((info.start + (p.start + skip) * item, info.start + p.stop * item))
        first = sum(n for path, _, n in phase1 if path == u.path)
        second = sum(n for path, _, n in again if path == u.path)
        # Phase 1: the slice's blocks once, and the header's block.
        assert first == blocks_of([*slice_ranges, (0, header.data_start)], size)
        # The combine: the blocks of what it reads again, each once.
        assert second == blocks_of(unfolded, size)
        assert second <= first


# ------------------------------------------------------------------ memory


@pytest.mark.parametrize("cast", ["f16", "bf16"])
def test_a_16_bit_shard_peaks_under_three_times_its_slice(round_files, tmp_path, cast):
    """Issue 12's target, traced: a shard of a 16-bit model held 8 bytes of float64 per
    element of its slice from phase 1 to the end (4x its slice); now phase 1 folds half
    of it (2x the slice) and the combine walks the rest in sub-slices."""
    rng = np.random.default_rng(7)
    shapes = {"emb": 3 << 20, "head": 1 << 20}  # 4 M elements: an 8 MB model, 4 MB a shard

    def m() -> dict[str, np.ndarray]:
        return CASTS[cast]({n: rng.normal(size=s).astype(np.float32) for n, s in shapes.items()})

    rf = round_files(m())
    for c in ("a", "b", "c"):
        rf.add(c, m(), num_examples=3)
    grid = {"chunk_elements": 1 << 16}
    pod = aggregate_round(rf.base_path, rf.updates(), strategy="fedavg", round=1, **grid)
    out = tmp_path / "s"
    out.mkdir()
    sizes = {"subslice_elements": 1 << 16}
    shards = [
        Shard(rf.base_path, rf.updates(), strategy="fedavg", round=1, shard=i, of=2, out=out,
              **grid, **sizes)
        for i in range(2)
    ]  # fmt: skip
    shards[1].stats()
    slice_bytes = sum(p.size * 2 for p in shards[0].pieces)
    tracemalloc.start()
    try:
        shards[0].stats()
        kept = shards[0].reduce()
        shard_combine(shards[0], kept, wait=lambda paths: None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    shard_combine(shards[1], shards[1].reduce(), wait=lambda paths: None)
    assert merge_shards([out]).model == pod.model
    assert peak < 3 * slice_bytes, (peak / slice_bytes, slice_bytes)
    assert peak > 2 * slice_bytes  # the folded half is there: the trace sees the arrays


def test_the_default_budget_folds_a_float32_slice_whole_and_half_a_16_bit_one():
    """Float64 worth twice the slice's bytes: every element of a float32 slice, the
    first half of an F16 or BF16 one; a budget of 0 folds nothing."""
    from fl_gitops.aggregate._subslice import fold_elements

    assert fold_elements(4 * 1000, None) == 1000  # float32: every element
    assert fold_elements(2 * 1000, None) == 500  # F16, BF16: the first half
    assert fold_elements(2 * 1000, 0) == 0


def test_a_merge_assembles_the_state_in_place(round_files, tmp_path):
    """FedAdam's m and v (twice the model) are copied into place shard by shard: the merge
    holds the model, the state file and its copy as bytes, and one shard's part beside
    them (joining the parts held the state four times)."""
    rng = np.random.default_rng(9)
    n = 1 << 20  # a 4 MB float32 model, 8 MB of state, in 4 shards
    rf = round_files({"w": rng.normal(size=n).astype(np.float32)})
    for c in ("a", "b"):
        rf.add(c, {"w": rng.normal(size=n).astype(np.float32)})
    cut = {"strategy": "fedadam", "chunk_elements": 1 << 16}
    first = aggregate_round(rf.base_path, rf.updates(), round=1, **cut)
    pod = aggregate_round(rf.base_path, rf.updates(), round=1, state=first.new_state, **cut)
    run_phases(rf.base_path, rf.updates(), tmp_path / "s", 4, state=first.new_state, **cut)
    model_bytes, state_bytes = len(rf.base_bytes), len(pod.new_state)

    tracemalloc.start()
    try:
        merged = merge_shards([tmp_path / "s"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert merged.new_state == pod.new_state
    assert merged.model == pod.model
    assert peak < model_bytes + 2.5 * state_bytes, (peak / state_bytes, state_bytes)
