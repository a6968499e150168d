"""Each strategy's combining step run by hand, one small slice at a time, as a shard would.

The phases of a ``Combiner`` (partials per slice, summed; choose once; combine per slice;
finish per tensor) are run here without the engine over slices of 7 elements, which cut
across every tensor's boundaries, and must give the bytes ``aggregate_round`` gives.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from fl_gitops.aggregate import aggregate_round
from fl_gitops.aggregate.strategies import plan
from fl_gitops.aggregate.strategies._arith import squared_distance
from fl_gitops.aggregate.strategies.base import Block, Pool, Slice
from fl_gitops.tensors import load_bytes

SHAPES = {"a": (5, 6), "b": (11,), "c": (2, 9)}
SLICE = 7


def model(seed: int, scale: float = 1.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {n: (rng.normal(size=s) * scale).astype(np.float32) for n, s in SHAPES.items()}


BASE = model(0)
UPDATES = [(f"c{k}", model(10 + k, 9.0 if k == 3 else 1.0), 2 + 3 * k) for k in range(6)]


def blocks(rows: list[dict[str, np.ndarray]], name: str):
    flat = [r[name].reshape(-1) for r in rows]
    base = BASE[name].reshape(-1)
    for offset in range(0, flat[0].size, SLICE):
        n = min(SLICE, flat[0].size - offset)
        values = np.stack([f[offset : offset + n].astype(np.float64) for f in flat])
        yield Block(Slice(name, offset, n), values, lambda o=offset, n=n: base[o : o + n])


def by_slices(strategy: str, options: dict, seed: int) -> dict[str, np.ndarray]:
    combiner = plan(strategy, options).combiner
    clusters = tuple(c for c, _, _ in UPDATES)
    rows = [t for _, t, _ in UPDATES]
    weights = tuple(float(n) if combiner.weighted else 1.0 for _, _, n in UPDATES)
    norms = None
    if combiner.needs_norms:
        norms = tuple(
            math.sqrt(sum(squared_distance(r[n].reshape(-1), BASE[n].reshape(-1)) for n in SHAPES))
            for r in rows
        )
    stats = None
    if combiner.partials is not None:
        for name in sorted(SHAPES):
            for block in blocks(rows, name):
                part = combiner.partials(block)
                stats = part if stats is None else stats + part
    combiner.require(len(rows))
    choice = combiner.choose(Pool(clusters, weights, norms, stats, seed))
    kept = [rows[i] for i in choice.keep]
    out = {}
    for name in sorted(SHAPES):
        values = np.concatenate([choice.combine(b) for b in blocks(kept, name)])
        values = values.reshape(SHAPES[name])
        out[name] = np.empty(SHAPES[name], dtype=np.float32)
        base = BASE[name].astype(np.float64)
        choice.finish(name, values, out[name], True, lambda b=base: b, {})
    return out


@pytest.mark.parametrize(
    ("strategy", "options"),
    [
        ("fedavg", {}),
        ("fedavgm", {}),
        ("fedadam", {}),
        ("fedmedian", {}),
        ("fedtrimmedavg", {"beta": 0.2}),
        ("krum", {"f": 1}),
        ("multikrum", {"f": 1}),
        ("dp-fixed-clipping", {"clipping_norm": 6.0, "noise_multiplier": 0.5}),
        ("dp-fixed-clipping", {"clipping_norm": 6.0, "inner": "fedyogi"}),
    ],
)
def test_a_combiner_run_slice_by_slice_gives_the_engines_bytes(round_files, strategy, options):
    rf = round_files(BASE)
    for cluster, tensors, n in UPDATES:
        rf.add(cluster, tensors, num_examples=n)
    result = aggregate_round(
        rf.base_path, rf.updates(), strategy=strategy, options=options, round=1, seed=5
    )
    want = load_bytes(result.model)
    got = by_slices(strategy, options, seed=5)
    for name in SHAPES:
        assert got[name].tobytes() == want[name].tobytes(), name
