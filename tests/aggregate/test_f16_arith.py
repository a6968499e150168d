"""float16 updates are measured and clipped in float32, not in numpy's float16 arithmetic.

numpy multiplies float16 arrays in float16, each product rounded to 11 bits (and the factor
too): a clipped update's ``(1 − s)·base`` put it about 5e-4·‖base‖ from where the clip puts
it, more than the clip itself for a large model. Its float16 subtraction was merely slow;
the distance it now takes in float32 must be the same on every path that measures.
"""

from __future__ import annotations

import numpy as np

from fl_gitops.aggregate.strategies._arith import (
    BLOCK,
    add_weighted,
    distance_scratch,
    squared_distance_bound,
    weighted_sum,
)


def _model(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = (rng.standard_normal(n) * 4).astype(np.float16)
    update = (base.astype(np.float64) + rng.standard_normal(n) * 0.01).astype(np.float16)
    return base, update


def test_the_fused_sum_measures_float16_as_squared_distance_bound_does():
    base, update = _model(BLOCK, seed=2)
    scratch = distance_scratch(update.dtype, BLOCK)
    alone = squared_distance_bound(update, base, scratch)
    distances = [0.0]
    acc = np.zeros(BLOCK)
    add_weighted(acc, [update], [1.0], np.empty(BLOCK), None, base, distances, scratch)
    assert distances == [alone]
    assert np.array_equal(acc, update.astype(np.float64))  # the sum itself is untouched


def test_a_clipped_float16_update_lands_where_the_clip_puts_it():
    base, update = _model(2 * BLOCK, seed=3)
    s = 0.3  # 1 - s has no exact float16: rounded, it moved every element by ~1e-4 of it
    got = weighted_sum(update.astype(np.float64)[None, :], [1.0], [s], base)
    b = base.astype(np.float64)
    want = s * update.astype(np.float64) + (1 - s) * b
    # float32 precision of the base's term (the factor and the product), not float16's.
    assert np.max(np.abs(got - want) / np.maximum(np.abs(b), 1e-3)) < 1e-6
