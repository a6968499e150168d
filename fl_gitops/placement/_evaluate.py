"""Evaluate a Placement over an inventory of ManagedClusters, offline and purely.

The steps are OCM's scheduler's: take the clusters of the eligible ManagedClusterSets,
keep those that some predicate selects (labels AND claims AND CEL, predicates ORed)
and whose taints are tolerated, score them with the prioritizers, sort by total score
(descending) then name, keep the first ``numberOfClusters`` (all when absent), and
split the decisions into decision groups. Nothing here reads a clock, the
environment or the network: ``now``, the current decisions and any scores from
outside the inventory are arguments, and the result does not depend on the order of
the input clusters.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from fl_gitops.errors import InputError, InventoryError
from fl_gitops.placement._cel import AddOnScores, CelPredicate, compile_cel
from fl_gitops.placement._groups import assign_groups
from fl_gitops.placement._prioritizers import score_clusters
from fl_gitops.placement._selectors import Requirement
from fl_gitops.placement._spec import PlacementSpec, PredicateSpec, parse_spec
from fl_gitops.placement._taints import untolerated_taint

__all__ = [
    "CLUSTERSET_LABEL",
    "DecisionGroup",
    "PlacementResult",
    "PrioritizerResult",
    "check_placement",
    "evaluate_placement",
    "explain_selection",
]

CLUSTERSET_LABEL = "cluster.open-cluster-management.io/clusterset"
DEFAULT_CLUSTERSET = "default"  # OCM puts a cluster without a set label in "default"
GLOBAL_CLUSTERSET = "global"  # OCM's "global" set selects every cluster

ALL_DECISIONS_SCHEDULED = "AllDecisionsScheduled"

# The filtering steps in the scheduler's order, as PlacementResult.filtered names them.
FILTER_STEPS = ("cluster sets", "being deleted", "predicates", "taints", "numberOfClusters")


@dataclass(frozen=True)
class DecisionGroup:
    """One decision group: its index (from 0), name ("" when unnamed) and clusters."""

    index: int
    name: str
    clusters: tuple[str, ...]


@dataclass(frozen=True)
class PrioritizerResult:
    """What one prioritizer gave each feasible cluster, and its weight."""

    name: str
    weight: int
    scores: Mapping[str, int]


@dataclass(frozen=True)
class PlacementResult:
    """The outcome of evaluating a Placement.

    Attributes:
        placement_name: the Placement's name.
        namespace: the Placement's namespace.
        decided: the selected cluster names, sorted by name.
        groups: the decision groups in index order; their clusters are in decision
            order (by name, or by score then name with ``sortBy: Score``).
        feasible: names that passed the cluster-set, predicate and taint filters,
            sorted by name.
        ranked: the feasible names in the scheduler's order (score desc, then name).
        scores: total prioritizer score per feasible cluster.
        prioritizers: per-prioritizer weights and scores.
        available: names in the eligible cluster sets, sorted by name.
        excluded: name → why the cluster was filtered out.
        filtered: step → how many clusters that step removed, for every step in
            order ("cluster sets", "being deleted", "predicates", "taints",
            "numberOfClusters"), so that an empty decision can say which step
            emptied it.
        unmatched: requirement → how many clusters the predicates step removed
            on it (each predicate's first unmet requirement, as "label KEY OP
            (VALUES)" from the spec, or "celExpressions"), to name the predicate.
        unscheduled: ``numberOfClusters`` minus the decided count (0 when absent).
        reason: the reason OCM would give on ``PlacementSatisfied``.
    """

    placement_name: str
    namespace: str
    decided: tuple[str, ...]
    groups: tuple[DecisionGroup, ...]
    feasible: tuple[str, ...]
    ranked: tuple[str, ...]
    scores: Mapping[str, int]
    prioritizers: tuple[PrioritizerResult, ...]
    available: tuple[str, ...]
    excluded: Mapping[str, str]
    unscheduled: int
    reason: str
    filtered: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    unmatched: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def satisfied(self) -> bool:
        """True when every wanted decision was scheduled (``PlacementSatisfied``)."""
        return self.reason == ALL_DECISIONS_SCHEDULED


def _describe(kind: str, requirement: Requirement) -> str:
    values = ", ".join(sorted(requirement.values))
    suffix = f" ({values})" if values else ""
    return f"{kind} {requirement.key} {requirement.operator}{suffix}"


class _Predicate:
    """A predicate with its CEL compiled, able to say why a cluster fails it."""

    def __init__(self, spec: PredicateSpec, cel: CelPredicate | None) -> None:
        self.spec = spec
        self.cel = cel

    def failure(
        self, cluster: Mapping[str, Any], labels: Mapping[str, str], claims: Mapping[str, str]
    ) -> str | None:
        for requirement in self.spec.labels.requirements:
            if not requirement.matches(labels):
                return _describe("label", requirement)
        for requirement in self.spec.claims.requirements:
            if not requirement.matches(claims):
                return _describe("claim", requirement)
        if self.cel is not None and not self.cel.matches(cluster):
            return "celExpressions are not all true"
        return None


def _claims(cluster: Mapping[str, Any]) -> dict[str, str]:
    status = cluster.get("status") or {}
    return {c.get("name"): c.get("value") for c in status.get("clusterClaims") or ()}


def _sorted_clusters(clusters: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    by_name: dict[str, Mapping[str, Any]] = {}
    for index, cluster in enumerate(clusters):
        metadata = cluster.get("metadata") if isinstance(cluster, Mapping) else None
        name = metadata.get("name") if isinstance(metadata, Mapping) else None
        if not isinstance(name, str) or not name:
            raise InventoryError(f"clusters[{index}]: metadata.name: expected a non-empty string")
        if name in by_name:
            raise InventoryError(f"clusters[{index}]: cluster {name!r} appears more than once")
        by_name[name] = cluster
    return [by_name[n] for n in sorted(by_name)]


def _eligible_sets(
    spec: PlacementSpec, bound: Sequence[str] | None
) -> tuple[frozenset[str] | None, str | None]:
    """The eligible cluster sets (``None`` = every set) and a failure reason, if any."""
    if bound is None:
        return (frozenset(spec.cluster_sets) if spec.cluster_sets else None), None
    if not bound:
        return frozenset(), "NoManagedClusterSetBindings"
    eligible = frozenset(bound)
    if spec.cluster_sets:
        eligible &= frozenset(spec.cluster_sets)
    return eligible, (None if eligible else "NoIntersection")


def _compile_predicates(checked: PlacementSpec, scores_in: AddOnScores) -> list[_Predicate]:
    return [
        _Predicate(
            p,
            compile_cel(
                [
                    (
                        f"spec.predicates[{p.index}].requiredClusterSelector.celSelector"
                        f".celExpressions[{i}]",
                        expression,
                    )
                    for i, expression in enumerate(p.cel_expressions)
                ],
                scores_in,
            )
            if p.cel_expressions
            else None,
        )
        for p in checked.predicates
    ]


def check_placement(spec: Mapping[str, Any] | None) -> None:
    """Run every check :func:`evaluate_placement` makes of the spec, with no inventory.

    So that `fl-gitops validate` refuses what `render` would (a bad operator, ``In``
    with no values, spreadPolicy, a CEL expression that does not compile) before any
    cluster is looked at.

    Raises:
        InputError: the first problem, its message starting with the field path
            (``spec.predicates[0]...: ``).
    """
    _compile_predicates(parse_spec(spec), {})


def evaluate_placement(
    spec: Mapping[str, Any] | None,
    clusters: Iterable[Mapping[str, Any]],
    *,
    placement_name: str,
    namespace: str,
    now: datetime,
    previous: Iterable[str] = (),
    bound_clustersets: Sequence[str] | None = None,
    other_decisions: Mapping[str, int] | None = None,
    addon_scores: AddOnScores | None = None,
) -> PlacementResult:
    """Evaluate a Placement spec against ManagedClusters with OCM's semantics.

    Args:
        spec: the Placement's ``spec`` (a blueprint's ``placement``).
        clusters: ManagedCluster objects (as :func:`load_inventory` returns them).
        placement_name: the Placement's name.
        namespace: the Placement's namespace.
        now: the evaluation time, for ``tolerationSeconds`` (naive means UTC).
        previous: cluster names in the Placement's current decisions (Steady
            prioritizer, ``NoSelectIfNew`` taints).
        bound_clustersets: the ManagedClusterSets bound to the namespace; ``None``
            means every set is bound.
        other_decisions: cluster name → how many other Placements' decisions name it
            (Balance prioritizer); ``None`` means none, so Balance scores all equal.
        addon_scores: cluster name → AddOnPlacementScore name → score name → value,
            for AddOn prioritizers and CEL ``scores()``; absent scores count as 0.

    Returns:
        The decisions, decision groups, feasible clusters and scores.

    Raises:
        InputError: the spec is invalid or uses something offline evaluation does not
            support (spreadPolicy, an unknown CEL function).
        InventoryError: a cluster has no name, appears twice, or has an unreadable
            value the evaluation needs.
    """
    if not isinstance(now, datetime):
        raise InputError(f"now: expected a datetime, got {type(now).__name__}")
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    checked = parse_spec(spec)
    scores_in = addon_scores or {}
    predicates = _compile_predicates(checked, scores_in)
    before = frozenset(previous)
    ordered = _sorted_clusters(clusters)
    eligible, reason = _eligible_sets(checked, bound_clustersets)

    available: list[Mapping[str, Any]] = []
    feasible: list[Mapping[str, Any]] = []
    claims_of: dict[str, dict[str, str]] = {}
    excluded: dict[str, str] = {}
    filtered = dict.fromkeys(FILTER_STEPS, 0)
    unmatched: dict[str, int] = {}
    for cluster in ordered:
        metadata = cluster["metadata"]
        name = metadata["name"]
        labels = metadata.get("labels") or {}
        if eligible is not None and GLOBAL_CLUSTERSET not in eligible:
            cluster_set = labels.get(CLUSTERSET_LABEL) or DEFAULT_CLUSTERSET
            if cluster_set not in eligible:
                excluded[name] = f"cluster set {cluster_set!r} is not eligible"
                filtered["cluster sets"] += 1
                continue
        if metadata.get("deletionTimestamp"):
            excluded[name] = "being deleted"
            filtered["being deleted"] += 1
            continue
        available.append(cluster)
        claims = claims_of[name] = _claims(cluster)
        if predicates:
            failures = [p.failure(cluster, labels, claims) for p in predicates]
            if all(failures):
                excluded[name] = (
                    f"predicate does not match: {failures[0]}"
                    if len(failures) == 1
                    else f"none of the {len(failures)} predicates matches"
                )
                filtered["predicates"] += 1
                for failure in failures:
                    unmatched[str(failure)] = unmatched.get(str(failure), 0) + 1
                continue
        taint = untolerated_taint(
            (cluster.get("spec") or {}).get("taints") or (),
            checked.tolerations,
            in_previous=name in before,
            now=now,
        )
        if taint is not None:
            value = f"={taint.get('value')}" if taint.get("value") else ""
            excluded[name] = (
                f"taint {taint.get('key')}{value}:{taint.get('effect')} is not tolerated"
            )
            filtered["taints"] += 1
            continue
        feasible.append(cluster)

    totals, details = score_clusters(
        feasible,
        checked.prioritizers,
        previous=before,
        other_decisions=other_decisions or {},
        addon_scores=scores_in,
    )
    ranked = sorted(totals, key=lambda n: (-totals[n], n))
    wanted = checked.number_of_clusters
    chosen = ranked if wanted is None else ranked[:wanted]
    chosen_set = frozenset(chosen)
    decided = [c for c in feasible if c["metadata"]["name"] in chosen_set]
    grouped = assign_groups(decided, checked.decision_groups, checked.clusters_per_group, claims_of)
    if checked.sort_by == "Score":
        grouped = [(g, tuple(sorted(m, key=lambda n: (-totals[n], n)))) for g, m in grouped]
    unscheduled = 0 if wanted is None else wanted - len(chosen)
    filtered["numberOfClusters"] = len(feasible) - len(chosen)

    if reason is None:
        if not available:
            reason = "AllManagedClusterSetsEmpty"
        elif not chosen:  # OCM compares the number of decisions here, not of feasible
            reason = "NoManagedClusterMatched"
        elif unscheduled > 0:
            reason = "NotAllDecisionsScheduled"
        else:
            reason = ALL_DECISIONS_SCHEDULED
    return PlacementResult(
        placement_name=placement_name,
        namespace=namespace,
        decided=tuple(sorted(chosen)),
        groups=tuple(DecisionGroup(i, g, m) for i, (g, m) in enumerate(grouped)),
        feasible=tuple(c["metadata"]["name"] for c in feasible),
        ranked=tuple(ranked),
        scores=MappingProxyType(totals),
        prioritizers=tuple(
            PrioritizerResult(n, w, MappingProxyType(dict(sorted(s.items()))))
            for n, w, s in details
        ),
        available=tuple(c["metadata"]["name"] for c in available),
        excluded=MappingProxyType(excluded),
        unscheduled=unscheduled,
        reason=reason,
        filtered=MappingProxyType(filtered),
        unmatched=MappingProxyType(dict(sorted(unmatched.items()))),
    )


def explain_selection(
    filtered: Mapping[str, int], *, inventory: int, unmatched: Mapping[str, int] | None = None
) -> str:
    """Say how many clusters each step removed, for an error about a short decision.

    Only counts and the Placement's own words are given (field names, and the
    requirement most often unmet, written from the spec): the inventory's cluster
    names, labels and taints are a cluster's data and stay out of messages.

    Args:
        filtered: step → clusters removed (:attr:`PlacementResult.filtered`).
        inventory: how many ManagedClusters the inventory held.
        unmatched: :attr:`PlacementResult.unmatched`, to name the requirement.

    Returns:
        For example "the inventory holds 12 clusters; predicates removed 10,
        taints removed 2".
    """
    if inventory == 0:
        return "the inventory holds no ManagedCluster"
    steps = [f"{step} removed {n}" for step, n in filtered.items() if n]
    if unmatched and filtered.get("predicates"):
        # The requirement most clusters missed; ties broken by its text, for same bytes.
        worst, count = min(unmatched.items(), key=lambda item: (-item[1], item[0]))
        at = steps.index(f"predicates removed {filtered['predicates']}")
        steps[at] += f" (most often unmet, by {count}: {worst})"
    held = f"the inventory holds {inventory} cluster{'s' if inventory != 1 else ''}"
    return f"{held}; {', '.join(steps)}" if steps else held
