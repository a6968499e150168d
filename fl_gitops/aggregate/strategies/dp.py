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

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

import fl_gitops.aggregate.strategies.fedadagrad as fedadagrad
import fl_gitops.aggregate.strategies.fedadam as fedadam
import fl_gitops.aggregate.strategies.fedavg as fedavg
import fl_gitops.aggregate.strategies.fedavgm as fedavgm
import fl_gitops.aggregate.strategies.fedprox as fedprox
import fl_gitops.aggregate.strategies.fedyogi as fedyogi
from fl_gitops.aggregate.strategies._arith import clip_scale
from fl_gitops.aggregate.strategies._options import check_options
from fl_gitops.aggregate.strategies.base import F64, Block, Plan, Pool, Strategy, options_object
from fl_gitops.aggregate.strategies.fedavg import MeanChoice, WeightedMean
from fl_gitops.errors import StrategyOptionsError

__all__ = ["INNER", "STRATEGY", "Clipped", "DPFixedClipping"]

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
class Clipped:
    """The DP combiner around an inner mean-based one: clip, average equally, add noise,
    then the inner strategy's server step (its state is the inner's).

    Each update's L2 distance to the global model is a statistic of the whole update (the
    engine sums it slice by slice as it checks the update): :meth:`choose` turns it into the
    clip factor, and the inner's :class:`~.fedavg.MeanChoice` sums the clipped updates.
    """

    inner: WeightedMean
    clipping_norm: float
    noise_multiplier: float
    weighted: bool = False
    folds: bool = False
    needs_norms: bool = True
    partials: Callable[[Block], F64] | None = None

    @property
    def state_names(self) -> tuple[str, ...]:
        return self.inner.state_names

    def require(self, n: int) -> None:
        self.inner.require(n)

    def choose(self, pool: Pool) -> MeanChoice:
        assert pool.norms is not None
        clip = self.clipping_norm
        n = len(pool.clusters)
        scales = tuple(clip_scale(norm, clip) for norm in pool.norms)
        clipped = [c for c, norm in zip(pool.clusters, pool.norms, strict=True) if norm > clip]
        std = 0.0
        rng = None
        if self.noise_multiplier > 0:
            std = self.noise_multiplier * clip / n
            rng = np.random.default_rng(pool.seed)
        record = {
            "clipped": clipped,
            "dp": {
                "clipping_norm": clip,
                "noise_multiplier": self.noise_multiplier,
                "noise_std": std,
                "seed": pool.seed,
            },
        }
        inner = self.inner.choose(pool)
        return replace(inner, scales=scales, noise_std=std, rng=rng, record=record)


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
        inner = strategy.plan(inner_options).combiner
        if not isinstance(inner, WeightedMean):
            raise StrategyOptionsError(
                f"strategy {self.name!r}: options.inner: {inner_name!r} does not combine by a mean"
            )
        resolved = dict(options, inner_options=inner_options)
        combiner = Clipped(
            inner=replace(inner, weighted=False),
            clipping_norm=float(options["clipping_norm"]),
            noise_multiplier=float(options["noise_multiplier"]),
        )
        return Plan(strategy=self.name, options=resolved, combiner=combiner)


STRATEGY = DPFixedClipping()
