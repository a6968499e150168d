"""Each strategy against a reference computed by hand on three 4-element updates."""

from __future__ import annotations

import numpy as np
import pytest

from fl_gitops.aggregate import NotEnoughUpdates, aggregate_round
from fl_gitops.aggregate.strategies import (
    STRATEGIES,
    options_schema,
    strategy_names,
    validate_options,
)
from fl_gitops.aggregate.strategies.krum import krum_scores
from fl_gitops.errors import StrategyOptionsError
from fl_gitops.tensors import load_bytes, serialize

# The base is 0; a and b are close, c is far. Weights (num_examples): 1, 1, 2.
A = [1.0, 2.0, 3.0, 4.0]
B = [3.0, 4.0, 5.0, 6.0]
C = [20.0, 0.0, -20.0, 2.0]
# (A + B + 2C) / 4, the weighted mean, which is also Δ (the base is 0).
MEAN = [11.0, 1.5, -8.0, 3.5]


@pytest.fixture
def three(round_files):
    rf = round_files({"w": np.zeros(4, dtype=np.float32)})
    rf.add("c", {"w": np.array(C, np.float32)}, num_examples=2, metrics={"acc": 0.9})
    rf.add("a", {"w": np.array(A, np.float32)}, num_examples=1, metrics={"acc": 0.5})
    rf.add("b", {"w": np.array(B, np.float32)}, num_examples=1, metrics={"acc": 0.7})
    return rf


def run(rf, strategy, options=None, state=None, seed=0):
    return aggregate_round(
        rf.base_path,
        rf.updates(),
        strategy=strategy,
        round=1,
        options=options,
        state=state,
        seed=seed,
    )


def new_w(result):
    return load_bytes(result.model)["w"]


def state_file(strategy, **families):
    tensors = {f"{name}/w": np.array(v, np.float32) for name, v in families.items()}
    return serialize(tensors, {"strategy": strategy, "round": "0"})


@pytest.mark.parametrize("strategy", ["fedavg", "fedprox"])
def test_fedavg_and_fedprox_take_the_mean_weighted_by_examples(three, strategy):
    result = run(three, strategy)
    np.testing.assert_array_equal(new_w(result), np.array(MEAN, np.float32))
    assert result.weights == {"a": 0.25, "b": 0.25, "c": 0.5}
    assert result.contributors == ["a", "b", "c"]
    assert result.metrics == pytest.approx({"acc": (0.5 + 0.7 + 2 * 0.9) / 4})
    assert result.new_state is None


def test_fedmedian_takes_each_coordinates_median(three):
    np.testing.assert_array_equal(new_w(run(three, "fedmedian")), np.float32([3, 2, 3, 4]))


def test_fedtrimmedavg_cuts_one_value_at_each_end_when_beta_k_reaches_one(three):
    # floor(0.34 * 3) = 1: drop the min and max of each coordinate, keep the middle one.
    result = run(three, "fedtrimmedavg", {"beta": 0.34})
    np.testing.assert_array_equal(new_w(result), np.float32([3, 2, 3, 4]))


def test_fedtrimmedavg_with_nothing_to_cut_is_the_unweighted_mean(three):
    # floor(0.2 * 3) = 0: (A + B + C) / 3.
    result = run(three, "fedtrimmedavg", {"beta": 0.2})
    np.testing.assert_array_equal(new_w(result), np.float32([8, 2, -4, 4]))


def test_krum_keeps_the_update_closest_to_its_neighbours(three):
    # Squared distances: a-b 16, a-c 898, b-c 946. With f=0 each score is the distance to
    # the single closest other update: a 16, b 16, c 898; the tie goes to a (by name).
    result = run(three, "krum", {"f": 0})
    np.testing.assert_array_equal(new_w(result), np.float32(A))
    assert result.contributors == ["a"]
    assert result.record["krum"] == {
        "f": 0,
        "m": 1,
        "scores": {"a": 16.0, "b": 16.0, "c": 898.0},
        "selected": ["a"],
    }


def test_multikrum_averages_the_m_best_scored_updates(three):
    result = run(three, "multikrum", {"f": 0, "m": 2})
    np.testing.assert_array_equal(new_w(result), np.float32([2, 3, 4, 5]))
    assert result.weights == {"a": 0.5, "b": 0.5}


def test_krum_needs_two_f_plus_three_updates(three):
    with pytest.raises(NotEnoughUpdates) as exc:
        run(three, "krum", {"f": 1})
    assert str(exc.value) == "round 1: krum with f=1 needs at least 5 valid updates, got 3"


def test_krum_scores_sum_the_n_minus_f_minus_2_closest_distances():
    d = np.array([[0, 1, 4, 9], [1, 0, 1, 4], [4, 1, 0, 1], [9, 4, 1, 0]], dtype=float)
    np.testing.assert_array_equal(krum_scores(d, 0), [1 + 4, 1 + 1, 1 + 1, 1 + 4])
    np.testing.assert_array_equal(krum_scores(d, 1), [1, 1, 1, 1])


def test_fedavgm_first_round_is_fedavg_and_returns_the_momentum(three):
    result = run(three, "fedavgm")
    np.testing.assert_array_equal(new_w(result), np.float32(MEAN))
    state = load_bytes(result.new_state)
    assert list(state) == ["v/w"]
    np.testing.assert_array_equal(state["v/w"], np.float32(MEAN))


def test_fedavgm_adds_the_decayed_momentum_from_its_state(three):
    # v = 0.9 * 1 + Δ; new = base + 1.0 * v.
    state = state_file("fedavgm", v=[1, 1, 1, 1])
    result = run(three, "fedavgm", state=state)
    np.testing.assert_allclose(new_w(result), [11.9, 2.4, -7.1, 4.4], rtol=1e-6)
    assert result.record["state"] == {"names": ["v"], "resumed": True}


def test_fedadam_first_step(three):
    # m = 0.5 Δ; v = 0.25 Δ²; new = 1.0 * m / (sqrt(v) + 1).
    options = {"eta": 1.0, "beta_1": 0.5, "beta_2": 0.75, "tau": 1.0}
    result = run(three, "fedadam", options)
    np.testing.assert_allclose(
        new_w(result), [5.5 / 6.5, 0.75 / 1.75, -4 / 5, 1.75 / 2.75], rtol=1e-6
    )
    state = load_bytes(result.new_state)
    np.testing.assert_allclose(state["m/w"], [5.5, 0.75, -4, 1.75])
    np.testing.assert_allclose(state["v/w"], [30.25, 0.5625, 16, 3.0625])


def test_fedyogi_moves_v_towards_delta_squared_by_its_sign(three):
    # v = v0 - 0.25 Δ² sign(v0 - Δ²): 200 - 30.25, then 0 + 0.5625, 0 + 16, 0 + 3.0625.
    options = {"eta": 1.0, "beta_1": 0.5, "beta_2": 0.75, "tau": 1.0}
    state = state_file("fedyogi", m=[0, 0, 0, 0], v=[200, 0, 0, 0])
    result = run(three, "fedyogi", options, state=state)
    v = [169.75, 0.5625, 16, 3.0625]
    m = [5.5, 0.75, -4, 1.75]
    np.testing.assert_allclose(
        new_w(result), [mi / (vi**0.5 + 1) for mi, vi in zip(m, v, strict=True)], rtol=1e-6
    )
    np.testing.assert_allclose(load_bytes(result.new_state)["v/w"], v)


def test_fedadagrad_accumulates_delta_squared(three):
    # beta_1 = 0: m = Δ; v = 0 + Δ²; new = Δ / (|Δ| + 1).
    result = run(three, "fedadagrad", {"eta": 1.0, "tau": 1.0})
    np.testing.assert_allclose(new_w(result), [11 / 12, 1.5 / 2.5, -8 / 9, 3.5 / 4.5], rtol=1e-6)


@pytest.fixture
def clipped(round_files):
    rf = round_files({"w": np.zeros(4, dtype=np.float32)})
    rf.add("a", {"w": np.float32([3, 4, 0, 0])}, num_examples=1)  # norm 5
    rf.add("b", {"w": np.float32([0, 0, 0, 1])}, num_examples=5)  # norm 1
    rf.add("c", {"w": np.float32([0, 0, 30, 40])}, num_examples=9)  # norm 50: clipped to 5
    return rf


def test_dp_clips_each_update_and_averages_with_equal_weights(clipped):
    options = {"clipping_norm": 5.0, "noise_multiplier": 0.0}
    result = run(clipped, "dp-fixed-clipping", options)
    # c becomes [0, 0, 3, 4]; the mean of a, b and clipped c, unweighted.
    np.testing.assert_allclose(new_w(result), [1, 4 / 3, 1, 5 / 3], rtol=1e-6)
    assert result.record["clipped"] == ["c"]
    assert result.record["dp"] == {
        "clipping_norm": 5.0,
        "noise_multiplier": 0.0,
        "noise_std": 0.0,
        "seed": 0,
    }


def test_dp_noise_is_calibrated_to_the_clip_and_fixed_by_the_seed(clipped):
    options = {"clipping_norm": 5.0, "noise_multiplier": 1.0}
    one = run(clipped, "dp-fixed-clipping", options, seed=7)
    again = run(clipped, "dp-fixed-clipping", options, seed=7)
    other = run(clipped, "dp-fixed-clipping", options, seed=8)
    assert one.digest == again.digest != other.digest
    assert one.record["dp"]["noise_std"] == pytest.approx(5.0 / 3)
    noise = new_w(one) - np.float32([1, 4 / 3, 1, 5 / 3])
    expected = np.random.default_rng(7).normal(0.0, 5.0 / 3, size=4)
    np.testing.assert_allclose(noise, expected, rtol=1e-5, atol=1e-6)


def test_every_strategy_has_a_schema_that_accepts_its_defaults():
    assert strategy_names() == sorted(STRATEGIES)
    for name in strategy_names():
        schema = options_schema(name)
        assert schema["type"] == "object"
        assert schema["additionalProperties"] is False
        if name != "dp-fixed-clipping":
            validate_options(name, {})


def test_validate_options_fills_in_defaults():
    assert validate_options("fedadam", {"eta": 0.5}) == {
        "beta_1": 0.9,
        "beta_2": 0.99,
        "eta": 0.5,
        "eta_l": 0.1,
        "tau": 1e-9,
    }
    assert validate_options("dp-fixed-clipping", {"clipping_norm": 2, "inner": "fedavgm"}) == {
        "clipping_norm": 2,
        "inner": "fedavgm",
        "inner_options": {"server_learning_rate": 1.0, "server_momentum": 0.9},
        "noise_multiplier": 1.0,
    }


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        (
            "fedadam",
            {"beta_1": 1.5},
            "strategy 'fedadam': options.beta_1: expected a number >= 0 and < 1, got 1.5",
        ),
        (
            "fedavg",
            {"mu": 1},
            "strategy 'fedavg': options: unknown option 'mu'; expected no options",
        ),
        (
            "fedprox",
            {"mu": 1, "lr": 2},
            "strategy 'fedprox': options: unknown option 'lr'; expected mu",
        ),
        ("krum", {"f": -1}, "strategy 'krum': options.f: expected an integer >= 0, got -1"),
        ("krum", {"f": 1.5}, "strategy 'krum': options.f: expected integer, got 1.5"),
        (
            "fedtrimmedavg",
            {"beta": 0.5},
            "strategy 'fedtrimmedavg': options.beta: expected a number >= 0 and < 0.5, got 0.5",
        ),
        (
            "dp-fixed-clipping",
            {},
            "strategy 'dp-fixed-clipping': options: missing required option 'clipping_norm'",
        ),
        (
            "dp-fixed-clipping",
            {"clipping_norm": 1, "inner": "krum"},
            "strategy 'dp-fixed-clipping': options.inner: expected one of fedavg, fedavgm, "
            "fedprox, fedadam, fedyogi, fedadagrad, got 'krum'",
        ),
        (
            "dp-fixed-clipping",
            {"clipping_norm": 1, "inner": "fedprox", "inner_options": {"mu": -1}},
            "strategy 'dp-fixed-clipping': options.inner_options.mu: "
            "expected a number >= 0, got -1",
        ),
        ("fedavg", [1], "strategy 'fedavg': options: expected a mapping, got [1]"),
        (
            "fedsgd",
            {},
            "strategy 'fedsgd': unknown; expected one of dp-fixed-clipping, fedadagrad, "
            "fedadam, fedavg, fedavgm, fedmedian, fedprox, fedtrimmedavg, fedyogi, krum, "
            "multikrum",
        ),
    ],
)
def test_bad_options_name_the_option_and_what_was_expected(name, options, message):
    with pytest.raises(StrategyOptionsError) as exc:
        validate_options(name, options)
    assert str(exc.value) == message
