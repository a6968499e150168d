"""Krum: keep the one update closest to its n − f − 2 nearest neighbours.

Blanchard, El Mhamdi, Guerraoui, Stainer, "Machine Learning with Adversaries: Byzantine
Tolerant Gradient Descent", NeurIPS 2017.

Each update's score is the sum of its squared L2 distances to its n − f − 2 closest other
updates; the update with the lowest score becomes the new model. Tolerates ``f`` Byzantine
clusters when n ≥ 2f + 3. Ties go to the first cluster by name.

The squared distances are this strategy's partial statistics: :meth:`KrumCombiner.distances`
computes one slice's part (a K × K upper triangle) from the K updates side by side, and the
engine sums the parts over every slice in model order, so memory is K times a slice plus a
K × K matrix, and a sharded aggregation can sum its shards' parts the same way. The kept
updates are then averaged as FedAvg does (:class:`~.fedavg.MeanChoice`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fl_gitops.aggregate.strategies.base import (
    F64,
    Block,
    Plan,
    Pool,
    TooFewUpdates,
    options_object,
)
from fl_gitops.aggregate.strategies.fedavg import MeanChoice

__all__ = ["STRATEGY", "Krum", "KrumCombiner", "krum_scores", "krum_select"]


def krum_scores(distances: F64, f: int) -> F64:
    """Each row's sum of its n − f − 2 smallest squared distances to the other rows.

    Args:
        distances: n x n symmetric matrix of squared L2 distances.
        f: the number of Byzantine updates tolerated.

    Raises:
        ValueError: n < 2f + 3.
    """
    n = distances.shape[0]
    closest = n - f - 2
    if closest < 1:
        raise ValueError(f"Krum with f={f} needs at least {2 * f + 3} updates, got {n}")
    scores = np.empty(n)
    for i in range(n):
        others = np.delete(distances[i], i)
        scores[i] = np.sum(np.sort(others)[:closest])
    return scores


def krum_select(distances: F64, f: int, m: int) -> list[int]:
    """The indices of the ``m`` lowest scores, stable (ties to the lower index)."""
    scores = krum_scores(distances, f)
    return sorted(int(i) for i in np.argsort(scores, kind="stable")[:m])


def krum_schema(*, with_m: bool) -> dict[str, Any]:
    props: dict[str, Any] = {
        "f": {
            "type": "integer",
            "minimum": 0,
            "default": 1,
            "description": "the number of Byzantine clusters tolerated (needs n >= 2f + 3)",
        }
    }
    if with_m:
        props["m"] = {
            "type": ["integer", "null"],
            "minimum": 1,
            "default": None,
            "description": "how many updates to keep and average (default: n - f)",
        }
    return options_object(props)


@dataclass(frozen=True)
class KrumCombiner:
    """Score every valid update by Krum, keep the ``m`` best, average them by examples.

    Attributes:
        strategy: the strategy's name, for messages.
        f: the number of Byzantine clusters tolerated.
        m: how many updates to keep (None: n − f).
    """

    strategy: str
    f: int
    m: int | None = 1
    weighted: bool = True
    folds: bool = False
    needs_norms: bool = False
    state_names: tuple[str, ...] = ()

    @property
    def partials(self) -> Callable[[Block], F64]:
        return self.distances

    def distances(self, block: Block) -> F64:
        """One slice's part of the pairwise squared L2 distances (upper triangle).

        From the Gram matrix of the updates taken relative to the first one,
        ``‖dᵢ‖² + ‖dⱼ‖² − 2 dᵢ·dⱼ``: one pass over the stack and one BLAS product, about 5x
        faster than a difference per pair, and good to about 1e-13 relative (the updates
        are centred, so the terms do not cancel much; equal updates still give exactly 0,
        as their products are the same floats). A BLAS product may differ in its last bits
        on another CPU, as the distance bound's does: a score, not a model's bytes.
        """
        # Centred in place (``Combiner.partials`` may overwrite the block), against a copy
        # of the first row: ``stack -= stack[0]`` would make numpy copy the whole stack (the
        # operands overlap), as ``stack - stack[0]`` allocates one. The same floats.
        centred = block.values
        centred -= centred[0].copy()
        gram = centred @ centred.T
        squares = np.diag(gram)
        part: F64 = squares[:, None] + squares[None, :]
        part -= 2.0 * gram
        np.maximum(part, 0.0, out=part)
        return np.triu(part, 1)

    def _keeps(self, n: int) -> int:
        return self.m if self.m is not None else n - self.f

    def require(self, n: int) -> None:
        f = self.f
        if n < 2 * f + 3:
            raise TooFewUpdates(
                2 * f + 3,
                f"{self.strategy} with f={f} needs at least {2 * f + 3} valid updates, got {n}",
            )
        m = self._keeps(n)
        if m > n:
            raise TooFewUpdates(m, f"{self.strategy} keeps m={m} updates, only {n} are valid")

    def choose(self, pool: Pool) -> MeanChoice:
        assert pool.stats is not None
        n = len(pool.clusters)
        self.require(n)
        m = self._keeps(n)
        dist = pool.stats + pool.stats.T
        scores = krum_scores(dist, self.f)
        chosen = tuple(krum_select(dist, self.f, m))
        weights = tuple(pool.weights[i] for i in chosen)
        record = {
            "krum": {
                "f": self.f,
                "m": m,
                "scores": {c: float(s) for c, s in zip(pool.clusters, scores, strict=True)},
                "selected": [pool.clusters[i] for i in chosen],
            }
        }
        return MeanChoice(
            keep=chosen,
            scales=(1.0,) * len(chosen),
            weights=weights,
            divisor=sum(weights),
            record=record,
        )


@dataclass(frozen=True)
class Krum:
    name: str = "krum"
    summary: str = "keep the update closest to its neighbours (Blanchard et al. 2017)"
    options_schema: Mapping[str, Any] = field(default_factory=lambda: krum_schema(with_m=False))

    def plan(self, options: Mapping[str, Any]) -> Plan:
        return Plan(
            strategy=self.name,
            options=dict(options),
            combiner=KrumCombiner(self.name, f=int(options["f"]), m=1),
        )


STRATEGY = Krum()
