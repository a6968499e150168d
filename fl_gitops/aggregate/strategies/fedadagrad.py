"""FedAdagrad: the server applies Adagrad to the averaged update.

Reddi, Charles, Zaheer, Garrett, Rush, Konečný, Kumar, McMahan, "Adaptive Federated
Optimization", ICLR 2021 (arXiv:2003.00295).

v ← v + Δ²: the step shrinks for coordinates that have moved a lot. ``beta_1`` defaults to
0 (no momentum on m). The moments are server state, kept in the store between rounds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fl_gitops.aggregate.strategies.base import Plan
from fl_gitops.aggregate.strategies.fedopt import adaptive_plan, fedopt_schema

__all__ = ["STRATEGY", "FedAdagrad"]


@dataclass(frozen=True)
class FedAdagrad:
    name: str = "fedadagrad"
    summary: str = "server-side Adagrad on the averaged update (Reddi et al. 2021)"
    options_schema: Mapping[str, Any] = field(
        default_factory=lambda: fedopt_schema(eta=0.1, eta_l=0.1, beta_1=0.0, beta_2=None, tau=1e-9)
    )

    def plan(self, options: Mapping[str, Any]) -> Plan:
        return adaptive_plan(self.name, "adagrad", options)


STRATEGY = FedAdagrad()
