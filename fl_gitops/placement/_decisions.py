"""PlacementDecision objects, paged and labelled as OCM's controller writes them.

OCM writes at most 100 decisions per PlacementDecision, one series per decision group,
and numbers the objects ``<placement>-decision-<N>`` from 1 across all groups. Each
carries the placement, decision-group-index and decision-group-name labels; the
decisions themselves live in ``status.decisions`` (``clusterName`` and an empty
``reason``). A Placement that selects nothing still gets one PlacementDecision, empty.
"""

from __future__ import annotations

from typing import Any

from fl_gitops.placement._evaluate import DecisionGroup, PlacementResult

__all__ = [
    "DECISION_GROUP_INDEX_LABEL",
    "DECISION_GROUP_NAME_LABEL",
    "MAX_DECISIONS_PER_PAGE",
    "PLACEMENT_LABEL",
    "decision_pages",
]

PLACEMENT_LABEL = "cluster.open-cluster-management.io/placement"
DECISION_GROUP_INDEX_LABEL = "cluster.open-cluster-management.io/decision-group-index"
DECISION_GROUP_NAME_LABEL = "cluster.open-cluster-management.io/decision-group-name"
MAX_DECISIONS_PER_PAGE = 100


def decision_pages(
    result: PlacementResult, *, placement_name: str, namespace: str
) -> list[dict[str, Any]]:
    """Build the PlacementDecision objects for a placement result.

    Args:
        result: what :func:`evaluate_placement` returned.
        placement_name: the Placement's name (the name prefix and label value).
        namespace: the Placement's namespace.

    Returns:
        ``cluster.open-cluster-management.io/v1beta1`` PlacementDecision objects in
        name order (``-decision-1``, ``-decision-2``, ...). No ``ownerReferences``:
        the Placement's uid is not known offline.
    """
    pages: list[dict[str, Any]] = []
    groups = result.groups or (DecisionGroup(0, "", ()),)
    for group in groups:
        names = list(group.clusters)
        chunks = [
            names[i : i + MAX_DECISIONS_PER_PAGE]
            for i in range(0, len(names), MAX_DECISIONS_PER_PAGE)
        ] or [[]]
        for chunk in chunks:
            pages.append(
                {
                    "apiVersion": "cluster.open-cluster-management.io/v1beta1",
                    "kind": "PlacementDecision",
                    "metadata": {
                        "name": f"{placement_name}-decision-{len(pages) + 1}",
                        "namespace": namespace,
                        "labels": {
                            PLACEMENT_LABEL: placement_name,
                            DECISION_GROUP_INDEX_LABEL: str(group.index),
                            DECISION_GROUP_NAME_LABEL: group.name,
                        },
                    },
                    "status": {"decisions": [{"clusterName": n, "reason": ""} for n in chunk]},
                }
            )
    return pages
