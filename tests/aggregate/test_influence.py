"""One cluster's influence on a round is bounded with nothing configured.

A cluster can scale its update by 1e30 or claim 2^53 examples; with the default bounds
(``Limits()``, the blueprint's ``spec.influence`` defaults) either is refused with its
reason and the round aggregates the rest, to the bytes of a round without it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from fl_gitops.aggregate import aggregate_round
from fl_gitops.aggregate.checks import (
    DEFAULT_MAX_NUM_EXAMPLES,
    DEFAULT_MEDIAN_DISTANCE_MULTIPLE,
    Limits,
)
from fl_gitops.tensors import load_bytes

SHAPES = {"a.weight": (20, 10), "b.bias": (10,)}
EVERY_PATH = [("fedavg", {}), ("fedmedian", {}), ("multikrum", {"f": 1}), ("fedadam", {})]


def model(seed: int, scale: float = 1.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {n: (rng.normal(size=s) * scale).astype(np.float32) for n, s in SHAPES.items()}


def near(seed: int, base: dict[str, np.ndarray], step: float = 0.1) -> dict[str, np.ndarray]:
    """An honest update: the base moved a little."""
    rng = np.random.default_rng(seed)
    return {n: (a + step * rng.normal(size=a.shape)).astype(np.float32) for n, a in base.items()}


def without(rf, cluster, **kwargs):
    """The same round aggregated as if ``cluster`` had never sent anything."""
    return aggregate_round(
        rf.base_path,
        [u for u in rf.updates() if u.cluster != cluster],
        round=1,
        limits=Limits(median_distance_multiple=None, max_num_examples=None),
        **kwargs,
    )


@pytest.fixture
def honest(round_files):
    base = model(0)
    rf = round_files(base)
    for k in range(5):
        rf.add(f"c{k}", near(10 + k, base), num_examples=10 + k)
    return rf, base


def test_the_defaults_are_the_blueprints():
    from fl_gitops.blueprint._schema import default

    influence = ("spec", "influence")
    multiple = default(*influence, "distance", "medianMultiple")
    assert multiple == DEFAULT_MEDIAN_DISTANCE_MULTIPLE
    assert default(*influence, "numExamples", "max") == DEFAULT_MAX_NUM_EXAMPLES
    assert default(*influence, "numExamples", "above") == "reject"
    assert Limits().median_distance_multiple == DEFAULT_MEDIAN_DISTANCE_MULTIPLE
    assert Limits().max_num_examples == DEFAULT_MAX_NUM_EXAMPLES
    assert Limits().cap_num_examples is False


@pytest.mark.parametrize(("strategy", "options"), EVERY_PATH)
def test_an_update_scaled_by_1e30_is_refused_with_no_configuration(honest, strategy, options):
    rf, base = honest
    rf.add("evil", {n: a * np.float32(1e30) for n, a in near(99, base).items()})
    result = aggregate_round(
        rf.base_path, rf.updates(), strategy=strategy, options=options, round=1
    )
    assert list(result.rejected) == ["evil"]
    assert result.rejected["evil"].startswith("L2 distance to the global model is ")
    assert "over 10 x the round's median distance of " in result.rejected["evil"]
    clean = without(rf, "evil", strategy=strategy, options=options)
    assert result.contributors == clean.contributors
    assert result.digest == clean.digest
    assert all(np.isfinite(a).all() for a in load_bytes(result.model).values())


def test_of_two_updates_the_scaled_one_is_still_refused(round_files):
    base = model(0)
    rf = round_files(base)
    rf.add("a-honest", near(1, base))
    rf.add("b-evil", {n: a * np.float32(1e30) for n, a in near(2, base).items()})
    result = aggregate_round(rf.base_path, rf.updates(), strategy="fedavg", round=1)
    assert list(result.rejected) == ["b-evil"]
    assert result.contributors == ["a-honest"]


def test_a_lone_update_meets_only_the_absolute_bound(round_files):
    base = model(0)
    rf = round_files(base)
    rf.add("alone", {n: a * np.float32(1e30) for n, a in near(2, base).items()})
    assert aggregate_round(rf.base_path, rf.updates(), strategy="fedavg", round=1).rejected == {}
    bounded = rf.base_path, rf.updates()
    with pytest.raises(Exception) as exc:
        aggregate_round(*bounded, strategy="fedavg", round=1, limits=Limits(max_l2_norm=1e6))
    assert exc.value.rejected["alone"].endswith("over the bound of 1e+06")  # type: ignore[attr-defined]


def test_the_absolute_bound_still_works_in_the_summing_pass(honest):
    rf, base = honest
    rf.add("far", {n: a + 3.0 for n, a in base.items()})  # distance sqrt(210)*3 ~ 43.5
    limits = Limits(max_l2_norm=20.0, median_distance_multiple=None)
    result = aggregate_round(rf.base_path, rf.updates(), strategy="fedavg", round=1, limits=limits)
    assert result.rejected == {
        "far": "L2 distance to the global model is 43.4741, over the bound of 20"
    }
    assert result.digest == without(rf, "far", strategy="fedavg").digest


def test_the_bound_is_relative_to_the_rounds_own_spread(honest):
    rf, base = honest
    # Five times as far as the others: within 10 x the median, so it counts.
    rf.add("bold", near(50, base, step=0.5))
    result = aggregate_round(rf.base_path, rf.updates(), strategy="fedavg", round=1)
    assert result.rejected == {}
    tight = Limits(median_distance_multiple=2.0)
    result = aggregate_round(rf.base_path, rf.updates(), strategy="fedavg", round=1, limits=tight)
    assert list(result.rejected) == ["bold"]
    assert "over 2 x the round's median distance of" in result.rejected["bold"]
    assert result.record["limits"]["median_distance_multiple"] == 2.0
    assert 0 < result.record["influence"]["median_distance"] < 3


@pytest.mark.parametrize(("strategy", "options"), EVERY_PATH)
def test_2_to_the_53_examples_are_refused_with_no_configuration(honest, strategy, options):
    rf, base = honest
    rf.add("greedy", near(98, base), num_examples=2**53)
    result = aggregate_round(
        rf.base_path, rf.updates(), strategy=strategy, options=options, round=1
    )
    assert result.rejected == {
        "greedy": "num_examples is over the ceiling of 10000000 for one cluster"
    }
    assert result.digest == without(rf, "greedy", strategy=strategy, options=options).digest


def test_cap_weighs_an_inflated_update_as_the_ceiling(honest):
    rf, base = honest
    rf.add("greedy", near(98, base), num_examples=2**53, metrics={"acc": 1.0})
    limits = Limits(max_num_examples=1000, cap_num_examples=True)
    result = aggregate_round(rf.base_path, rf.updates(), strategy="fedavg", round=1, limits=limits)
    assert result.rejected == {}
    total = 1000 + sum(10 + k for k in range(5))
    assert result.weights["greedy"] == pytest.approx(1000 / total)
    assert result.record["num_examples"]["greedy"] == 1000
    assert result.record["influence"]["capped_num_examples"] == ["greedy"]
    assert result.metrics == {"acc": 1.0}


def test_weighted_metrics_stay_finite_whatever_a_cluster_claims(honest):
    rf, _ = honest
    for k, u in enumerate(rf.updates()):
        u.meta["metrics"] = {"loss": 1e15, "acc": 0.5, "huge": 1e308, "Bad Name": 1.0}
        u.meta["num_examples"] = 2**53 if k == 0 else 1
    limits = Limits(max_num_examples=None)
    result = aggregate_round(rf.base_path, rf.updates(), strategy="fedavg", round=1, limits=limits)
    assert result.rejected == {}
    assert result.metrics == {"acc": 0.5, "loss": 1e15}
    assert all(math.isfinite(v) for v in result.metrics.values())


def test_limits_refuse_a_bound_that_means_nothing():
    with pytest.raises(ValueError, match="median_distance_multiple"):
        Limits(median_distance_multiple=0.0)
    with pytest.raises(ValueError, match="max_num_examples"):
        Limits(max_num_examples=0)
