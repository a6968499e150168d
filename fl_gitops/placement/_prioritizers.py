"""OCM's prioritizers: each scores the feasible clusters in [-100, 100].

- Steady: 100 for a cluster in this Placement's current decisions, else 0.
- Balance: 100 for a cluster no other Placement has chosen; otherwise
  ``2 * trunc(100 * (0.5 - count / max_count))`` where count is the number of other
  Placements' decisions naming the cluster. Offline, with no other decisions given,
  every cluster scores 100.
- ResourceAllocatableCPU / ResourceAllocatableMemory: the allocatable amount scaled
  between the fleet's minimum (-100) and maximum (100), truncated; all equal gives
  100; a cluster without both allocatable and capacity for the resource is not scored.
- AddOn/<resource>/<score>: the value of that AddOnPlacementScore item, 0 if absent.

The total of a cluster is the sum of ``weight * score`` over prioritizers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from fl_gitops.errors import InventoryError
from fl_gitops.placement._quantity import parse_quantity
from fl_gitops.placement._spec import PrioritizerSpec

__all__ = ["MAX_SCORE", "score_clusters"]

MAX_SCORE = 100
_RESOURCES = {"ResourceAllocatableCPU": "cpu", "ResourceAllocatableMemory": "memory"}


def _trunc(value: float) -> int:
    return math.trunc(value)  # Go's int64(float64) conversion truncates toward zero


def _steady(names: Sequence[str], previous: frozenset[str]) -> dict[str, int]:
    return {n: MAX_SCORE if n in previous else 0 for n in names}


def _balance(names: Sequence[str], others: Mapping[str, int]) -> dict[str, int]:
    max_count = max((c for c in others.values() if c > 0), default=0)
    scores = {}
    for name in names:
        count = others.get(name, 0)
        if count > 0:
            scores[name] = 2 * _trunc(MAX_SCORE * (0.5 - count / max_count))
        else:
            scores[name] = MAX_SCORE
    return scores


def _allocatable(cluster: Mapping[str, Any], resource: str) -> float | None:
    status = cluster.get("status") or {}
    allocatable = (status.get("allocatable") or {}).get(resource)
    capacity = (status.get("capacity") or {}).get(resource)
    if allocatable is None or capacity is None:
        return None
    try:
        return float(parse_quantity(allocatable))
    except ValueError as error:
        name = cluster["metadata"]["name"]
        raise InventoryError(f"cluster {name}: status.allocatable.{resource}: {error}") from error


def _resource(clusters: Sequence[Mapping[str, Any]], resource: str) -> dict[str, int]:
    amounts = {}
    for cluster in clusters:
        amount = _allocatable(cluster, resource)
        if amount is not None:
            amounts[cluster["metadata"]["name"]] = amount
    if not amounts:
        return {}
    low, high = min(amounts.values()), max(amounts.values())
    if high == low:
        return dict.fromkeys(amounts, MAX_SCORE)
    return {n: _trunc(((a - low) / (high - low) - 0.5) * 2.0 * 100.0) for n, a in amounts.items()}


def _addon(
    names: Sequence[str], coordinate: tuple[str, str], addon_scores: Mapping[str, Any]
) -> dict[str, int]:
    resource, score = coordinate
    scores = {}
    for name in names:
        value = ((addon_scores.get(name) or {}).get(resource) or {}).get(score, 0)
        if isinstance(value, bool) or not isinstance(value, int):
            raise InventoryError(
                f"AddOnPlacementScore {resource}/{score} of cluster {name}: expected an "
                f"integer, got {value!r}"
            )
        scores[name] = value
    return scores


def score_clusters(
    clusters: Sequence[Mapping[str, Any]],
    prioritizers: Sequence[PrioritizerSpec],
    *,
    previous: frozenset[str],
    other_decisions: Mapping[str, int],
    addon_scores: Mapping[str, Any],
) -> tuple[dict[str, int], tuple[tuple[str, int, dict[str, int]], ...]]:
    """Score feasible clusters.

    Args:
        clusters: the feasible clusters.
        prioritizers: the enabled prioritizers (weight not 0).
        previous: names in this Placement's current decisions (Steady).
        other_decisions: cluster name → number of other Placements' decisions (Balance).
        addon_scores: cluster → AddOnPlacementScore name → score name → value.

    Returns:
        ``(total per cluster, ((prioritizer name, weight, scores), ...))``.

    Raises:
        InventoryError: an allocatable quantity or an AddOn score cannot be read.
    """
    names = [c["metadata"]["name"] for c in clusters]
    totals = dict.fromkeys(names, 0)
    details = []
    for prioritizer in prioritizers:
        if prioritizer.name == "Steady":
            scores = _steady(names, previous)
        elif prioritizer.name == "Balance":
            scores = _balance(names, other_decisions)
        elif prioritizer.name in _RESOURCES:
            scores = _resource(clusters, _RESOURCES[prioritizer.name])
        else:
            assert prioritizer.addon is not None
            scores = _addon(names, prioritizer.addon, addon_scores)
        for name, score in scores.items():
            totals[name] += prioritizer.weight * score
        details.append((prioritizer.name, prioritizer.weight, scores))
    return totals, tuple(details)
