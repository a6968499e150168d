"""FedYogi: the server applies Yogi to the averaged update.

Reddi, Charles, Zaheer, Garrett, Rush, Konečný, Kumar, McMahan, "Adaptive Federated
Optimization", ICLR 2021 (arXiv:2003.00295).

v ← v − (1 − β₂)·Δ²·sign(v − Δ²): like FedAdam, but v changes more slowly, which the paper
finds more robust to the choice of eta. The moments are server state, kept in the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fl_gitops.aggregate.strategies.base import Plan
from fl_gitops.aggregate.strategies.fedopt import adaptive_plan, fedopt_schema

__all__ = ["STRATEGY", "FedYogi"]


@dataclass(frozen=True)
class FedYogi:
    name: str = "fedyogi"
    summary: str = "server-side Yogi on the averaged update (Reddi et al. 2021)"
    options_schema: Mapping[str, Any] = field(
        default_factory=lambda: fedopt_schema(
            eta=0.01, eta_l=0.0316, beta_1=0.9, beta_2=0.99, tau=1e-3
        )
    )

    def plan(self, options: Mapping[str, Any]) -> Plan:
        return adaptive_plan(self.name, "yogi", options)


STRATEGY = FedYogi()
