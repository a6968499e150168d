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

from fl_gitops.fl.strategies.base import Plan, options_object

__all__ = ["INNER", "STRATEGY", "DPFixedClipping", "with_dp"]

# Strategies whose combination is a mean: the only ones the noise calibration holds for.
INNER = ("fedavg", "fedavgm", "fedprox", "fedadam", "fedyogi", "fedadagrad")


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
        # Imported here: the table imports this module.
        from fl_gitops.fl.strategies import STRATEGIES, validate_options

        inner_name = str(options["inner"])
        inner_options = validate_options(inner_name, options.get("inner_options", {}))
        inner = STRATEGIES[inner_name].plan(inner_options)
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


def with_dp(
    name: str, options: Mapping[str, Any], dp: Mapping[str, Any] | None
) -> tuple[str, dict[str, Any]]:
    """Wrap a blueprint's strategy in DP when its ``dp`` block is set.

    Maps ``spec.strategy.dp`` (``clipNorm``, ``noiseMultiplier``) onto this wrapper, with
    the named strategy as ``inner``; the block's ``seed`` is passed to ``aggregate_round``
    separately. Without a ``dp`` block, returns the strategy unchanged.

    Raises:
        StrategyOptionsError: the strategy is not one the wrapper can take, or bad options.
    """
    from fl_gitops.fl.strategies import validate_options

    if not dp:
        return name, validate_options(name, options)
    wrapped = {
        "clipping_norm": dp.get("clipNorm"),
        "noise_multiplier": dp.get("noiseMultiplier", 1.0),
        "inner": name,
        "inner_options": dict(options),
    }
    return STRATEGY.name, validate_options(STRATEGY.name, wrapped)
