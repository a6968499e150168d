"""Krum: keep the one update closest to its n − f − 2 nearest neighbours.

Blanchard, El Mhamdi, Guerraoui, Stainer, "Machine Learning with Adversaries: Byzantine
Tolerant Gradient Descent", NeurIPS 2017.

Each update's score is the sum of its squared L2 distances to its n − f − 2 closest other
updates; the update with the lowest score becomes the new model. Tolerates ``f`` Byzantine
clusters when n ≥ 2f + 3. Distances are accumulated tensor by tensor, chunk by chunk, so
memory is K times a chunk plus a K × K matrix. Ties go to the first cluster by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fl_gitops.aggregate.strategies.base import F64, Plan, options_object

__all__ = ["STRATEGY", "Krum", "krum_scores", "krum_select"]


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
class Krum:
    name: str = "krum"
    summary: str = "keep the update closest to its neighbours (Blanchard et al. 2017)"
    options_schema: Mapping[str, Any] = field(default_factory=lambda: krum_schema(with_m=False))

    def plan(self, options: Mapping[str, Any]) -> Plan:
        return Plan(
            strategy=self.name,
            options=dict(options),
            combine="krum",
            krum_f=int(options["f"]),
            krum_m=1,
        )


STRATEGY = Krum()
