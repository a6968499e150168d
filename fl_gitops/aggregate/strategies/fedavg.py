"""FedAvg: the new global model is the mean of the clusters' models, weighted by examples.

McMahan, Moore, Ramage, Hampson, Agüera y Arcas, "Communication-Efficient Learning of Deep
Networks from Decentralized Data", AISTATS 2017 (arXiv:1602.05629).

The default, and the right first choice when clusters are honest and their data not too
different. No options.

This module owns the weighted mean every mean-based strategy combines with:
:class:`WeightedMean` (optionally followed by a server :class:`~.base.Step`, which is how
FedAvgM, FedAdam, FedYogi and FedAdagrad differ) and its :class:`MeanChoice`, which Krum
and the DP wrapper reuse for the updates they keep or clip. The sum is Σ nₖ·wₖ in float64 in
cluster order, divided once by Σ nₖ and rounded once to the model's dtype.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fl_gitops.aggregate.strategies._arith import weighted_sum, write_tensor
from fl_gitops.aggregate.strategies.base import F64, Block, Plan, Pool, Step, options_object

__all__ = ["STRATEGY", "FedAvg", "MeanChoice", "WeightedMean"]


@dataclass(frozen=True)
class MeanChoice:
    """Σ wᵢ·ũᵢ / Σ wᵢ over the kept updates, then noise and a server step, if any.

    Attributes:
        keep, scales, weights: as :class:`~.base.Choice`.
        divisor: Σ wᵢ over the kept updates.
        step: the server step after the mean (None: the mean is the new model).
        noise_std: the standard deviation of the Gaussian noise added to the mean.
        rng: draws that noise, tensor by tensor in name order (None: no noise).
        record: what goes into the round record.
    """

    keep: tuple[int, ...]
    scales: tuple[float, ...]
    weights: tuple[float, ...]
    divisor: float
    step: Step | None = None
    noise_std: float = 0.0
    rng: np.random.Generator | None = None
    record: Mapping[str, Any] = field(default_factory=dict)
    linear: bool = True

    @property
    def shares(self) -> tuple[float, ...]:
        return tuple(w / self.divisor for w in self.weights)

    def combine(self, block: Block) -> F64:
        clipped = any(s != 1.0 for s in self.scales)
        return weighted_sum(
            block.values, self.weights, self.scales, block.base() if clipped else None
        )

    def finish(
        self,
        name: str,
        values: F64,
        out: np.ndarray[Any, Any],
        floating: bool,
        read_base: Callable[[], F64],
        state: Mapping[str, F64 | None],
    ) -> dict[str, F64]:
        divisor = self.divisor
        if floating and self.rng is None and self.step is None and divisor != 1.0:
            # Divide straight into the output: the same float64 quotient, rounded once.
            np.divide(values, divisor, out=out)
            return {}
        new_state: dict[str, F64] = {}
        if divisor != 1.0:
            values /= divisor
        if self.rng is not None and floating:
            values += self.rng.normal(0.0, self.noise_std, size=values.shape)
        if self.step is not None and floating:
            values, new_state = self.step(read_base(), values, state)
        write_tensor(out, values)
        return new_state


@dataclass(frozen=True)
class WeightedMean:
    """Every valid update, weighted by ``num_examples`` (or equally), then ``step``."""

    weighted: bool = True
    step: Step | None = None
    state_names: tuple[str, ...] = ()
    folds: bool = True
    needs_norms: bool = False
    partials: Callable[[Block], F64] | None = None

    def require(self, n: int) -> None:
        del n

    def choose(self, pool: Pool) -> MeanChoice:
        n = len(pool.clusters)
        return MeanChoice(
            keep=tuple(range(n)),
            scales=(1.0,) * n,
            weights=pool.weights,
            divisor=sum(pool.weights),
            step=self.step,
        )


@dataclass(frozen=True)
class FedAvg:
    name: str = "fedavg"
    summary: str = "mean of the updates weighted by num_examples (McMahan et al. 2017)"
    options_schema: Mapping[str, Any] = field(default_factory=options_object)

    def plan(self, options: Mapping[str, Any]) -> Plan:
        return Plan(strategy=self.name, options=dict(options), combiner=WeightedMean())


STRATEGY = FedAvg()
