"""FedAdam: the server applies Adam to the averaged update.

Reddi, Charles, Zaheer, Garrett, Rush, Konečný, Kumar, McMahan, "Adaptive Federated
Optimization", ICLR 2021 (arXiv:2003.00295).

v ← β₂·v + (1 − β₂)·Δ². Use it when FedAvg converges slowly on heterogeneous data; tune
``eta`` first. The moments are server state, kept in the store between rounds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fl_gitops.aggregate.strategies.base import Plan
from fl_gitops.aggregate.strategies.fedopt import adaptive_plan, fedopt_schema

__all__ = ["STRATEGY", "FedAdam"]


@dataclass(frozen=True)
class FedAdam:
    name: str = "fedadam"
    summary: str = "server-side Adam on the averaged update (Reddi et al. 2021)"
    options_schema: Mapping[str, Any] = field(
        default_factory=lambda: fedopt_schema(eta=0.1, eta_l=0.1, beta_1=0.9, beta_2=0.99, tau=1e-9)
    )

    def plan(self, options: Mapping[str, Any]) -> Plan:
        return adaptive_plan(self.name, "adam", options)


STRATEGY = FedAdam()
