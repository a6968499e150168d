"""Secure aggregation, played with real cryptography: the sum survives dropouts up to the
threshold, fails cleanly past it, equals plain FedAvg within the stated bound, and no
stored input tells anything of one cluster's update."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from fl_gitops.errors import InputError
from fl_gitops.secagg import NotEnoughShares, SecAggParams
from tests.secagg.rounds import play

CLUSTERS = [f"cluster-{i:02d}" for i in range(10)]
PARAMS = SecAggParams(threshold=7, neighbours=9, clip_range=0.5, bits=64)


def _round(seed: int, size: int = 2000) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    rng = np.random.default_rng(seed)
    changes = {c: (rng.normal(size=size) * 0.1).astype(np.float32) for c in CLUSTERS}
    weights = {c: int(rng.integers(1, 1000)) for c in CLUSTERS}
    return changes, weights


def _fedavg(changes, weights, clusters, clip) -> np.ndarray:
    total = sum(weights[c] for c in clusters)
    return sum(
        np.clip(changes[c].astype(np.float64), -clip, clip) * (weights[c] / total) for c in clusters
    )


def test_the_secure_mean_is_fedavgs_within_the_stated_bound() -> None:
    changes, weights = _round(1)
    changes["cluster-03"][:10] = 3.0  # beyond the clip range: clipped, as documented
    result, played = play(changes, weights, PARAMS)
    want = _fedavg(changes, weights, CLUSTERS, PARAMS.clip_range)
    bound = PARAMS.error_bound(played.levels)
    assert np.max(np.abs(result.mean_change - want)) <= bound * (1 + 1e-9) + 1e-12
    assert result.survivors == tuple(CLUSTERS) and result.dropped == ()


@pytest.mark.parametrize("dropped", [("cluster-00", "cluster-04", "cluster-09"), ("cluster-01",)])
def test_up_to_three_of_ten_dropping_after_sharing_still_gives_the_survivors_mean(
    dropped: tuple[str, ...],
) -> None:
    changes, weights = _round(2)
    result, played = play(changes, weights, PARAMS, drop_before_input=dropped)
    alive = [c for c in CLUSTERS if c not in dropped]
    want = _fedavg(changes, weights, alive, PARAMS.clip_range)
    assert result.dropped == dropped
    assert np.max(np.abs(result.mean_change - want)) <= PARAMS.error_bound(played.levels)


def test_every_way_three_drop_recovers() -> None:
    changes, weights = _round(3, size=64)
    for dropped in itertools.islice(itertools.combinations(CLUSTERS, 3), 0, 120, 7):
        result, _ = play(changes, weights, PARAMS, drop_before_input=dropped)
        assert set(result.dropped) == set(dropped)


def test_four_dropping_fails_the_round_and_unmasks_nothing() -> None:
    changes, weights = _round(4)
    dropped = ("cluster-01", "cluster-02", "cluster-05", "cluster-08")
    with pytest.raises(NotEnoughShares) as exc:
        play(changes, weights, PARAMS, drop_before_input=dropped)
    assert "needed" in str(exc.value)


def test_survivors_that_do_not_reveal_count_against_the_threshold() -> None:
    changes, weights = _round(5)
    ok, _ = play(changes, weights, PARAMS, drop_before_input=["cluster-00"],
                 drop_before_reveal=["cluster-01", "cluster-02"])  # fmt: skip
    assert ok.dropped == ("cluster-00",)
    with pytest.raises(NotEnoughShares):
        play(changes, weights, PARAMS, drop_before_input=["cluster-00", "cluster-03"],
             drop_before_reveal=["cluster-01", "cluster-02"])  # fmt: skip


def test_no_stored_input_is_closer_to_its_clusters_update_than_chance() -> None:
    changes, weights = _round(6, size=4096)
    _, played = play(changes, weights, PARAMS)
    levels = played.levels
    for cluster, masked in played.masked.items():
        # Read a stored input as if it were the cluster's quantised, weighted change.
        guess = masked.astype(np.float64) / (weights[cluster] * levels) * 2 * PARAMS.clip_range
        guess -= PARAMS.clip_range
        truth = changes[cluster].astype(np.float64)
        corr = abs(np.corrcoef(guess, truth)[0, 1])
        assert corr < 0.1, cluster  # chance: about 1/sqrt(4096)
        # Its bits look uniform: each of the 64 bit positions set about half the time.
        bits = np.unpackbits(masked.view(np.uint8)).reshape(-1, 64).mean(axis=0)
        assert np.all(np.abs(bits - 0.5) < 0.05)


def test_a_sparse_graph_masks_with_neighbours_only_and_still_recovers() -> None:
    rng = np.random.default_rng(7)
    clusters = [f"c{i:02d}" for i in range(20)]
    changes = {c: rng.normal(size=300) * 0.05 for c in clusters}
    weights = {c: 10 for c in clusters}
    params = SecAggParams(threshold=4, neighbours=6, clip_range=0.5)
    result, played = play(changes, weights, params, drop_before_input=["c03"])
    assert all(len(v) == 6 for v in played.ctx.graph.values())
    alive = [c for c in clusters if c != "c03"]
    want = _fedavg(changes, weights, alive, 0.5)
    assert np.max(np.abs(result.mean_change - want)) <= params.error_bound(played.levels)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"threshold": 5, "neighbours": 9}, "threshold"),  # not more than half of 10
        ({"threshold": 11, "neighbours": 9}, "threshold"),
        ({"threshold": 7, "neighbours": 9, "bits": 8}, "bits"),
        ({"threshold": 7, "neighbours": 9, "clip_range": 0.0}, "clipRange"),
    ],
)
def test_parameters_that_cannot_be_safe_are_refused(kwargs: dict, field: str) -> None:
    with pytest.raises(InputError, match=field):
        SecAggParams(**{"clip_range": 1.0, **kwargs})


def test_too_few_bits_for_the_roster_and_weights_is_refused() -> None:
    with pytest.raises(InputError, match="levels"):
        SecAggParams(threshold=7, neighbours=9, clip_range=1.0, bits=32).levels(100, 10_000_000)
