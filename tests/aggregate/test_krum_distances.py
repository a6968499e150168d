"""Krum's pairwise distances from one BLAS product: close to the exact differences, and
exactly zero between equal updates (a Sybil's copies must look like the copies they are)."""

from __future__ import annotations

import numpy as np
import pytest

from fl_gitops.aggregate.strategies.base import Block, Slice
from fl_gitops.aggregate.strategies.krum import KrumCombiner


def _exact(stack: np.ndarray) -> np.ndarray:
    k = stack.shape[0]
    out = np.zeros((k, k))
    for i in range(k):
        for j in range(i + 1, k):
            d = stack[i] - stack[j]
            out[i, j] = float(np.dot(d, d))
    return out


@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e6])
def test_distances_match_the_exact_ones_and_copies_are_at_zero(scale: float) -> None:
    rng = np.random.default_rng(11)
    base = rng.normal(size=4096) * scale
    stack = base + rng.normal(size=(9, 4096)) * scale * 0.01
    stack[4] = stack[1]  # a copy
    stack[8] = stack[1]
    block = Block(Slice("w", 0, 4096), stack, lambda: base)
    got = KrumCombiner("krum", f=1).distances(block)
    want = _exact(stack)
    assert np.all(np.tril(got) == 0.0)
    upper = np.triu_indices(9, 1)
    assert np.allclose(got[upper], want[upper], rtol=1e-11, atol=0.0)
    assert got[1, 4] == got[1, 8] == got[4, 8] == 0.0
    assert np.all(got[upper][want[upper] > 0] > 0)
