"""The Placement spec, checked once and turned into frozen values.

Evaluation over thousands of clusters should not re-read a nested dict; and a bad
spec should fail before any cluster is looked at, with the field path in the message
(``spec.predicates[0].requiredClusterSelector...``), the way OCM marks a Placement
``PlacementMisconfigured``. Fields follow the v1beta1 Placement CRD; unknown fields
are rejected so that a misspelt key does not silently select every cluster.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from fl_gitops.errors import InputError
from fl_gitops.placement._selectors import Selector, case_hint, parse_selector

__all__ = [
    "BUILTIN_PRIORITIZERS",
    "DecisionGroupSpec",
    "PlacementSpec",
    "PredicateSpec",
    "PrioritizerSpec",
    "TolerationSpec",
    "parse_spec",
]

BUILTIN_PRIORITIZERS = (
    "Balance",
    "Steady",
    "ResourceAllocatableCPU",
    "ResourceAllocatableMemory",
)
TAINT_EFFECTS = ("NoSelect", "PreferNoSelect", "NoSelectIfNew")

_SPEC_FIELDS = (
    "clusterSets",
    "numberOfClusters",
    "predicates",
    "prioritizerPolicy",
    "tolerations",
    "decisionStrategy",
    "spreadPolicy",
    "sortBy",
    "scoreRateLimit",
)
_GROUP_NAME = re.compile(r"^[a-zA-Z0-9][-A-Za-z0-9_.]{0,61}[a-zA-Z0-9]$")
_PERCENT = re.compile(r"^(100|[1-9][0-9]?)%$")


@dataclass(frozen=True)
class PredicateSpec:
    """One ``requiredClusterSelector``: label AND claim AND every CEL expression."""

    index: int
    labels: Selector
    claims: Selector
    cel_expressions: tuple[str, ...]


@dataclass(frozen=True)
class TolerationSpec:
    """A toleration; empty key or effect match any key or effect."""

    key: str
    operator: str
    value: str
    effect: str
    seconds: int | None


@dataclass(frozen=True)
class PrioritizerSpec:
    """A prioritizer coordinate and its weight (-10..10)."""

    name: str  # "Balance", ..., or "AddOn/<resourceName>/<scoreName>"
    weight: int
    addon: tuple[str, str] | None = None  # (resourceName, scoreName) for AddOn scores


@dataclass(frozen=True)
class DecisionGroupSpec:
    """A predefined decision group: a name and a label/claim selector."""

    name: str
    labels: Selector
    claims: Selector


@dataclass(frozen=True)
class PlacementSpec:
    """A checked Placement spec."""

    cluster_sets: tuple[str, ...]
    number_of_clusters: int | None
    predicates: tuple[PredicateSpec, ...]
    tolerations: tuple[TolerationSpec, ...]
    prioritizers: tuple[PrioritizerSpec, ...]
    decision_groups: tuple[DecisionGroupSpec, ...]
    clusters_per_group: int | str | None
    sort_by: str


def _map(obj: object, path: str, fields: tuple[str, ...]) -> Mapping[str, object]:
    if obj is None:
        return {}
    if not isinstance(obj, Mapping):
        raise InputError(f"{path}: expected a mapping, got {type(obj).__name__}")
    for key in obj:
        if key not in fields:
            raise InputError(f"{path}: unknown field {key!r}; expected one of {', '.join(fields)}")
    return obj


def _list(obj: object, path: str) -> list[object]:
    if obj is None:
        return []
    if not isinstance(obj, list):
        raise InputError(f"{path}: expected a list, got {type(obj).__name__}")
    return obj


def _str(obj: object, path: str, default: str = "") -> str:
    if obj is None:
        return default
    if not isinstance(obj, str):
        raise InputError(f"{path}: expected a string, got {type(obj).__name__} {obj!r}")
    return obj


def _int(obj: object, path: str) -> int:
    if isinstance(obj, bool) or not isinstance(obj, int):
        raise InputError(f"{path}: expected an integer, got {type(obj).__name__} {obj!r}")
    return obj


def _predicates(raw: object) -> tuple[PredicateSpec, ...]:
    predicates = []
    for index, item in enumerate(_list(raw, "spec.predicates")):
        path = f"spec.predicates[{index}]"
        predicate = _map(item, path, ("requiredClusterSelector",))
        path += ".requiredClusterSelector"
        selector = _map(
            predicate.get("requiredClusterSelector"),
            path,
            ("labelSelector", "claimSelector", "celSelector"),
        )
        cel = _map(selector.get("celSelector"), f"{path}.celSelector", ("celExpressions",))
        expressions = tuple(
            _str(e, f"{path}.celSelector.celExpressions[{i}]")
            for i, e in enumerate(_list(cel.get("celExpressions"), f"{path}.celSelector"))
        )
        predicates.append(
            PredicateSpec(
                index=index,
                labels=parse_selector(
                    selector.get("labelSelector"), f"{path}.labelSelector", allow_match_labels=True
                ),
                claims=parse_selector(
                    selector.get("claimSelector"), f"{path}.claimSelector", allow_match_labels=False
                ),
                cel_expressions=expressions,
            )
        )
    return tuple(predicates)


def _tolerations(raw: object) -> tuple[TolerationSpec, ...]:
    tolerations = []
    for index, item in enumerate(_list(raw, "spec.tolerations")):
        path = f"spec.tolerations[{index}]"
        tol = _map(item, path, ("key", "operator", "value", "effect", "tolerationSeconds"))
        key = _str(tol.get("key"), f"{path}.key")
        operator = _str(tol.get("operator"), f"{path}.operator", "Equal") or "Equal"
        value = _str(tol.get("value"), f"{path}.value")
        effect = _str(tol.get("effect"), f"{path}.effect")
        if operator not in ("Equal", "Exists"):
            raise InputError(
                f"{path}.operator: {operator!r} is not valid; expected Equal or Exists"
                + case_hint(operator, ("Equal", "Exists"))
            )
        if effect and effect not in TAINT_EFFECTS:
            raise InputError(
                f"{path}.effect: {effect!r} is not valid; expected one of "
                + ", ".join(TAINT_EFFECTS)
            )
        if not key and operator != "Exists":
            raise InputError(f"{path}: if the key is empty, operator must be Exists")
        if operator == "Exists" and value:
            raise InputError(f"{path}: if the operator is Exists, the value should be empty")
        seconds = tol.get("tolerationSeconds")
        tolerations.append(
            TolerationSpec(
                key=key,
                operator=operator,
                value=value,
                effect=effect,
                seconds=None if seconds is None else _int(seconds, f"{path}.tolerationSeconds"),
            )
        )
    return tuple(tolerations)


def _prioritizers(raw: object) -> tuple[PrioritizerSpec, ...]:
    policy = _map(raw, "spec.prioritizerPolicy", ("mode", "configurations"))
    mode = _str(policy.get("mode"), "spec.prioritizerPolicy.mode") or "Additive"
    if mode not in ("Additive", "Exact"):
        raise InputError(
            f"spec.prioritizerPolicy.mode: {mode!r} is not valid; expected Additive or Exact"
        )
    # OCM keys weights by score coordinate; a later configuration overrides an earlier one.
    weights: dict[str, PrioritizerSpec] = {}
    if mode == "Additive":
        weights = {n: PrioritizerSpec(n, 1) for n in ("Balance", "Steady")}
    configurations = _list(policy.get("configurations"), "spec.prioritizerPolicy.configurations")
    for index, item in enumerate(configurations):
        path = f"spec.prioritizerPolicy.configurations[{index}]"
        config = _map(item, path, ("scoreCoordinate", "weight"))
        if config.get("scoreCoordinate") is None:
            raise InputError(f"{path}.scoreCoordinate: this field is required")
        coord = _map(
            config["scoreCoordinate"], f"{path}.scoreCoordinate", ("type", "builtIn", "addOn")
        )
        kind = _str(coord.get("type"), f"{path}.scoreCoordinate.type") or "BuiltIn"
        weight = 1 if config.get("weight") is None else _int(config["weight"], f"{path}.weight")
        if not -10 <= weight <= 10:
            raise InputError(f"{path}.weight: {weight} is out of range; expected -10 to 10")
        if kind == "BuiltIn":
            name = _str(coord.get("builtIn"), f"{path}.scoreCoordinate.builtIn")
            if name not in BUILTIN_PRIORITIZERS:
                raise InputError(
                    f"{path}.scoreCoordinate.builtIn: {name!r} is not supported; expected one "
                    f"of {', '.join(BUILTIN_PRIORITIZERS)}"
                )
            weights[name] = PrioritizerSpec(name, weight)
        elif kind == "AddOn":
            where = f"{path}.scoreCoordinate.addOn"
            if coord.get("addOn") is None:
                raise InputError(f"{where}: required when type is AddOn")
            addon = _map(coord["addOn"], where, ("resourceName", "scoreName"))
            resource = _str(addon.get("resourceName"), f"{where}.resourceName")
            score = _str(addon.get("scoreName"), f"{where}.scoreName")
            if not resource or not score:
                raise InputError(f"{where}: resourceName and scoreName are required")
            name = f"AddOn/{resource}/{score}"
            weights[name] = PrioritizerSpec(name, weight, (resource, score))
        else:
            raise InputError(
                f"{path}.scoreCoordinate.type: {kind!r} is not valid; expected BuiltIn or AddOn"
            )
    return tuple(sorted((p for p in weights.values() if p.weight != 0), key=lambda p: p.name))


def _decision_strategy(raw: object) -> tuple[tuple[DecisionGroupSpec, ...], int | str | None]:
    strategy = _map(raw, "spec.decisionStrategy", ("groupStrategy",))
    path = "spec.decisionStrategy.groupStrategy"
    group = _map(
        strategy.get("groupStrategy"), path, ("clustersPerDecisionGroup", "decisionGroups")
    )
    per_group = group.get("clustersPerDecisionGroup")
    where = f"{path}.clustersPerDecisionGroup"
    if isinstance(per_group, str):
        if _PERCENT.match(per_group) is None:
            raise InputError(
                f"{where}: {per_group!r} is not valid; expected an integer or a percentage "
                "from 1% to 100%"
            )
    elif per_group is not None:
        per_group = _int(per_group, where)
    groups = []
    for index, item in enumerate(_list(group.get("decisionGroups"), f"{path}.decisionGroups")):
        where = f"{path}.decisionGroups[{index}]"
        entry = _map(item, where, ("groupName", "groupClusterSelector"))
        name = _str(entry.get("groupName"), f"{where}.groupName")
        if _GROUP_NAME.match(name) is None:
            raise InputError(
                f"{where}.groupName: {name!r} is not valid (2 to 63 letters, digits, '-', '_' "
                "or '.', starting and ending with a letter or digit)"
            )
        if entry.get("groupClusterSelector") is None:
            raise InputError(f"{where}.groupClusterSelector: this field is required")
        selector = _map(
            entry["groupClusterSelector"],
            f"{where}.groupClusterSelector",
            ("labelSelector", "claimSelector"),
        )
        groups.append(
            DecisionGroupSpec(
                name=name,
                labels=parse_selector(
                    selector.get("labelSelector"),
                    f"{where}.groupClusterSelector.labelSelector",
                    allow_match_labels=True,
                ),
                claims=parse_selector(
                    selector.get("claimSelector"),
                    f"{where}.groupClusterSelector.claimSelector",
                    allow_match_labels=False,
                ),
            )
        )
    return tuple(groups), per_group


def parse_spec(spec: Mapping[str, object] | None) -> PlacementSpec:
    """Check a Placement spec (the ``spec`` of a Placement, or a blueprint's ``placement``).

    Args:
        spec: the spec mapping; ``None`` is the empty spec (every cluster, no limit).

    Returns:
        The checked spec.

    Raises:
        InputError: a field is unknown, has the wrong type or an invalid value, or
            ``spreadPolicy`` has constraints (not supported offline). The message
            starts with the field path.
    """
    top = _map(spec, "spec", _SPEC_FIELDS)
    cluster_sets = tuple(
        _str(s, f"spec.clusterSets[{i}]")
        for i, s in enumerate(_list(top.get("clusterSets"), "spec.clusterSets"))
    )
    number = top.get("numberOfClusters")
    if number is not None:
        number = _int(number, "spec.numberOfClusters")
        if number < 0:
            raise InputError(f"spec.numberOfClusters: {number} is negative; expected 0 or more")
    spread = _map(top.get("spreadPolicy"), "spec.spreadPolicy", ("spreadConstraints",))
    if _list(spread.get("spreadConstraints"), "spec.spreadPolicy.spreadConstraints"):
        raise InputError("spec.spreadPolicy: spreadPolicy is not supported by offline placement")
    sort_by = _str(top.get("sortBy"), "spec.sortBy") or "ClusterName"
    if sort_by not in ("ClusterName", "Score"):
        raise InputError(f"spec.sortBy: {sort_by!r} is not valid; expected ClusterName or Score")
    _str(top.get("scoreRateLimit"), "spec.scoreRateLimit")  # no effect on one evaluation
    groups, per_group = _decision_strategy(top.get("decisionStrategy"))
    return PlacementSpec(
        cluster_sets=cluster_sets,
        number_of_clusters=number,
        predicates=_predicates(top.get("predicates")),
        tolerations=_tolerations(top.get("tolerations")),
        prioritizers=_prioritizers(top.get("prioritizerPolicy")),
        decision_groups=groups,
        clusters_per_group=per_group,
        sort_by=sort_by,
    )
