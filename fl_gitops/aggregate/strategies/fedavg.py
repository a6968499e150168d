"""FedAvg: the new global model is the mean of the clusters' models, weighted by examples.

McMahan, Moore, Ramage, Hampson, Agüera y Arcas, "Communication-Efficient Learning of Deep
Networks from Decentralized Data", AISTATS 2017 (arXiv:1602.05629).

The default, and the right first choice when clusters are honest and their data not too
different. No options.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fl_gitops.aggregate.strategies.base import Plan, options_object

__all__ = ["STRATEGY", "FedAvg"]


@dataclass(frozen=True)
class FedAvg:
    name: str = "fedavg"
    summary: str = "mean of the updates weighted by num_examples (McMahan et al. 2017)"
    options_schema: Mapping[str, Any] = field(default_factory=options_object)

    def plan(self, options: Mapping[str, Any]) -> Plan:
        return Plan(strategy=self.name, options=dict(options))


STRATEGY = FedAvg()
