"""Decision groups, assigned the way OCM's scheduling controller assigns them.

The group length is ``clustersPerDecisionGroup`` of the decided clusters (a number, or
a percentage rounded up; 0 or more than the total means all). Each predefined
``decisionGroups`` entry, in order, takes the decided clusters its selector matches and
that no earlier entry took, split into chunks of the group length (sorted by name);
the clusters left over follow in unnamed groups the same way. Group indexes count
from 0 across all chunks. With nothing decided there is one empty group, index 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from fl_gitops.placement._spec import DecisionGroupSpec

__all__ = ["assign_groups", "group_length"]


def group_length(per_group: int | str | None, total: int) -> int:
    """The maximum number of clusters per decision group."""
    if per_group is None:
        length = total
    elif isinstance(per_group, str):
        length = math.ceil(float(per_group[:-1]) / 100 * total)
    else:
        length = per_group
    return total if length <= 0 or length > total else length


def _chunks(names: list[str], length: int) -> list[tuple[str, ...]]:
    names.sort()
    return [tuple(names[i : i + length]) for i in range(0, len(names), max(length, 1))]


def assign_groups(
    decided: Sequence[Mapping[str, Any]],
    groups: Sequence[DecisionGroupSpec],
    per_group: int | str | None,
    claims_of: Mapping[str, Mapping[str, str]],
) -> list[tuple[str, tuple[str, ...]]]:
    """Split the decided clusters into ``(group name, cluster names)`` in index order.

    Args:
        decided: the decided ManagedCluster objects.
        groups: the predefined decision groups.
        per_group: ``clustersPerDecisionGroup`` (``None`` means 100%).
        claims_of: cluster name → its claims as a mapping.
    """
    length = group_length(per_group, len(decided))
    remaining = {c["metadata"]["name"]: c for c in decided}
    result: list[tuple[str, tuple[str, ...]]] = []
    for group in groups:
        matched = [
            name
            for name, cluster in sorted(remaining.items())
            if group.labels.matches(cluster["metadata"].get("labels") or {})
            and group.claims.matches(claims_of[name])
        ]
        for name in matched:
            del remaining[name]
        result.extend((group.name, chunk) for chunk in _chunks(matched, length))
    result.extend(("", chunk) for chunk in _chunks(list(remaining), length))
    return result or [("", ())]
