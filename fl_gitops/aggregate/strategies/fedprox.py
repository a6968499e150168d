"""FedProx: FedAvg on the server; each client adds the proximal term (μ/2)·‖w − w_global‖².

Li, Sahu, Zaheer, Sanjabi, Talwalkar, Smith, "Federated Optimization in Heterogeneous
Networks", MLSys 2020 (arXiv:1812.06127).

The server side is FedAvg. The client reads ``mu`` from the round config's
``strategy.options`` and adds the term to its loss, which keeps local models close to the
global one when clusters' data differ a lot (non-IID) or they train for different amounts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fl_gitops.aggregate.strategies.base import Plan, options_object
from fl_gitops.aggregate.strategies.fedavg import WeightedMean

__all__ = ["STRATEGY", "FedProx"]


@dataclass(frozen=True)
class FedProx:
    name: str = "fedprox"
    summary: str = "FedAvg on the server; clients add the proximal term mu (Li et al. 2020)"
    options_schema: Mapping[str, Any] = field(
        default_factory=lambda: options_object(
            {
                "mu": {
                    "type": "number",
                    "minimum": 0,
                    "default": 0.01,
                    "description": "weight of the proximal term, applied by the client",
                }
            }
        )
    )

    def plan(self, options: Mapping[str, Any]) -> Plan:
        return Plan(strategy=self.name, options=dict(options), combiner=WeightedMean())


STRATEGY = FedProx()
