"""Server-side fixed-clipping differential privacy around a mean-based strategy.

McMahan, Ramage, Talwar, Zhang, "Learning Differentially Private Recurrent Language
Models", ICLR 2018 (arXiv:1710.06963): DP-FedAvg with fixed clipping.

Each update's distance to the global model is clipped to L2 norm ``clipping_norm`` (an update
u becomes base + (u − base)·min(1, C / ‖u − base‖)), the clipped updates are averaged with
equal weights (so one cluster's influence is bounded by C / K), and Gaussian noise of standard
deviation ``noise_multiplier · C / K`` is added to the mean before the inner strategy's server
step. The noise is drawn from a seed the caller passes in; the clipping norm, the noise
multiplier, the noise's standard deviation and the seed go into the round record. Accounting
the privacy budget over rounds is left to the user (the record has what an accountant needs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import fl_gitops.aggregate.strategies.fedadagrad as fedadagrad
import fl_gitops.aggregate.strategies.fedadam as fedadam
import fl_gitops.aggregate.strategies.fedavg as fedavg
import fl_gitops.aggregate.strategies.fedavgm as fedavgm
import fl_gitops.aggregate.strategies.fedprox as fedprox
import fl_gitops.aggregate.strategies.fedyogi as fedyogi
from fl_gitops.aggregate.strategies._options import check_options
from fl_gitops.aggregate.strategies.base import Plan, Strategy, options_object
from fl_gitops.errors import StrategyOptionsError

__all__ = ["INNER", "STRATEGY", "DPFixedClipping"]

# Strategies whose combination is a mean: the only ones the noise calibration holds for.
# Imported from their own modules, not from the STRATEGIES table, which imports this one.
_INNER: dict[str, Strategy] = {
    s.name: s
    for s in (
        fedavg.STRATEGY,
        fedavgm.STRATEGY,
        fedprox.STRATEGY,
        fedadam.STRATEGY,
        fedyogi.STRATEGY,
        fedadagrad.STRATEGY,
    )
}
INNER = tuple(_INNER)


@dataclass(frozen=True)
class DPFixedClipping:
    name: str = "dp-fixed-clipping"
    summary: str = "clip each update's L2 norm, add Gaussian noise (McMahan et al. 2018)"
    options_schema: Mapping[str, Any] = field(
        default_factory=lambda: options_object(
            {
                "clipping_norm": {"type": "number", "exclusiveMinimum": 0},
                "noise_multiplier": {"type": "number", "minimum": 0, "default": 1.0},
                "inner": {"enum": list(INNER), "default": "fedavg"},
                "inner_options": {"type": "object", "default": {}},
            },
            required=("clipping_norm",),
        )
    )

    def plan(self, options: Mapping[str, Any]) -> Plan:
        inner_name = str(options["inner"])
        strategy = _INNER.get(inner_name)
        if strategy is None:
            raise StrategyOptionsError(
                f"strategy {self.name!r}: options.inner: expected one of "
                f"{', '.join(INNER)}, got {inner_name!r}"
            )
        inner_options = check_options(
            strategy, options.get("inner_options", {}), inner_name, "options"
        )
        inner = strategy.plan(inner_options)
        resolved = dict(options, inner_options=inner_options)
        return replace(
            inner,
            strategy=self.name,
            options=resolved,
            weighted=False,
            clip_norm=float(options["clipping_norm"]),
            noise_multiplier=float(options["noise_multiplier"]),
        )


STRATEGY = DPFixedClipping()
