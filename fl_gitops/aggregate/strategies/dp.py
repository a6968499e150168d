"""Server-side clipping differential privacy around a mean-based strategy, fixed or adaptive.

McMahan, Ramage, Talwar, Zhang, "Learning Differentially Private Recurrent Language
Models", ICLR 2018 (arXiv:1710.06963): DP-FedAvg with fixed clipping. Andrew, Thakkar,
McMahan, Ramaswamy, "Differentially Private Learning with Adaptive Clipping", NeurIPS 2021
(arXiv:1905.03871): the clip follows a quantile of the updates' norms.

Each update's distance to the global model is clipped to L2 norm ``clipping_norm`` (an update
u becomes base + (u − base)·min(1, C / ‖u − base‖)), the clipped updates are averaged with
equal weights (so one cluster's influence is bounded by C / K), and Gaussian noise of standard
deviation ``noise_multiplier · C / K`` is added to the mean before the inner strategy's server
step. The noise is drawn from a seed the caller passes in; the clipping norm, the noise
multiplier, the noise's standard deviation and the seed go into the round record; the
reconcile pass adds the epsilon spent so far (``_accountant``).

Adaptive clipping (``adaptive`` set): ``clipping_norm`` is this round's clip C. The fraction
of updates with norm <= C is counted, noised with Gaussian noise of standard deviation
``clipped_count_stddev`` (sigma_b) and divided by n; the next round's clip is
``C * exp(-learning_rate * (b_noisy - target_quantile))``. The count is a second query on
the same clusters, so the noise on the sum uses the paper's effective multiplier
``z_sum = (z^-2 - (2 sigma_b)^-2)^(-1/2)``: both queries together cost what one Gaussian
query of multiplier z costs, and the accountant charges z. The count's noise is drawn from
its own stream of the round's seed, so a re-aggregation draws the same numbers; only the
noisy fraction is published (the true one is a statistic of the clusters' updates), and so
is no list of which clusters were clipped.

Client-side clipping (``clipping: client``; Andrew et al. 2021, section 3, as Flower's
``DifferentialPrivacyClientSideAdaptiveClipping``): each cluster's Job clips its own
update to the round's clip and reports through the hub whether it was within it (its
``unclipped`` bit, ``fl_gitops.reports``). The hub cannot tell from a clipped update
whether it was clipped, so the count of adaptive clipping is of the reported bits
(``unclipped``, cluster -> bit, passed in by the caller as it read them), not of norms it
measures; the hub's own clip is then a no-op for honest clusters, and the caller bounds
every update's distance by the clip (``CLIENT_CLIP_TOLERANCE`` above it at most), so a
cluster that did not clip is rejected rather than clipped. The noise, the next clip and
the accountant are the same: client-side clipping with central noise has the same
guarantee (the sensitivity of the sum is still the clip).
"""

from __future__ import annotations

import math
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

__all__ = [
    "CLIENT_CLIP_TOLERANCE",
    "INNER",
    "STRATEGY",
    "Adaptive",
    "Clipped",
    "DPFixedClipping",
    "client_clip_bound",
    "sum_noise_multiplier",
]

# How far above the round's clip an update clipped on its cluster may measure on the hub:
# the client writes its update so that its float64 distance is at most the clip, and the
# hub sums the same squares in another order (relative differences near 1e-12).
CLIENT_CLIP_TOLERANCE = 1e-6


def client_clip_bound(clip: float) -> float:
    """The farthest an update of a round clipped on the clusters may be from the global
    model: the clip, and a float tolerance (``CLIENT_CLIP_TOLERANCE``) above it."""
    return float(clip) * (1.0 + CLIENT_CLIP_TOLERANCE)


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


def sum_noise_multiplier(noise_multiplier: float, count_stddev: float) -> float:
    """The multiplier of the noise on the sum when the clipped count is noised with
    ``count_stddev``, so that the two queries cost what ``noise_multiplier`` alone costs
    (Andrew et al. 2021, Theorem 1): ``(z^-2 - (2 sigma_b)^-2)^(-1/2)``.

    Raises:
        ValueError: ``count_stddev`` is not above ``noise_multiplier / 2`` (the count would
            spend the whole budget), or ``noise_multiplier`` is not above 0.
    """
    z, sigma = float(noise_multiplier), float(count_stddev)
    if z <= 0 or 2 * sigma <= z:
        raise ValueError(
            f"clippedCountStddev {sigma:g} must be above noiseMultiplier / 2 = {z / 2:g}: "
            "the noisy count would spend the whole privacy budget"
        )
    return float((z**-2 - (2 * sigma) ** -2) ** -0.5)


@dataclass(frozen=True)
class Adaptive:
    """Adaptive clipping's parameters (Andrew et al. 2021): where the clip goes, how fast,
    and how noisy the count of unclipped updates is."""

    target_quantile: float
    learning_rate: float
    clipped_count_stddev: float


# The count's noise stream, apart from the sum's (which draws from the round's seed alone,
# as fixed clipping always has): the two never share a draw.
_COUNT_STREAM = 1


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
    adaptive: Adaptive | None = None
    # Client-side clipping: the clusters clipped their updates and reported these bits.
    client: bool = False
    unclipped: Mapping[str, bool] | None = None
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
        multiplier = self.noise_multiplier
        dp: dict[str, Any] = {"clipping_norm": clip, "noise_multiplier": multiplier}
        record: dict[str, Any] = {"dp": dp}
        if self.client:
            dp["clipping"] = "client"
        if self.adaptive is None:
            if self.client:
                # Fixed clipping needs no bit: those reported are only accounted for here.
                reported = self.unclipped or {}
                record["clipped"] = [c for c in pool.clusters if reported.get(c) is False]
            else:
                record["clipped"] = [
                    c for c, norm in zip(pool.clusters, pool.norms, strict=True) if norm > clip
                ]
        else:
            a = self.adaptive
            multiplier = sum_noise_multiplier(multiplier, a.clipped_count_stddev)
            if self.client:
                bits = self._bits(pool.clusters)
                dp["unclipped"] = dict(zip(pool.clusters, bits, strict=True))
                unclipped = sum(1 for b in bits if b)
            else:
                unclipped = sum(1 for norm in pool.norms if norm <= clip)
            count_rng = np.random.default_rng([pool.seed, _COUNT_STREAM])
            noisy = (unclipped + float(count_rng.normal(0.0, a.clipped_count_stddev))) / n
            dp.update(
                sum_noise_multiplier=multiplier,
                clipped_count_stddev=a.clipped_count_stddev,
                noisy_unclipped_fraction=noisy,
                target_quantile=a.target_quantile,
                learning_rate=a.learning_rate,
                next_clipping_norm=clip * math.exp(-a.learning_rate * (noisy - a.target_quantile)),
            )
        std = 0.0
        rng = None
        if multiplier > 0:
            std = multiplier * clip / n
            rng = np.random.default_rng(pool.seed)
        dp.update(noise_std=std, seed=pool.seed)
        inner = self.inner.choose(pool)
        return replace(inner, scales=scales, noise_std=std, rng=rng, record=record)

    def _bits(self, clusters: tuple[str, ...]) -> list[bool]:
        """Each contributor's reported bit, in cluster order.

        Raises:
            StrategyOptionsError: a contributor has none (the caller should have
                rejected its update: a round clipped on the clusters needs every bit).
        """
        bits = self.unclipped or {}
        missing = [c for c in clusters if c not in bits]
        if missing:
            raise StrategyOptionsError(
                f"strategy {STRATEGY.name!r}: options.unclipped: no reported bit for cluster "
                f"{missing[0]!r} (clipping: client needs each contributor's)"
            )
        return [bool(bits[c]) for c in clusters]


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
                # "client": the clusters clip their own updates and report their bit (no
                # default, so that a server-side experiment's options keep their bytes).
                "clipping": {"enum": ["server", "client"]},
                # With clipping: client, each cluster's reported bit (cluster -> true when its
                # update was within the clip before it clipped it), as read from the hub.
                "unclipped": {"type": "object", "additionalProperties": {"type": "boolean"}},
                "adaptive": {
                    "type": "object",
                    "properties": {
                        "target_quantile": {"type": "number", "minimum": 0, "maximum": 1},
                        "learning_rate": {"type": "number", "exclusiveMinimum": 0},
                        "clipped_count_stddev": {"type": "number", "exclusiveMinimum": 0},
                    },
                    "required": ["target_quantile", "learning_rate", "clipped_count_stddev"],
                    "additionalProperties": False,
                },
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
        adaptive = None
        raw = options.get("adaptive")
        if raw is not None:
            adaptive = Adaptive(
                target_quantile=float(raw["target_quantile"]),
                learning_rate=float(raw["learning_rate"]),
                clipped_count_stddev=float(raw["clipped_count_stddev"]),
            )
            try:
                sum_noise_multiplier(
                    float(options["noise_multiplier"]), adaptive.clipped_count_stddev
                )
            except ValueError as exc:
                raise StrategyOptionsError(
                    f"strategy {self.name!r}: options.adaptive: {exc}"
                ) from None
        combiner = Clipped(
            inner=replace(inner, weighted=False),
            clipping_norm=float(options["clipping_norm"]),
            noise_multiplier=float(options["noise_multiplier"]),
            adaptive=adaptive,
            client=options.get("clipping") == "client",
            unclipped=dict(options["unclipped"]) if "unclipped" in options else None,
        )
        return Plan(strategy=self.name, options=resolved, combiner=combiner)


STRATEGY = DPFixedClipping()
