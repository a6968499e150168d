"""OCM Placement semantics, evaluated offline over an inventory of ManagedClusters.

``fl-gitops render --inventory clusters.yaml`` previews what OCM's placement controller
would decide, with no hub: read the inventory (:func:`load_inventory`), evaluate the
blueprint's Placement (:func:`evaluate_placement`) and write the PlacementDecision
pages (:func:`decision_pages`). :func:`generate_inventory` makes fleets for the
simulation, tests and benchmarks. See docs/placement.md for what matches OCM and
what differs.
"""

from fl_gitops.placement._decisions import (
    DECISION_GROUP_INDEX_LABEL,
    DECISION_GROUP_NAME_LABEL,
    MAX_DECISIONS_PER_PAGE,
    PLACEMENT_LABEL,
    decision_pages,
)
from fl_gitops.placement._evaluate import (
    CLUSTERSET_LABEL,
    DecisionGroup,
    PlacementResult,
    PrioritizerResult,
    check_placement,
    evaluate_placement,
    explain_selection,
)
from fl_gitops.placement._generate import (
    GENERATED_AS_ANNOTATION,
    MIX_CATEGORIES,
    generate_inventory,
)
from fl_gitops.placement._inventory import inventory_list, load_inventory
from fl_gitops.placement._quantity import parse_quantity

__all__ = [
    "CLUSTERSET_LABEL",
    "DECISION_GROUP_INDEX_LABEL",
    "DECISION_GROUP_NAME_LABEL",
    "GENERATED_AS_ANNOTATION",
    "MAX_DECISIONS_PER_PAGE",
    "MIX_CATEGORIES",
    "PLACEMENT_LABEL",
    "DecisionGroup",
    "PlacementResult",
    "PrioritizerResult",
    "check_placement",
    "decision_pages",
    "evaluate_placement",
    "explain_selection",
    "generate_inventory",
    "inventory_list",
    "load_inventory",
    "parse_quantity",
]
