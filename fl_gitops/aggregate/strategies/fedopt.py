"""The arithmetic FedAdam, FedYogi and FedAdagrad share (Reddi et al. 2021, Algorithm 2).

Reddi, Charles, Zaheer, Garrett, Rush, Konečný, Kumar, McMahan, "Adaptive Federated
Optimization", ICLR 2021 (arXiv:2003.00295).

With Δ = mean(updates) − global: m ← β₁·m + (1 − β₁)·Δ; v is updated by the variant
(Adagrad, Adam or Yogi); global ← global + η·m / (√v + τ). m and v start at zero (the paper's
v₋₁ ≥ τ² is met once τ is added), with no bias correction, as in the paper. Both are server
state, kept in the store between rounds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from fl_gitops.aggregate.strategies.base import F64, Plan, options_object
from fl_gitops.aggregate.strategies.fedavg import WeightedMean

__all__ = ["AdaptiveStep", "adaptive_plan", "fedopt_schema"]


@dataclass(frozen=True)
class AdaptiveStep:
    """One server step of FedAdagrad, FedAdam or FedYogi on one tensor."""

    variant: Literal["adagrad", "adam", "yogi"]
    eta: float
    beta_1: float
    beta_2: float
    tau: float

    def __call__(
        self, base: F64, combined: F64, state: Mapping[str, F64 | None]
    ) -> tuple[F64, dict[str, F64]]:
        delta = combined - base
        m_prev = state.get("m")
        v_prev = state.get("v")
        m_prev = np.zeros_like(delta) if m_prev is None else m_prev
        v_prev = np.zeros_like(delta) if v_prev is None else v_prev
        m = self.beta_1 * m_prev + (1.0 - self.beta_1) * delta
        d2 = delta * delta
        if self.variant == "adagrad":
            v = v_prev + d2
        elif self.variant == "adam":
            v = self.beta_2 * v_prev + (1.0 - self.beta_2) * d2
        else:  # yogi
            v = v_prev - (1.0 - self.beta_2) * d2 * np.sign(v_prev - d2)
        new = base + self.eta * m / (np.sqrt(v) + self.tau)
        return new, {"m": m, "v": v}


def fedopt_schema(
    *, eta: float, eta_l: float, beta_1: float, beta_2: float | None, tau: float
) -> dict[str, Any]:
    """The options schema of one variant, with its defaults."""
    props: dict[str, Any] = {
        "eta": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": eta,
            "description": "server learning rate",
        },
        "eta_l": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": eta_l,
            "description": "the client learning rate the paper pairs with eta "
            "(recorded; the client's own optimizer settings apply)",
        },
        "beta_1": {
            "type": "number",
            "minimum": 0,
            "exclusiveMaximum": 1,
            "default": beta_1,
            "description": "decay of the first moment m",
        },
        "tau": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": tau,
            "description": "adaptivity: added to sqrt(v)",
        },
    }
    if beta_2 is not None:
        props["beta_2"] = {
            "type": "number",
            "minimum": 0,
            "exclusiveMaximum": 1,
            "default": beta_2,
            "description": "decay of the second moment v",
        }
    return options_object(props)


def adaptive_plan(
    strategy: str, variant: Literal["adagrad", "adam", "yogi"], options: Mapping[str, Any]
) -> Plan:
    """The plan of FedAdagrad, FedAdam or FedYogi: FedAvg's weighted mean, then the server step.

    FedAdagrad has no ``beta_2`` option; its step does not use one.
    """
    step = AdaptiveStep(
        variant=variant,
        eta=float(options["eta"]),
        beta_1=float(options["beta_1"]),
        beta_2=0.0 if variant == "adagrad" else float(options["beta_2"]),
        tau=float(options["tau"]),
    )
    return Plan(
        strategy=strategy,
        options=dict(options),
        combiner=WeightedMean(step=step, state_names=("m", "v")),
    )
