"""Server-side adaptive clipping (Andrew et al. 2021) on real update files through the engine."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fl_gitops.aggregate import aggregate_round
from fl_gitops.aggregate.strategies import validate_options
from fl_gitops.aggregate.strategies.dp import sum_noise_multiplier
from fl_gitops.errors import StrategyOptionsError

ADAPTIVE = {"target_quantile": 0.5, "learning_rate": 0.2, "clipped_count_stddev": 0.5}


@pytest.fixture
def ten(round_files):
    """Ten updates whose distances to the (zero) base are 1, 2, ..., 10: median 5.5."""
    rf = round_files({"w": np.zeros(2, dtype=np.float32)})
    for k in range(1, 11):
        rf.add(f"c{k:02d}", {"w": np.float32([0.6 * k, 0.8 * k])})
    return rf


def run(rf, clip, *, seed=0, noise=0.5, adaptive=ADAPTIVE):
    options = {"clipping_norm": clip, "noise_multiplier": noise, "adaptive": adaptive}
    return aggregate_round(
        rf.base_path,
        rf.updates(),
        strategy="dp-fixed-clipping",
        round=1,
        options=validate_options("dp-fixed-clipping", options),
        seed=seed,
    )


def test_the_clip_moves_to_the_target_quantile_of_the_update_norms(ten):
    clip, path = 0.5, []
    for seed in range(40):
        dp = run(ten, clip, seed=seed).record["dp"]
        assert dp["clipping_norm"] == clip
        clip = dp["next_clipping_norm"]
        path.append(clip)
    # From 0.5, far below every norm, up to about the median of 1..10 (noisy count).
    assert path[0] > 0.5 and path[5] > path[0]
    assert 3.5 < float(np.mean(path[-15:])) < 7.5


def test_a_clip_above_every_norm_comes_down(ten):
    dp = run(ten, 50.0).record["dp"]
    assert dp["next_clipping_norm"] < 50.0


def test_the_next_clip_follows_the_papers_update_with_the_count_noised_from_the_seed(ten):
    dp = run(ten, 4.5, seed=11).record["dp"]
    # 4 of the 10 norms are <= 4.5; the count's noise is its own stream of the round's seed.
    noise = np.random.default_rng([11, 1]).normal(0.0, 0.5)
    b = (4 + noise) / 10
    assert dp["noisy_unclipped_fraction"] == pytest.approx(b, rel=1e-12)
    assert dp["next_clipping_norm"] == pytest.approx(4.5 * math.exp(-0.2 * (b - 0.5)), rel=1e-12)


def test_the_sums_noise_uses_the_effective_multiplier_so_the_total_cost_is_the_budgets(ten):
    dp = run(ten, 4.0, noise=1.0, adaptive={**ADAPTIVE, "clipped_count_stddev": 2.0}).record["dp"]
    z_sum = (1.0**-2 - (2 * 2.0) ** -2) ** -0.5
    assert dp["noise_multiplier"] == 1.0
    assert dp["sum_noise_multiplier"] == pytest.approx(z_sum)
    assert dp["noise_std"] == pytest.approx(z_sum * 4.0 / 10)


def test_a_round_is_the_same_bytes_and_the_same_next_clip_for_the_same_seed(ten):
    one, again, other = run(ten, 3.0, seed=5), run(ten, 3.0, seed=5), run(ten, 3.0, seed=6)
    assert one.digest == again.digest != other.digest
    assert one.record["dp"] == again.record["dp"]
    assert one.record["dp"]["next_clipping_norm"] != other.record["dp"]["next_clipping_norm"]


def test_only_the_noisy_fraction_is_published_not_which_clusters_were_clipped(ten):
    record = run(ten, 3.0).record
    assert "clipped" not in record
    assert set(record["dp"]) == {
        "clipping_norm",
        "next_clipping_norm",
        "noise_multiplier",
        "sum_noise_multiplier",
        "clipped_count_stddev",
        "noisy_unclipped_fraction",
        "target_quantile",
        "learning_rate",
        "noise_std",
        "seed",
    }


def test_a_count_noise_that_would_spend_the_whole_budget_is_refused(ten):
    with pytest.raises(ValueError) as err:
        sum_noise_multiplier(1.0, 0.5)
    assert str(err.value) == (
        "clippedCountStddev 0.5 must be above noiseMultiplier / 2 = 0.5: "
        "the noisy count would spend the whole privacy budget"
    )
    with pytest.raises(StrategyOptionsError) as err:
        run(ten, 1.0, noise=1.0)
    assert str(err.value) == (
        "strategy 'dp-fixed-clipping': options.adaptive: clippedCountStddev 0.5 must be above "
        "noiseMultiplier / 2 = 0.5: the noisy count would spend the whole privacy budget"
    )
