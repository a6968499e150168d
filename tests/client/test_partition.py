"""Partitioners: disjoint parts that cover everything, none empty, deterministic, skewed by α."""

from __future__ import annotations

import numpy as np
import pytest

from fl_gitops.client.partition import dirichlet_parts, iid_parts, part_for, partition, shard_parts
from fl_gitops.errors import InputError

LABELS = np.repeat(np.arange(10), 50)  # 500 examples, 10 balanced classes

SPECS = [
    {"kind": "iid", "seed": 3},
    {"kind": "dirichlet", "alpha": 0.5, "seed": 3},
    {"kind": "dirichlet", "alpha": 0.01, "seed": 3},
    {"kind": "shards", "shardsPerCluster": 2, "seed": 3},
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s['kind']}-{s.get('alpha', '')}")
@pytest.mark.parametrize("k", [1, 7, 10, 50])
def test_parts_are_disjoint_cover_everything_and_none_is_empty(spec: dict, k: int) -> None:
    parts = partition(LABELS, spec, k)
    assert len(parts) == k
    joined = np.concatenate(parts)
    assert sorted(joined.tolist()) == list(range(len(LABELS)))
    assert all(len(p) >= 1 for p in parts)
    assert all(np.array_equal(p, np.sort(p)) for p in parts)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s['kind']}-{s.get('alpha', '')}")
def test_same_spec_gives_the_same_parts_and_another_seed_other_parts(spec: dict) -> None:
    a = partition(LABELS, spec, 10)
    b = partition(LABELS.copy(), dict(spec), 10)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    c = partition(LABELS, {**spec, "seed": 4}, 10)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c, strict=True))


def test_iid_parts_differ_in_size_by_at_most_one() -> None:
    sizes = [len(p) for p in iid_parts(503, 10, seed=0)]
    assert max(sizes) - min(sizes) <= 1
    assert sum(sizes) == 503


def _skew(parts: list[np.ndarray], labels: np.ndarray) -> float:
    """Mean total-variation distance between each part's label mix and the global one."""
    glob = np.bincount(labels, minlength=10) / len(labels)
    tvs = [0.5 * np.abs(np.bincount(labels[p], minlength=10) / len(p) - glob).sum() for p in parts]
    return float(np.mean(tvs))


def test_dirichlet_skew_grows_as_alpha_shrinks() -> None:
    skews = [
        np.mean([_skew(dirichlet_parts(LABELS, 10, alpha, seed=s), LABELS) for s in range(5)])
        for alpha in (100.0, 1.0, 0.1)
    ]
    assert skews[0] < skews[1] < skews[2]
    assert skews[0] < 0.2  # near IID
    assert skews[2] > 0.6  # most clusters see one or two classes


def test_shards_give_each_cluster_few_labels() -> None:
    parts = shard_parts(LABELS, 10, 2, seed=0)
    assert all(len(np.unique(LABELS[p])) <= 2 for p in parts)
    assert [len(p) for p in parts] == [50] * 10


def test_part_for_picks_the_roster_index_part() -> None:
    spec = {"kind": "dirichlet", "alpha": 0.5, "seed": 1}
    parts = partition(LABELS, spec, 10)
    assert np.array_equal(part_for(LABELS, spec, 3, 10), parts[3])


def test_too_few_examples_for_the_roster_is_an_input_error() -> None:
    with pytest.raises(InputError) as err:
        iid_parts(5, 10)
    assert str(err.value) == "partition: 5 examples cannot give each of 10 clusters one"
    with pytest.raises(InputError) as err:
        shard_parts(LABELS[:30], 10, 4)
    assert str(err.value) == "partition: 30 examples cannot give each of 40 shards one"


def test_roster_index_out_of_range_is_an_input_error() -> None:
    with pytest.raises(InputError) as err:
        part_for(LABELS, {"kind": "iid"}, 10, 10)
    assert str(err.value) == ("partition: rosterIndex: expected 0 <= rosterIndex < 10, got 10")
