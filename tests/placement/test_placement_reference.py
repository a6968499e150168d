"""The stock blueprint's placement over generated fleets, and the generator itself."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any

import jsonschema

from fl_gitops.placement import (
    CLUSTERSET_LABEL,
    GENERATED_AS_ANNOTATION,
    evaluate_placement,
    generate_inventory,
)

MANAGED_CLUSTER_CRD = "0000_00_clusters.open-cluster-management.io_managedclusters.crd.yaml"
REGIONS = {"eu-west-1", "us-east-1"}


def claims(cluster: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["value"] for c in cluster["status"]["clusterClaims"]}


def selectable(cluster: dict[str, Any]) -> bool:
    """The reference placement's rules, written out independently of the evaluator."""
    labels = cluster["metadata"]["labels"]
    untolerated = [t for t in cluster["spec"].get("taints", []) if t["key"] != "gpu"]
    return (
        labels.get(CLUSTERSET_LABEL) == "fl-silos"
        and labels.get("fl-gitops.io/dataset") == "digits"
        and claims(cluster).get("region.open-cluster-management.io") in REGIONS
        and not [t for t in untolerated if t["effect"] != "PreferNoSelect"]
    )


def test_reference_placement_over_a_mixed_fleet(
    reference_spec: dict[str, Any], now: datetime
) -> None:
    fleet = generate_inventory(250, spec=reference_spec, mix=True, seed=7)
    kinds = Counter(c["metadata"]["annotations"][GENERATED_AS_ANNOTATION] for c in fleet)
    assert set(kinds) == {
        "match",
        "tolerated-taint",
        "wrong-label",
        "wrong-claim",
        "untolerated-taint",
        "other-clusterset",
        "unreachable",
    }
    result = evaluate_placement(
        reference_spec, fleet, placement_name="digits", namespace="fl-exp", now=now
    )
    by_name = {c["metadata"]["name"]: c for c in fleet}
    expected_feasible = sorted(n for n, c in by_name.items() if selectable(c))
    assert list(result.feasible) == expected_feasible
    assert len(result.decided) == min(10, len(expected_feasible)) == 10
    for name in result.decided:
        assert selectable(by_name[name])
    assert any(by_name[n]["spec"].get("taints") for n in result.feasible)  # gpu-tainted kept
    for name, reason in result.excluded.items():
        kind = by_name[name]["metadata"]["annotations"][GENERATED_AS_ANNOTATION]
        assert kind not in ("match", "tolerated-taint"), (name, reason)

    shuffled = list(fleet)
    random.Random(1).shuffle(shuffled)
    again = evaluate_placement(
        reference_spec, shuffled, placement_name="digits", namespace="fl-exp", now=now
    )
    assert again == result


def test_generated_clusters_for_a_spec_all_match_it(
    reference_spec: dict[str, Any], now: datetime
) -> None:
    fleet = generate_inventory(40, spec=reference_spec, seed=1)
    assert all(selectable(c) for c in fleet)
    unlimited = {**reference_spec}
    del unlimited["numberOfClusters"]
    result = evaluate_placement(unlimited, fleet, placement_name="p", namespace="n", now=now)
    assert len(result.decided) == 40


def test_generation_is_deterministic_and_a_larger_fleet_extends_a_smaller_one(
    reference_spec: dict[str, Any],
) -> None:
    small = generate_inventory(20, spec=reference_spec, mix=True, seed=5)
    assert generate_inventory(20, spec=reference_spec, mix=True, seed=5) == small
    assert generate_inventory(20, spec=reference_spec, mix=True, seed=6) != small
    large = generate_inventory(200, spec=reference_spec, mix=True, seed=5)
    assert [c["metadata"]["name"] for c in large[:3]] == [
        "cluster-001",
        "cluster-002",
        "cluster-003",
    ]
    assert large[:20] == small


def test_generated_clusters_validate_against_the_managed_cluster_crd(
    reference_spec: dict[str, Any], crd_schema: Callable[[str], dict[str, Any]]
) -> None:
    schema = crd_schema(MANAGED_CLUSTER_CRD)
    for cluster in generate_inventory(60, spec=reference_spec, mix=True) + generate_inventory(5):
        jsonschema.validate(cluster, schema)
        condition_types = [c["type"] for c in cluster["status"]["conditions"]]
        assert "ManagedClusterConditionAvailable" in condition_types
        assert cluster["status"]["allocatable"] and cluster["status"]["capacity"]


def test_ten_thousand_clusters_place_the_requested_ten(
    reference_spec: dict[str, Any], now: datetime
) -> None:
    # Speed is measured by bench/render.py; here only the outcome at fleet scale.
    fleet = generate_inventory(10_000, spec=reference_spec, mix=True)
    result = evaluate_placement(reference_spec, fleet, placement_name="p", namespace="n", now=now)
    assert len(result.decided) == 10
    assert len(result.feasible) > 10
