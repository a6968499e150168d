"""A round aggregated in N shards by tensor slice gives one pod's bytes, rejections and record.

Every strategy, N in {1, 2, 3, 7}, float32, float16 and bfloat16 models, the updates in a
shuffled order, and a round holding a NaN update, an update scaled by 1e30 and one whose
bytes do not match its digest: the merge must give what ``aggregate_round`` gives, bit for
bit. The grid is small (256 elements) so that the shards cut inside tensors; one test runs
the default grid on a model with tensors larger than it. A shard reads only its slice of
each update, counted read by read. (``test_shards_subslices.py``: the same in sub-slices.)
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from fl_gitops.aggregate import aggregate_round
from fl_gitops.aggregate._shards import (
    RangeFile,
    Shard,
    ShardDirError,
    ShardPlan,
    StoreRangeFile,
    merge_shards,
    open_range,
    shard_combine,
)
from fl_gitops.aggregate.strategies import STRATEGIES
from fl_gitops.tensors import narrow, parse_header, read_header, serialize, sha256_digest
from tests.aggregate.conftest import RoundFiles, run_phases

SHAPES = {"a.weight": (40, 30), "b.bias": (7,), "c.weight": (3, 500)}
GRID = 256
OPTIONS = {
    "dp-fixed-clipping": {"clipping_norm": 40.0, "noise_multiplier": 0.7},
    "krum": {"f": 1},
    "multikrum": {"f": 1},
}


def model(seed: int, scale: float = 1.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {n: (rng.normal(size=s) * scale).astype(np.float32) for n, s in SHAPES.items()}
    out["d.count"] = np.array([seed, 2 * seed, 3], dtype=np.int64)
    return out


def hostile_round(directory: Path, as_dtype=lambda t: t) -> RoundFiles:
    """Nine honest updates (one 3x farther), a NaN one, a x1e30 one, a wrong digest; every
    tensor passed through ``as_dtype`` (the identity: float32)."""

    def m(seed: int, scale: float = 1.0) -> dict[str, np.ndarray]:
        return as_dtype(model(seed, scale))

    rf = RoundFiles(directory, m(0))
    for k in range(9):
        rf.add(f"c{k}", m(10 + k, scale=3.0 if k == 4 else 1.0), num_examples=3 + 5 * k)
    nan = model(30)
    nan["c.weight"][2, 499] = np.nan
    rf.add("nan", as_dtype(nan), num_examples=5)
    rf.add("huge", m(31, scale=1e30), num_examples=5)
    rf.add("forged", m(32), num_examples=5, sha256="sha256:" + "ab" * 32)
    return rf


def to_bf16(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The float tensors rounded to BF16, the rest as they are."""
    return {n: narrow(a) if a.dtype.kind == "f" else a for n, a in tensors.items()}


def to_f16(tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The float tensors rounded to float16 (x1e30 becomes Inf), the rest as they are."""
    with np.errstate(over="ignore"):
        return {n: a.astype(np.float16) if a.dtype.kind == "f" else a for n, a in tensors.items()}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> RoundFiles:
    return hostile_round(tmp_path_factory.mktemp("shards"))


@pytest.fixture(scope="module")
def hostile_bf16(tmp_path_factory) -> RoundFiles:
    return hostile_round(tmp_path_factory.mktemp("shards-bf16"), to_bf16)


@pytest.fixture(scope="module")
def hostile_f16(tmp_path_factory) -> RoundFiles:
    return hostile_round(tmp_path_factory.mktemp("shards-f16"), to_f16)


def run_shards(rf: RoundFiles, out: Path, of: int, **kwargs):
    """Every shard's phases in turn (as N pods would run them side by side), then the merge."""
    updates = rf.updates()
    random.Random(of).shuffle(updates)
    _phases(rf, out, of, updates, **kwargs)
    return merge_shards([out])


@pytest.mark.parametrize("dtype", ["f32", "f16", "bf16"])
@pytest.mark.parametrize("of", [1, 2, 3, 7])
@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_every_strategy_and_shard_count_gives_one_pods_bytes(
    request, tmp_path, strategy, of, dtype
):
    hostile = request.getfixturevalue("hostile" if dtype == "f32" else f"hostile_{dtype}")
    kwargs = {"strategy": strategy, "options": OPTIONS.get(strategy), "seed": 3}
    pod = aggregate_round(
        hostile.base_path, hostile.updates(), round=1, chunk_elements=GRID, **kwargs
    )
    merged = run_shards(hostile, tmp_path / "shards", of, chunk_elements=GRID, **kwargs)
    assert merged.model == pod.model
    assert merged.digest == pod.digest
    assert merged.rejected == pod.rejected
    assert set(merged.rejected) == {"nan", "huge", "forged"}
    assert merged.contributors == pod.contributors
    assert merged.weights == pod.weights
    assert merged.metrics == pod.metrics
    assert merged.new_state == pod.new_state
    assert merged.record == pod.record
    assert parse_header(pod.model, len(pod.model)).tensors["a.weight"].dtype == dtype.upper()


def test_the_rejections_name_what_one_pod_names(hostile, tmp_path):
    merged = run_shards(hostile, tmp_path / "s", 3, strategy="fedavg", chunk_elements=GRID)
    forged = hostile.written["forged"]
    actual = sha256_digest(Path(forged.path).read_bytes())
    assert merged.rejected["forged"] == (
        f"file hashes to {actual}, metadata says sha256:{'ab' * 32}"
    )
    assert merged.rejected["nan"] == "tensor 'c.weight' holds NaN or Inf"
    assert merged.rejected["huge"].startswith("L2 distance to the global model is ")


@pytest.mark.parametrize("strategy", ["fedadam", "fedavgm", "fedyogi"])
def test_a_strategys_state_resumes_in_shards_as_in_one_pod(hostile, tmp_path, strategy):
    first = aggregate_round(
        hostile.base_path, hostile.updates(), strategy=strategy, round=1, chunk_elements=GRID
    )
    pod = aggregate_round(
        hostile.base_path,
        hostile.updates(),
        strategy=strategy,
        round=1,
        state=first.new_state,
        chunk_elements=GRID,
    )
    merged = run_shards(
        hostile,
        tmp_path / "s",
        3,
        strategy=strategy,
        state=first.new_state,
        chunk_elements=GRID,
    )
    assert merged.new_state == pod.new_state
    assert merged.model == pod.model
    assert merged.record["state"] == {"names": pod.record["state"]["names"], "resumed": True}


@pytest.fixture(scope="module")
def large(tmp_path_factory) -> RoundFiles:
    """Tensors larger than the default grid (2^20 elements), so shards cut inside them."""
    shapes = {"emb": (2_500_000,), "head": (1000,)}

    def big(seed: int, scale: float = 1.0) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        return {n: (rng.normal(size=s) * scale).astype(np.float32) for n, s in shapes.items()}

    rf = RoundFiles(tmp_path_factory.mktemp("large"), big(0))
    for k in range(5):
        rf.add(f"c{k}", big(10 + k), num_examples=1 + k)
    rf.add("huge", big(20, scale=1e30), num_examples=1)
    return rf


@pytest.mark.parametrize(
    ("strategy", "options"),
    [
        ("fedavg", None),
        ("krum", {"f": 1}),
        ("dp-fixed-clipping", {"clipping_norm": 1500.0, "noise_multiplier": 0.5}),
    ],
)
def test_on_the_default_grid_shards_cut_inside_tensors_and_give_the_same_bytes(
    large, tmp_path, strategy, options
):
    plan = ShardPlan.of_header(read_header(large.base_path), 3)
    assert plan.pieces(1) == plan.pieces(1)  # deterministic
    assert [p.name for p in plan.pieces(1)] == ["emb"]  # a cut inside the tensor
    pod = aggregate_round(large.base_path, large.updates(), strategy=strategy, options=options,
                          round=1, seed=5)  # fmt: skip
    merged = run_shards(large, tmp_path / "s", 3, strategy=strategy, options=options, seed=5)
    assert list(pod.rejected) == ["huge"]
    assert merged.model == pod.model
    assert merged.record == pod.record


def test_the_plan_covers_every_element_once_cutting_only_on_the_grid(hostile):
    header = read_header(hostile.base_path)
    sizes = {n: t.size for n, t in header.tensors.items()}
    for of in (1, 2, 3, 7, 40):
        plan = ShardPlan.of_header(header, of, GRID)
        covered = {n: [] for n in sizes}
        for i in range(of):
            for p in plan.pieces(i):
                assert p.start % GRID == 0
                assert p.stop % GRID == 0 or p.stop == sizes[p.name]
                covered[p.name].append((p.start, p.stop))
        for name, runs in covered.items():
            flat = [x for a, b in sorted(runs) for x in range(a, b)]
            assert flat == list(range(sizes[name])), (of, name)
        assert plan.id == ShardPlan.of_header(header, of, GRID).id
    assert ShardPlan.of_header(header, 2, GRID).id != ShardPlan.of_header(header, 3, GRID).id


class Counting(RangeFile):
    """A RangeFile that records every range it serves."""

    log: ClassVar[list[tuple[str, int, int]]] = []

    def read(self, start: int, length: int) -> bytes:
        Counting.log.append((self.path, start, length))
        return super().read(start, length)


@pytest.mark.parametrize("honest", [True, False])
def test_a_shard_reads_only_its_slice_of_each_update(hostile, tmp_path, honest):
    """FedAvg reads each slice once (checked, measured and summed in one read, as one pod
    does); when the reduce refuses an update, the sum is rebuilt from the contributors."""
    of, me = 3, 1
    Counting.log = []
    updates = [u for u in hostile.updates() if u.cluster.startswith("c") or not honest]
    out = tmp_path / "s"
    out.mkdir()
    shards = [
        Shard(hostile.base_path, updates, strategy="fedavg", round=1, shard=i, of=of, out=out,
              chunk_elements=GRID, opener=Counting if i == me else RangeFile)
        for i in range(of)
    ]  # fmt: skip
    for s in shards:
        s.stats()
    kept = [s.reduce() for s in shards]
    contributors = [c.cluster for c in kept[me]]
    assert len(contributors) == 9
    for s, k in zip(shards, kept, strict=True):
        shard_combine(s, k, wait=lambda paths: None)
    assert shards[me].pieces
    for u in updates:
        ranges = slice_ranges(u.path, shards[me].pieces)
        reads = [(a, n) for path, a, n in Counting.log if path == str(u.path)]
        for a, n in reads:
            assert any(lo <= a and a + n <= hi for lo, hi in ranges), (u.cluster, a, n)
        times = 1 if honest or u.cluster not in contributors else 2
        assert sum(n for _, n in reads) == times * sum(hi - lo for lo, hi in ranges)


def test_a_shard_of_another_round_in_the_directory_is_refused_naming_its_file(hostile, tmp_path):
    out = tmp_path / "s"
    out.mkdir()
    mine = Shard(hostile.base_path, hostile.updates(), strategy="fedavg", round=1, shard=0,
                 of=2, out=out, chunk_elements=GRID)  # fmt: skip
    other = Shard(hostile.base_path, hostile.updates(), strategy="fedmedian", round=1,
                  shard=1, of=2, out=out, chunk_elements=GRID)  # fmt: skip
    mine.stats()
    other.stats()
    path = out / "shard-0001-of-0002.stats.json"
    with pytest.raises(ShardDirError) as caught:
        mine.reduce()
    assert str(caught.value) == (
        f"{path}: written for another round or plan (its strategy is not 'fedavg')"
    )


def test_a_merge_with_a_shard_missing_names_it(hostile, tmp_path):
    run_shards(hostile, tmp_path / "s", 3, strategy="fedavg", chunk_elements=GRID)
    (tmp_path / "s" / "shard-0002-of-0003.decision.json").unlink()
    with pytest.raises(ShardDirError) as caught:
        merge_shards([tmp_path / "s"])
    assert str(caught.value) == f"{tmp_path / 's'}: shard(s) 2 of 3 missing (no decision file)"


def test_a_merge_refuses_shards_that_decided_differently(hostile, tmp_path):
    run_shards(hostile, tmp_path / "s", 2, strategy="fedavg", chunk_elements=GRID)
    path = tmp_path / "s" / "shard-0001-of-0002.decision.json"
    doc = json.loads(path.read_text())
    doc["weights"] = {k: 0.5 for k in doc["weights"]}
    path.write_text(json.dumps(doc))
    with pytest.raises(ShardDirError) as caught:
        merge_shards([tmp_path / "s"])
    assert str(caught.value) == f"{path}: its round or decision differs from shard 0's"


@pytest.mark.parametrize("strategy", ["krum", "multikrum", "fedmedian"])
def test_several_blocks_to_a_run_sum_the_same_in_shards(hostile, tmp_path, monkeypatch, strategy):
    """A small stack budget: K x 64 blocks, four to each run of the 256-element grid."""
    import fl_gitops.aggregate._engine as engine

    monkeypatch.setattr(engine, "_STACK_BYTES", 8 * 9 * 64)
    assert engine._stack_step(1200, 9, GRID) == 64
    kwargs = {"strategy": strategy, "options": OPTIONS.get(strategy)}
    pod = aggregate_round(
        hostile.base_path, hostile.updates(), round=1, chunk_elements=GRID, **kwargs
    )
    merged = run_shards(hostile, tmp_path / "s", 3, chunk_elements=GRID, **kwargs)
    assert merged.model == pod.model
    assert merged.record == pod.record


class CountingStore(StoreRangeFile):
    """Ranges served from a store URI, each one recorded."""

    log: ClassVar[list[tuple[str, int, int]]] = []

    def read(self, start: int, length: int) -> bytes:
        CountingStore.log.append((self.path, start, length))
        return super().read(start, length)


def slice_ranges(path: str, pieces) -> list[tuple[int, int]]:
    """The byte ranges of a shard's pieces in one update file."""
    header = read_header(path)
    out = []
    for p in pieces:
        info = header.tensors[p.name]
        item = info.np_dtype.itemsize
        out.append((info.start + p.start * item, info.start + p.stop * item))
    return out


def test_updates_in_a_store_are_read_by_range_and_give_the_same_bytes(hostile, tmp_path):
    """fsspec's memory store: a shard asks for its slices only, by cat_file ranges."""
    import fsspec

    fs = fsspec.filesystem("memory")
    root = f"/shards-{tmp_path.name}"
    remote = []
    for u in hostile.updates():
        fs.pipe_file(f"{root}/{u.cluster}.safetensors", Path(u.path).read_bytes())
        remote.append((u.cluster, f"memory://{root}/{u.cluster}.safetensors", u.meta))
    kwargs = {
        "strategy": "dp-fixed-clipping",
        "options": OPTIONS["dp-fixed-clipping"],
        "chunk_elements": GRID,
    }
    pod = aggregate_round(hostile.base_path, hostile.updates(), round=1, **kwargs)
    of, me = 3, 2
    CountingStore.log = []
    out = tmp_path / "s"

    def counting(path: str) -> RangeFile:
        return CountingStore(path) if "://" in path else RangeFile(path)

    shards = run_phases(
        hostile.base_path, remote, out, of,
        opener_for=lambda i: counting if i == me else open_range, **kwargs,
    )  # fmt: skip
    merged = merge_shards([out])
    assert merged.model == pod.model
    assert merged.rejected == pod.rejected
    for cluster, uri, _ in remote:
        ranges = slice_ranges(hostile.written[cluster].path, shards[me].pieces)
        reads = [(a, n) for p, a, n in CountingStore.log if p == uri]
        for a, n in reads:
            assert any(lo <= a and a + n <= hi for lo, hi in ranges), (cluster, a, n)
        # Read to check it; read again to combine it only if it contributes.
        times = 2 if cluster in merged.contributors else 1
        assert sum(n for _, n in reads) == times * sum(hi - lo for lo, hi in ranges)


def test_a_shard_run_with_another_seed_is_refused(hostile, tmp_path):
    """Shards must agree on every input, not only the round: DP's noise depends on the seed."""
    out = tmp_path / "s"
    out.mkdir()
    kwargs = {"strategy": "dp-fixed-clipping", "options": OPTIONS["dp-fixed-clipping"]}
    shards = [
        Shard(hostile.base_path, hostile.updates(), round=1, shard=i, of=2, out=out,
              chunk_elements=GRID, seed=i, **kwargs)
        for i in range(2)
    ]  # fmt: skip
    for s in shards:
        s.stats()
    with pytest.raises(ShardDirError) as caught:
        shards[0].reduce()
    assert str(caught.value) == (
        f"{out / 'shard-0001-of-0002.stats.json'}: written for another round or plan "
        f"(its inputs is not {shards[0].inputs!r})"
    )


def test_a_merge_of_a_decision_that_is_not_a_shards_is_refused(hostile, tmp_path):
    run_shards(hostile, tmp_path / "s", 2, strategy="fedavg", chunk_elements=GRID)
    for i in range(2):
        path = tmp_path / "s" / f"shard-000{i}-of-0002.decision.json"
        doc = json.loads(path.read_text())
        del doc["tensors"]
        path.write_text(json.dumps(doc))
    with pytest.raises(ShardDirError) as caught:
        merge_shards([tmp_path / "s"])
    assert str(caught.value) == f"{tmp_path / 's'}: a shard's file is not what a shard writes"


@pytest.mark.parametrize("strategy", ["dp-fixed-clipping", "krum"])
def test_more_shards_than_grid_cells_leaves_some_empty_and_the_bytes_the_same(
    hostile, tmp_path, strategy
):
    plan = ShardPlan.of_header(read_header(hostile.base_path), 40, GRID)
    assert any(not plan.pieces(i) for i in range(40))
    kwargs = {"strategy": strategy, "options": OPTIONS.get(strategy), "seed": 1}
    pod = aggregate_round(
        hostile.base_path, hostile.updates(), round=1, chunk_elements=GRID, **kwargs
    )
    merged = run_shards(hostile, tmp_path / "s", 40, chunk_elements=GRID, **kwargs)
    assert merged.model == pod.model
    assert merged.record == pod.record


def test_a_shard_killed_between_phases_and_run_again_gives_the_same_files_and_bytes(
    hostile, tmp_path
):
    """Shard 1 dies after phase 1; a fresh process for it redoes every phase: its files are
    rewritten to the same bytes, and the merge is one pod's round."""
    kwargs = {"strategy": "krum", "options": {"f": 1}, "chunk_elements": GRID}
    pod = aggregate_round(hostile.base_path, hostile.updates(), round=1, **kwargs)
    out = tmp_path / "s"
    out.mkdir()

    def shard(i: int) -> Shard:
        return Shard(hostile.base_path, hostile.updates(), round=1, shard=i, of=2, out=out,
                     **kwargs)  # fmt: skip

    first = [shard(0), shard(1)]
    for s in first:
        s.stats()
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    kept0 = first[0].reduce()
    first[0].partials(kept0)
    # Shard 1 is killed here. Its replacement starts over.
    again = shard(1)
    again.stats()
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name in before} == before
    kept1 = again.reduce()
    again.partials(kept1)
    shard_combine(first[0], kept0, wait=lambda paths: None)
    shard_combine(again, kept1, wait=lambda paths: None)
    merged = merge_shards([out])
    assert merged.model == pod.model
    assert merged.record == pod.record


def test_a_merge_refuses_a_shards_model_bytes_its_decision_does_not_name(hostile, tmp_path):
    run_shards(hostile, tmp_path / "s", 2, strategy="fedavg", chunk_elements=GRID)
    path = tmp_path / "s" / "shard-0001-of-0002.model.bin"
    data = bytearray(path.read_bytes())
    data[0] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ShardDirError) as caught:
        merge_shards([tmp_path / "s"])
    assert str(caught.value) == f"{path}: not the bytes its decision file names"


class _Truncating(RangeFile):
    """One update's file that ends while a shard reads it (as if it shrank mid-round)."""

    victim = ""

    def read(self, start: int, length: int) -> bytes:
        if self.path == self.victim and start > 0:
            from fl_gitops.tensors import HeaderError

            raise HeaderError("file ended")
        return super().read(start, length)


def test_an_update_that_ends_mid_read_is_refused_alone_and_the_base_is_read_once(hostile, tmp_path):
    honest = [u for u in hostile.updates() if u.cluster.startswith("c")]
    victim = next(u for u in honest if u.cluster == "c3")
    _Truncating.victim = str(victim.path)
    Counting.log = []

    def opener(path: str) -> RangeFile:
        return _Truncating(path) if path == str(victim.path) else Counting(path)

    out = tmp_path / "s"
    out.mkdir()
    shard = Shard(hostile.base_path, honest, strategy="fedavg", round=1, shard=0, of=1,
                  out=out, chunk_elements=GRID, opener=opener)  # fmt: skip
    shard.stats()
    kept = shard.reduce()
    assert "c3" not in [c.cluster for c in kept]
    assert shard.checked.get("c3") is None or "truncated" in shard.checked["c3"]
    # The global model's slice of each float tensor (the distances need it) was read once
    # for all the updates, not once per update.
    floats = [p for p in shard.pieces if p.name != "d.count"]
    base_reads = sum(n for path, _, n in Counting.log if path == str(hostile.base_path))
    assert base_reads == sum(hi - lo for lo, hi in slice_ranges(hostile.base_path, floats))
    shard_combine(shard, kept, wait=lambda paths: None)
    merged = merge_shards([out])
    assert "truncated" in merged.rejected["c3"]
    others = [u for u in honest if u.cluster != "c3"]
    pod = aggregate_round(hostile.base_path, others, strategy="fedavg", round=1,
                          chunk_elements=GRID)  # fmt: skip
    assert merged.model == pod.model


def _phases(rf: RoundFiles, out: Path, of: int, updates=None, **kwargs) -> list[Shard]:
    return run_phases(rf.base_path, rf.updates() if updates is None else updates, out, of, **kwargs)


def test_the_merge_takes_only_the_files_each_shard_reported_as_it_ended(hostile, tmp_path):
    """What each shard's pod reports through the hub (its decision's digest) is what the
    merge checks; the decision names the slice, the state and every file the shards read."""
    kwargs = {"strategy": "krum", "options": OPTIONS["krum"], "chunk_elements": GRID}
    out = tmp_path / "s"
    shards = _phases(hostile, out, 3, **kwargs)
    reported = {s.shard: s.wrote["decision.json"] for s in shards}
    pod = aggregate_round(hostile.base_path, hostile.updates(), round=1, **kwargs)
    assert merge_shards([out], messages=reported).model == pod.model
    decisions = [json.loads(p.read_text()) for p in sorted(out.glob("*.decision.json"))]
    assert len({json.dumps(d["read"], sort_keys=True) for d in decisions}) == 1
    assert set(decisions[0]["read"]) == {
        f"{i}/{kind}"
        for i in range(3)
        for kind in ("stats.json", "cells.safetensors", "partials.safetensors")
    }
    with pytest.raises(ShardDirError, match="shard 2: its pod reported no digest"):
        merge_shards([out], messages={0: reported[0], 1: reported[1]})
    state = out / "shard-0001-of-0003.state.safetensors"
    meta = read_header(state).metadata
    state.write_bytes(serialize({"x": np.zeros(1, dtype=np.float32)}, meta))
    with pytest.raises(ShardDirError, match=r"state\.safetensors: not the bytes its decision"):
        merge_shards([out], messages=reported)


def test_a_shard_refuses_its_own_file_changed_in_the_store_after_it_wrote_it(hostile, tmp_path):
    out = tmp_path / "s"
    out.mkdir()
    shards = [
        Shard(hostile.base_path, hostile.updates(), strategy="fedavg", round=1, shard=i,
              of=2, out=out, chunk_elements=GRID)
        for i in range(2)
    ]  # fmt: skip
    for s in shards:
        s.stats()
    stats = out / "shard-0000-of-0002.stats.json"
    doc = json.loads(stats.read_text())
    doc["updates"]["huge"]["error"] = "a reason a bucket writer made up"
    stats.write_text(json.dumps(doc, indent=1) + "\n")
    with pytest.raises(ShardDirError, match="not the bytes this shard wrote"):
        shards[0].reduce()


def test_a_merge_holds_the_model_once_and_a_slice_beside_it(round_files, tmp_path):
    """The merge assembles the model in place: its peak is the model and about one shard's
    slice (collecting the slices and joining them held two models)."""
    import tracemalloc

    rng = np.random.default_rng(5)
    n = 1 << 20  # a 4 MB float32 model, in 4 shards of about 1 MB
    rf = round_files({"w": rng.normal(size=n).astype(np.float32)})
    for c in ("a", "b"):
        rf.add(c, {"w": rng.normal(size=n).astype(np.float32)})
    out = tmp_path / "s"
    cut = {"strategy": "fedavg", "chunk_elements": 1 << 16}  # 16 cells: 4 to a shard
    run_phases(rf.base_path, rf.updates(), out, 4, **cut)
    model_bytes = len(rf.base_bytes)

    tracemalloc.start()
    try:
        merged = merge_shards([out])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert merged.model == aggregate_round(rf.base_path, rf.updates(), round=1, **cut).model
    assert peak < 1.6 * model_bytes, (peak, model_bytes)
