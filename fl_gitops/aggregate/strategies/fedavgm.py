"""FedAvgM: FedAvg with server momentum on the averaged update.

Hsu, Qi, Brown, "Measuring the Effects of Non-Identical Data Distribution for Federated
Visual Classification", 2019 (arXiv:1909.06335).

With Δ = mean(updates) − global: v ← β·v + Δ, then global ← global + η·v. The momentum v is
server state, kept in the store between rounds. Helps when client data are skewed (non-IID)
and FedAvg oscillates. β = 0 and η = 1 is FedAvg.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fl_gitops.aggregate.strategies.base import F64, Plan, options_object
from fl_gitops.aggregate.strategies.fedavg import WeightedMean

__all__ = ["STRATEGY", "FedAvgM", "MomentumStep"]


@dataclass(frozen=True)
class MomentumStep:
    """v ← β·v + Δ; new ← base + η·v."""

    learning_rate: float
    momentum: float

    def __call__(
        self, base: F64, combined: F64, state: Mapping[str, F64 | None]
    ) -> tuple[F64, dict[str, F64]]:
        delta = combined - base
        v_prev = state.get("v")
        v = delta if v_prev is None else self.momentum * v_prev + delta
        return base + self.learning_rate * v, {"v": v}


@dataclass(frozen=True)
class FedAvgM:
    name: str = "fedavgm"
    summary: str = "FedAvg with server momentum (Hsu et al. 2019)"
    options_schema: Mapping[str, Any] = field(
        default_factory=lambda: options_object(
            {
                "server_learning_rate": {"type": "number", "exclusiveMinimum": 0, "default": 1.0},
                "server_momentum": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.9},
            }
        )
    )

    def plan(self, options: Mapping[str, Any]) -> Plan:
        step = MomentumStep(
            learning_rate=float(options["server_learning_rate"]),
            momentum=float(options["server_momentum"]),
        )
        return Plan(
            strategy=self.name,
            options=dict(options),
            combiner=WeightedMean(step=step, state_names=("v",)),
        )


STRATEGY = FedAvgM()
