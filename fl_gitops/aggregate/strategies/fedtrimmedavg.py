"""FedTrimmedAvg: the coordinate-wise β-trimmed mean of the updates.

Yin, Chen, Ramchandran, Bartlett, "Byzantine-Robust Distributed Learning: Towards Optimal
Statistical Rates", ICML 2018 (arXiv:1803.01498).

For each coordinate, drop the ⌊β·K⌋ largest and ⌊β·K⌋ smallest values and average the rest
(unweighted). Sits between FedAvg and FedMedian: robust to up to ⌊β·K⌋ bad updates per
coordinate while averaging more of the honest ones. Option ``beta`` in [0, 0.5).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np

from fl_gitops.aggregate.strategies.base import F64, Coordinatewise, Plan, options_object

__all__ = ["STRATEGY", "FedTrimmedAvg", "TrimmedMean"]


@dataclass(frozen=True)
class TrimmedMean:
    """Mean over axis 0 after cutting ⌊β·K⌋ values at each end (weights are ignored).

    The strategy's combiner applies it to every valid update, unweighted, slice by slice.
    """

    beta: float

    def __call__(self, stack: F64, weights: F64) -> F64:
        del weights
        k = stack.shape[0]
        cut = int(np.floor(self.beta * k))
        if cut == 0:
            return cast(F64, np.mean(stack, axis=0))
        ordered = np.sort(stack, axis=0)
        return cast(F64, np.mean(ordered[cut : k - cut], axis=0))


@dataclass(frozen=True)
class FedTrimmedAvg:
    name: str = "fedtrimmedavg"
    summary: str = "coordinate-wise beta-trimmed mean (Yin et al. 2018)"
    options_schema: Mapping[str, Any] = field(
        default_factory=lambda: options_object(
            {
                "beta": {
                    "type": "number",
                    "minimum": 0,
                    "exclusiveMaximum": 0.5,
                    "default": 0.2,
                    "description": "fraction cut at each end of each coordinate",
                }
            }
        )
    )

    def plan(self, options: Mapping[str, Any]) -> Plan:
        return Plan(
            strategy=self.name,
            options=dict(options),
            combiner=Coordinatewise(TrimmedMean(beta=float(options["beta"]))),
        )


STRATEGY = FedTrimmedAvg()
