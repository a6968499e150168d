"""Deterministic, realistic ManagedClusters for simulations, tests and benchmarks.

``fl-gitops simulate`` needs N clusters that a blueprint's Placement selects; tests and
benchmarks need a fleet where only some clusters match, for the right reasons. The
objects have the shape OCM's registration writes (labels, claims, allocatable and
capacity, conditions, taints), and cluster ``i`` depends only on ``seed`` and ``i``, so
a larger fleet extends a smaller one.
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from fl_gitops.errors import InputError
from fl_gitops.placement._evaluate import CLUSTERSET_LABEL
from fl_gitops.placement._selectors import Requirement
from fl_gitops.placement._spec import PlacementSpec, TolerationSpec, parse_spec
from fl_gitops.placement._taints import untolerated_taint

__all__ = ["GENERATED_AS_ANNOTATION", "MIX_CATEGORIES", "generate_inventory"]

GENERATED_AS_ANNOTATION = "fl-gitops.io/generated-as"
DEFAULT_CREATED = datetime(2025, 1, 1, tzinfo=UTC)

# category -> weight out of 10; "match" and "tolerated-taint" are selected by the spec.
MIX_CATEGORIES = {
    "match": 4,
    "tolerated-taint": 1,
    "wrong-label": 1,
    "wrong-claim": 1,
    "untolerated-taint": 1,
    "other-clusterset": 1,
    "unreachable": 1,
}
_PLATFORMS = {
    "AWS": ("Amazon", ("eu-west-1", "us-east-1", "us-west-2", "ap-southeast-1")),
    "GCP": ("Google", ("europe-west1", "us-central1", "asia-east1")),
    "Azure": ("Azure", ("westeurope", "eastus", "southeastasia")),
}
_KUBE_VERSIONS = ("v1.29.10", "v1.30.6", "v1.31.2", "v1.32.0")
_CORES = (4, 8, 16, 32, 64)


# `managedCluster.metadata.labels["key"] == "value"`, the commonest CEL predicate.
_CEL_LABEL_EQ = re.compile(
    r"""managedCluster\.metadata\.labels\[\s*(["'])([^"']+)\1\s*\]\s*==\s*(["'])([^"']*)\3"""
)


def _cel_label_equalities(expression: str) -> dict[str, str]:
    """Labels that make label-equality CEL terms true (best effort; the rest is not solved)."""
    return {m.group(2): m.group(4) for m in _CEL_LABEL_EQ.finditer(expression)}


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _other_value(values: frozenset[str]) -> str:
    for candidate in ("other", "other-1", "other-2"):
        if candidate not in values:
            return candidate
    return "other-" + "x" * 8


def _satisfy(requirement: Requirement, target: dict[str, str], rng: random.Random) -> None:
    key, values = requirement.key, requirement.values
    if requirement.operator == "In" and target.get(key) not in values:
        target[key] = rng.choice(sorted(values))
    elif requirement.operator == "NotIn" and target.get(key) in values:
        target[key] = _other_value(values)
    elif requirement.operator == "Exists" and key not in target:
        target[key] = "true"
    elif requirement.operator == "DoesNotExist":
        target.pop(key, None)


def _break(requirements: tuple[Requirement, ...], target: dict[str, str]) -> bool:
    """Make the first breakable requirement fail; False if none can be broken."""
    for requirement in requirements:
        if requirement.operator == "In":
            target[requirement.key] = _other_value(requirement.values)
            return True
        if requirement.operator == "Exists":
            target.pop(requirement.key, None)
            return True
    return False


def _tolerated_taint(tolerations: tuple[TolerationSpec, ...], added: str) -> dict[str, str] | None:
    for tol in tolerations:
        if tol.seconds is None:
            taint = {
                "key": tol.key or "fl-gitops.io/dedicated",
                "value": tol.value if tol.operator == "Equal" else "true",
                "effect": tol.effect or "NoSelect",
                "timeAdded": added,
            }
            if not taint["value"]:
                del taint["value"]
            return taint
    return None


def _untolerated(taint: dict[str, str], spec: PlacementSpec, now: datetime) -> bool:
    return untolerated_taint([taint], spec.tolerations, in_previous=False, now=now) is not None


def _cluster(
    index: int, width: int, prefix: str, spec: PlacementSpec | None, seed: int, mix: bool
) -> dict[str, Any]:
    rng = random.Random(f"fl-gitops:{seed}:{index}")
    name = f"{prefix}-{index + 1:0{width}d}"
    platform = rng.choice(sorted(_PLATFORMS))
    cloud, regions = _PLATFORMS[platform]
    version = rng.choice(_KUBE_VERSIONS)
    cores = rng.choice(_CORES)
    created = DEFAULT_CREATED - timedelta(days=rng.randrange(1, 400), seconds=rng.randrange(86400))
    added = _timestamp(created + timedelta(days=1))
    category = "match"
    if mix:
        category = rng.choices(list(MIX_CATEGORIES), weights=list(MIX_CATEGORIES.values()))[0]

    cluster_set = spec.cluster_sets[0] if spec and spec.cluster_sets else "default"
    labels = {
        CLUSTERSET_LABEL: cluster_set,
        "cloud": cloud,
        "name": name,
        "vendor": "Kubernetes",
    }
    claims = {
        "id.k8s.io": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "kubeversion.open-cluster-management.io": version,
        "platform.open-cluster-management.io": platform,
        "product.open-cluster-management.io": "Kubernetes",
        "region.open-cluster-management.io": rng.choice(regions),
    }
    taints: list[dict[str, str]] = []
    available = {
        "status": "True",
        "reason": "ManagedClusterAvailable",
        "message": "Managed cluster is available",
    }

    if spec is not None and spec.predicates:
        for requirement in spec.predicates[0].labels.requirements:
            _satisfy(requirement, labels, rng)
        for requirement in spec.predicates[0].claims.requirements:
            _satisfy(requirement, claims, rng)
        for expression in spec.predicates[0].cel_expressions:
            labels.update(_cel_label_equalities(expression))
    generated_as = "match"
    first = spec.predicates[0] if spec is not None and spec.predicates else None
    if category in ("wrong-label", "wrong-claim"):
        if first is not None and (
            _break(first.labels.requirements, labels)
            if category == "wrong-label"
            else _break(first.claims.requirements, claims)
        ):
            generated_as = category
    elif (
        category == "other-clusterset"
        and spec is not None
        and spec.cluster_sets
        and "global" not in spec.cluster_sets
    ):
        labels[CLUSTERSET_LABEL] = _other_value(frozenset(spec.cluster_sets)) + "-silos"
        generated_as = category
    elif category in ("untolerated-taint", "unreachable"):
        key = (
            "fl-gitops.io/maintenance"
            if category == "untolerated-taint"
            else "cluster.open-cluster-management.io/unreachable"
        )
        taint = {"key": key, "effect": "NoSelect", "timeAdded": added}
        if spec is None or _untolerated(taint, spec, DEFAULT_CREATED):
            taints.append(taint)
            generated_as = category
            if category == "unreachable":
                available = {
                    "status": "Unknown",
                    "reason": "ManagedClusterLeaseUpdateStopped",
                    "message": "Registration agent stopped updating its lease.",
                }
    elif category == "tolerated-taint" and spec is not None:
        tolerated = _tolerated_taint(spec.tolerations, added)
        if tolerated is not None:
            taints.append(tolerated)
            generated_as = category

    alloc_cpu = cores * 1000 - rng.choice((250, 500, 750))
    annotations = {GENERATED_AS_ANNOTATION: generated_as} if mix else {}
    cluster: dict[str, Any] = {
        "apiVersion": "cluster.open-cluster-management.io/v1",
        "kind": "ManagedCluster",
        "metadata": {
            "creationTimestamp": _timestamp(created),
            "labels": dict(sorted(labels.items())),
            "name": name,
            "resourceVersion": str(rng.randrange(10**5, 10**7)),
            "uid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        },
        "spec": {
            "hubAcceptsClient": True,
            "leaseDurationSeconds": 60,
            "managedClusterClientConfigs": [{"url": f"https://api.{name}.example.com:6443"}],
        },
        "status": {
            "allocatable": {"cpu": f"{alloc_cpu}m", "memory": f"{cores * 4096 - 512}Mi"},
            "capacity": {"cpu": str(cores), "memory": f"{cores * 4}Gi"},
            "clusterClaims": [{"name": k, "value": v} for k, v in sorted(claims.items())],
            "conditions": [
                {
                    "lastTransitionTime": _timestamp(created),
                    "message": "Accepted by hub cluster admin",
                    "reason": "HubClusterAdminAccepted",
                    "status": "True",
                    "type": "HubAcceptedManagedCluster",
                },
                {
                    "lastTransitionTime": _timestamp(created),
                    "message": "Managed cluster joined",
                    "reason": "ManagedClusterJoined",
                    "status": "True",
                    "type": "ManagedClusterJoined",
                },
                {
                    "lastTransitionTime": added,
                    "type": "ManagedClusterConditionAvailable",
                    **available,
                },
            ],
            "version": {"kubernetes": version},
        },
    }
    if annotations:
        cluster["metadata"]["annotations"] = annotations
    if taints:
        cluster["spec"]["taints"] = taints
    return cluster


def generate_inventory(
    n: int,
    *,
    spec: Mapping[str, Any] | None = None,
    seed: int = 0,
    mix: bool = False,
    name_prefix: str = "cluster",
) -> list[dict[str, Any]]:
    """Generate ``n`` ManagedClusters, deterministically.

    Args:
        n: how many clusters (names ``<prefix>-001``..., zero-padded to at least 3).
        spec: a Placement spec. Without ``mix`` every cluster is in its first cluster
            set, satisfies its first predicate's label and claim selectors (``In``
            picks one of the values) and carries no untolerated taint; CEL expressions
            are not taken into account.
        seed: changes every generated value; the same seed gives the same clusters.
        mix: make a fleet where only part of the clusters match: about 4 in 10 plain
            matches, 1 in 10 each with a tolerated taint (still matching), a wrong
            label, a wrong claim, an untolerated taint, another cluster set, or
            unreachable (Available Unknown, with OCM's unreachable taint). Each cluster
            says which in the ``fl-gitops.io/generated-as`` annotation ("match" when a
            near miss cannot be made for this spec).
        name_prefix: the cluster name prefix.

    Returns:
        ManagedCluster objects sorted by name.

    Raises:
        InputError: ``n`` is negative or ``spec`` is not a valid Placement spec.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise InputError(f"n: expected a non-negative integer, got {n!r}")
    checked = parse_spec(spec) if spec is not None else None
    width = max(3, len(str(n)))
    return [_cluster(i, width, name_prefix, checked, seed, mix) for i in range(n)]
