"""How many clusters a Placement takes and which: prioritizers, weights and ties."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Any

import pytest

from fl_gitops.errors import InputError
from fl_gitops.placement import parse_quantity

from .conftest import Make, evaluate


def prioritize(*configs: tuple[str, int], mode: str = "Exact", n: int | None = None) -> dict:
    spec: dict[str, Any] = {
        "prioritizerPolicy": {
            "mode": mode,
            "configurations": [
                {"scoreCoordinate": {"builtIn": name}, "weight": weight} for name, weight in configs
            ],
        }
    }
    if n is not None:
        spec["numberOfClusters"] = n
    return spec


def test_number_of_clusters_absent_takes_all_feasible(cluster: Make, now: datetime) -> None:
    clusters = [cluster(f"c{i}") for i in range(5)]
    result = evaluate({}, clusters, now)
    assert result.decided == ("c0", "c1", "c2", "c3", "c4")
    assert result.reason == "AllDecisionsScheduled"


def test_number_of_clusters_larger_than_feasible_is_not_satisfied(
    cluster: Make, now: datetime
) -> None:
    result = evaluate({"numberOfClusters": 4}, [cluster("a"), cluster("b")], now)
    assert result.decided == ("a", "b")
    assert result.unscheduled == 2
    assert result.reason == "NotAllDecisionsScheduled"
    assert not result.satisfied


def test_equal_scores_break_ties_by_cluster_name(cluster: Make, now: datetime) -> None:
    clusters = [cluster(n) for n in ("delta", "alpha", "charlie", "bravo")]
    result = evaluate({"numberOfClusters": 2}, clusters, now)
    assert result.decided == ("alpha", "bravo")
    # default Additive mode: Balance (100, nothing else placed) + Steady (0) at weight 1
    assert dict(result.scores) == {"alpha": 100, "bravo": 100, "charlie": 100, "delta": 100}
    assert [(p.name, p.weight) for p in result.prioritizers] == [("Balance", 1), ("Steady", 1)]


def test_steady_keeps_the_previous_decisions(cluster: Make, now: datetime) -> None:
    clusters = [cluster(n) for n in ("a", "b", "c", "d")]
    result = evaluate({"numberOfClusters": 2}, clusters, now, previous=["c", "d"])
    assert result.decided == ("c", "d")
    assert result.scores["c"] == 200 and result.scores["a"] == 100


def test_balance_prefers_clusters_other_placements_use_less(cluster: Make, now: datetime) -> None:
    clusters = [cluster(n) for n in ("a", "b", "c", "d")]
    others = {"a": 3, "b": 1, "z": 3}  # z is not in this placement's fleet but sets the max
    result = evaluate(prioritize(("Balance", 1), n=2), clusters, now, other_decisions=others)
    balance = dict(result.prioritizers[0].scores)
    # 2 * trunc(100 * (0.5 - count / max)): b -> 2 * trunc(16.67) = 32, a -> -100
    assert balance == {"a": -100, "b": 32, "c": 100, "d": 100}
    assert result.decided == ("c", "d")


def test_resource_allocatable_scores_scale_between_fleet_min_and_max(
    cluster: Make, now: datetime
) -> None:
    clusters = [
        cluster("small", cpu="2", memory="8Gi"),
        cluster("medium", cpu="3500m", memory="16Gi"),
        cluster("large", cpu="8", memory="64Gi"),
        cluster("unknown"),
    ]
    result = evaluate(prioritize(("ResourceAllocatableCPU", 1), n=2), clusters, now)
    # (3.5 - 2) / (8 - 2) = 0.25 -> (0.25 - 0.5) * 200 = -50; no allocatable: not scored (0)
    assert dict(result.prioritizers[0].scores) == {"large": 100, "medium": -50, "small": -100}
    assert result.ranked == ("large", "unknown", "medium", "small")
    assert result.decided == ("large", "unknown")
    memory = evaluate(prioritize(("ResourceAllocatableMemory", -2), n=1), clusters, now)
    assert memory.decided == ("small",)
    assert memory.scores["small"] == 200


def test_exact_mode_drops_the_default_prioritizers(cluster: Make, now: datetime) -> None:
    clusters = [cluster("a", cpu="1"), cluster("b", cpu="2")]
    exact = evaluate(prioritize(("ResourceAllocatableCPU", 1)), clusters, now, previous=["a"])
    assert [p.name for p in exact.prioritizers] == ["ResourceAllocatableCPU"]
    additive = evaluate(
        prioritize(("ResourceAllocatableCPU", 1), mode="Additive"), clusters, now, previous=["a"]
    )
    assert [p.name for p in additive.prioritizers] == [
        "Balance",
        "ResourceAllocatableCPU",
        "Steady",
    ]
    # a: 100 (Balance) + 100 (Steady) - 100 (CPU); b: 100 + 0 + 100
    assert dict(additive.scores) == {"a": 100, "b": 200}
    zero = evaluate(prioritize(("Steady", 0), mode="Additive"), clusters, now)
    assert [p.name for p in zero.prioritizers] == ["Balance"]


def test_addon_scores_come_from_the_given_mapping_else_zero(cluster: Make, now: datetime) -> None:
    spec = {
        "numberOfClusters": 1,
        "prioritizerPolicy": {
            "mode": "Exact",
            "configurations": [
                {
                    "scoreCoordinate": {
                        "type": "AddOn",
                        "addOn": {"resourceName": "usage", "scoreName": "cpuFree"},
                    },
                    "weight": 3,
                }
            ],
        },
    }
    clusters = [cluster("a"), cluster("b"), cluster("c")]
    result = evaluate(spec, clusters, now, addon_scores={"b": {"usage": {"cpuFree": 40}}})
    assert result.decided == ("b",)
    assert dict(result.scores) == {"a": 0, "b": 120, "c": 0}
    assert result.prioritizers[0].name == "AddOn/usage/cpuFree"
    assert evaluate(spec, clusters, now).decided == ("a",)


def test_weights_outside_minus_ten_to_ten_are_refused(now: datetime) -> None:
    with pytest.raises(InputError) as error:
        evaluate(prioritize(("Steady", 11)), [], now)
    assert str(error.value) == (
        "spec.prioritizerPolicy.configurations[0].weight: 11 is out of range; expected -10 to 10"
    )


def test_unknown_builtin_prioritizer_is_refused(now: datetime) -> None:
    with pytest.raises(InputError) as error:
        evaluate(prioritize(("Spread", 1)), [], now)
    assert str(error.value) == (
        "spec.prioritizerPolicy.configurations[0].scoreCoordinate.builtIn: 'Spread' is not "
        "supported; expected one of Balance, Steady, ResourceAllocatableCPU, "
        "ResourceAllocatableMemory"
    )


def test_the_result_does_not_depend_on_input_order(cluster: Make, now: datetime) -> None:
    clusters = [
        cluster(f"c{i:02d}", cpu=str(1 + i % 4), labels={"zone": "a" if i % 2 else "b"})
        for i in range(20)
    ]
    spec = prioritize(("ResourceAllocatableCPU", 2), ("Steady", 1), mode="Additive", n=7)
    spec["decisionStrategy"] = {"groupStrategy": {"clustersPerDecisionGroup": 3}}
    expected = evaluate(spec, clusters, now, previous=["c03", "c10"])
    for seed in range(5):
        shuffled = list(clusters)
        random.Random(seed).shuffle(shuffled)
        assert evaluate(spec, shuffled, now, previous=["c10", "c03"]) == expected


def test_a_cluster_listed_twice_is_an_inventory_error(cluster: Make, now: datetime) -> None:
    from fl_gitops.errors import InventoryError

    with pytest.raises(InventoryError) as error:
        evaluate({}, [cluster("a"), cluster("a")], now)
    assert str(error.value) == "clusters[1]: cluster 'a' appears more than once"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("500m", 0.5),
        ("4", 4),
        ("16Gi", 16 * 2**30),
        ("1.5k", 1500),
        ("1e3", 1000),
        ("2M", 2_000_000),
        ("128974848", 128974848),
        ("100Mi", 100 * 2**20),
        ("-1.5", -1.5),
    ],
)
def test_kubernetes_quantities_parse_exactly(text: str, value: float) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["1e999999999", "1e-999999999", "1" * 65])
def test_a_quantity_out_of_kubernetes_range_is_refused_at_once(text):
    # An inventory's "1e999999999" once made the parser compute 10**999999999: a render
    # that never ended. Kubernetes keeps quantities within int64 at nano scale.
    with pytest.raises(ValueError) as exc:
        parse_quantity(text)
    assert "out of range" in str(exc.value) or "not a quantity" in str(exc.value)
