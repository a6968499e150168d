"""FedMedian: the coordinate-wise median of the updates.

Yin, Chen, Ramchandran, Bartlett, "Byzantine-Robust Distributed Learning: Towards Optimal
Statistical Rates", ICML 2018 (arXiv:1803.01498).

Each coordinate of the new model is the median of that coordinate over the K updates
(unweighted; with an even K, the mean of the two middle values). Robust to fewer than half of
the clusters sending arbitrary values, at some cost in accuracy when everyone is honest.
Aggregation reads the K updates chunk by chunk, so memory is K times a chunk. No options.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fl_gitops.aggregate.strategies.base import F64, Coordinatewise, Plan, options_object

__all__ = ["STRATEGY", "FedMedian", "Median", "coordinate_median"]


def coordinate_median(stack: F64, weights: F64) -> F64:
    """Median over axis 0 of a K x c stack (weights are ignored), to ``np.median``'s bits.

    By a sort of each coordinate's values rather than ``np.median``'s partition: for the K
    of a round (tens of rows) the sort is about 6x faster, and the median is the same float (the
    middle value, or the two middle values added and halved, as ``np.median`` does), since
    equal values other than zeros have the same bits. Zeros do not: -0.0 and 0.0 are equal,
    and which one lands in the middle depends on the algorithm. So the columns whose median
    is zero are taken again by ``np.median`` itself (few, in updates of floats), and a
    round's model stays the bytes the rounds before this change recorded."""
    del weights
    k = stack.shape[0]
    # Each coordinate's K values side by side in memory (a c x K copy), sorted in place:
    # about 1.7x faster than sorting along the stack's columns.
    ordered = np.ascontiguousarray(stack.T)
    ordered.sort(axis=1)
    if k % 2:
        middle: F64 = ordered[:, k // 2].copy()
    else:
        middle = ordered[:, k // 2 - 1] + ordered[:, k // 2]
        middle *= 0.5
    zeros = np.flatnonzero(middle == 0.0)
    if zeros.size:
        middle[zeros] = np.median(stack[:, zeros], axis=0)
    return middle


#: The combiner: every valid update, unweighted, the median of each coordinate.
Median = Coordinatewise(coordinate_median)


@dataclass(frozen=True)
class FedMedian:
    name: str = "fedmedian"
    summary: str = "coordinate-wise median, robust to < K/2 bad updates (Yin et al. 2018)"
    options_schema: Mapping[str, Any] = field(default_factory=options_object)

    def plan(self, options: Mapping[str, Any]) -> Plan:
        return Plan(strategy=self.name, options=dict(options), combiner=Median)


STRATEGY = FedMedian()
