"""Decision groups and PlacementDecision pages, as OCM's controller writes them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import jsonschema
import pytest

from fl_gitops.errors import InputError
from fl_gitops.placement import DecisionGroup, decision_pages

from .conftest import Make, evaluate

PLACEMENT_DECISION_CRD = "0000_03_clusters.open-cluster-management.io_placementdecisions.crd.yaml"


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """Forbid unknown fields wherever the schema lists properties."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


def test_decision_groups_take_selected_clusters_then_the_rest(cluster: Make, now: datetime) -> None:
    clusters = [
        cluster("canary-2", labels={"ring": "canary"}),
        cluster("canary-1", labels={"ring": "canary"}),
        cluster("prod-1", labels={"ring": "prod"}),
        cluster("prod-2", labels={"ring": "prod"}),
        cluster("prod-3", labels={"ring": "prod"}),
    ]
    spec = {
        "decisionStrategy": {
            "groupStrategy": {
                "clustersPerDecisionGroup": 2,
                "decisionGroups": [
                    {
                        "groupName": "canary",
                        "groupClusterSelector": {
                            "labelSelector": {"matchLabels": {"ring": "canary"}}
                        },
                    }
                ],
            }
        }
    }
    assert evaluate(spec, clusters, now).groups == (
        DecisionGroup(0, "canary", ("canary-1", "canary-2")),
        DecisionGroup(1, "", ("prod-1", "prod-2")),
        DecisionGroup(2, "", ("prod-3",)),
    )


@pytest.mark.parametrize(
    ("per_group", "sizes"),
    [("25%", [3, 3, 3, 1]), ("100%", [10]), (4, [4, 4, 2]), (0, [10]), (50, [10])],
)
def test_clusters_per_decision_group_as_number_or_percentage(
    cluster: Make, now: datetime, per_group: int | str, sizes: list[int]
) -> None:
    clusters = [cluster(f"c{i:02d}") for i in range(10)]
    spec = {"decisionStrategy": {"groupStrategy": {"clustersPerDecisionGroup": per_group}}}
    groups = evaluate(spec, clusters, now).groups
    assert [len(g.clusters) for g in groups] == sizes
    assert [g.index for g in groups] == list(range(len(sizes)))


def test_a_bad_clusters_per_decision_group_is_refused(now: datetime) -> None:
    spec = {"decisionStrategy": {"groupStrategy": {"clustersPerDecisionGroup": "5"}}}
    with pytest.raises(InputError) as error:
        evaluate(spec, [], now)
    assert str(error.value) == (
        "spec.decisionStrategy.groupStrategy.clustersPerDecisionGroup: '5' is not valid; "
        "expected an integer or a percentage from 1% to 100%"
    )


def test_sort_by_score_orders_decisions_by_score_then_name(cluster: Make, now: datetime) -> None:
    clusters = [cluster("a", cpu="1"), cluster("b", cpu="4"), cluster("c", cpu="4")]
    spec = {
        "sortBy": "Score",
        "prioritizerPolicy": {
            "mode": "Exact",
            "configurations": [{"scoreCoordinate": {"builtIn": "ResourceAllocatableCPU"}}],
        },
    }
    assert evaluate(spec, clusters, now).groups[0].clusters == ("b", "c", "a")
    del spec["sortBy"]
    assert evaluate(spec, clusters, now).groups[0].clusters == ("a", "b", "c")


def test_pages_hold_at_most_100_decisions_and_are_numbered_from_1(
    cluster: Make, now: datetime, crd_schema: Callable[[str], dict[str, Any]]
) -> None:
    clusters = [
        cluster(f"c{i:03d}", labels={"ring": "canary" if i < 5 else "main"}) for i in range(250)
    ]
    spec = {
        "decisionStrategy": {
            "groupStrategy": {
                "decisionGroups": [
                    {
                        "groupName": "canary",
                        "groupClusterSelector": {
                            "labelSelector": {"matchLabels": {"ring": "canary"}}
                        },
                    }
                ]
            }
        }
    }
    result = evaluate(spec, clusters, now)
    pages = decision_pages(result, placement_name="fl", namespace="exp")
    assert [p["metadata"]["name"] for p in pages] == [f"fl-decision-{n}" for n in range(1, 5)]
    assert [len(p["status"]["decisions"]) for p in pages] == [5, 100, 100, 45]
    assert [p["metadata"]["labels"] for p in pages[:2]] == [
        {
            "cluster.open-cluster-management.io/placement": "fl",
            "cluster.open-cluster-management.io/decision-group-index": "0",
            "cluster.open-cluster-management.io/decision-group-name": "canary",
        },
        {
            "cluster.open-cluster-management.io/placement": "fl",
            "cluster.open-cluster-management.io/decision-group-index": "1",
            "cluster.open-cluster-management.io/decision-group-name": "",
        },
    ]
    assert (
        pages[3]["metadata"]["labels"]["cluster.open-cluster-management.io/decision-group-index"]
        == "1"
    )
    assert pages[0]["status"]["decisions"][0] == {"clusterName": "c000", "reason": ""}
    names = [d["clusterName"] for p in pages for d in p["status"]["decisions"]]
    assert sorted(names) == list(result.decided) and len(set(names)) == 250
    schema = strict(crd_schema(PLACEMENT_DECISION_CRD))
    for page in pages:
        assert page["apiVersion"] == "cluster.open-cluster-management.io/v1beta1"
        assert page["kind"] == "PlacementDecision"
        assert page["metadata"]["namespace"] == "exp"
        jsonschema.validate(page, schema)


def test_an_empty_result_still_has_one_empty_page(
    now: datetime, crd_schema: Callable[[str], dict[str, Any]]
) -> None:
    result = evaluate({}, [], now)
    assert result.groups == (DecisionGroup(0, "", ()),)
    pages = decision_pages(result, placement_name="fl", namespace="exp")
    assert [p["metadata"]["name"] for p in pages] == ["fl-decision-1"]
    assert pages[0]["status"] == {"decisions": []}
    jsonschema.validate(pages[0], strict(crd_schema(PLACEMENT_DECISION_CRD)))


def test_the_strict_schema_would_catch_a_misspelt_field(
    crd_schema: Callable[[str], dict[str, Any]],
) -> None:
    page = {"status": {"decisions": [{"clustername": "a", "reason": ""}]}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(page, strict(crd_schema(PLACEMENT_DECISION_CRD)))
