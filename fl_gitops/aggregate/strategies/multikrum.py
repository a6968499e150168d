"""MultiKrum: average the m updates with the best Krum scores.

Blanchard, El Mhamdi, Guerraoui, Stainer, "Machine Learning with Adversaries: Byzantine
Tolerant Gradient Descent", NeurIPS 2017 (Multi-Krum, section 6).

Scores as Krum, keeps the ``m`` best (default n − f) and averages them weighted by
num_examples. m = 1 is Krum; m = n is FedAvg. Keeps more of the honest signal than Krum
while still dropping outliers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fl_gitops.aggregate.strategies.base import Plan
from fl_gitops.aggregate.strategies.krum import KrumCombiner, krum_schema

__all__ = ["STRATEGY", "MultiKrum"]


@dataclass(frozen=True)
class MultiKrum:
    name: str = "multikrum"
    summary: str = "average the m updates with the best Krum scores (Blanchard et al. 2017)"
    options_schema: Mapping[str, Any] = field(default_factory=lambda: krum_schema(with_m=True))

    def plan(self, options: Mapping[str, Any]) -> Plan:
        m = options.get("m")
        return Plan(
            strategy=self.name,
            options=dict(options),
            combiner=KrumCombiner(self.name, f=int(options["f"]), m=None if m is None else int(m)),
        )


STRATEGY = MultiKrum()
