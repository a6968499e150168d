"""The privacy accountant: epsilon at delta over a DP experiment's rounds (dp-accounting's RDP)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

from fl_gitops.aggregate.strategies._accountant import (
    epsilon,
    epsilon_of_runs,
    extend_runs,
)

# dp-accounting's RDP accountant's default orders (rdp_privacy_accountant.DEFAULT_RDP_ORDERS).
ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(11, 64)) + [128, 256, 512, 1024]


def closed_form(z: float, rounds: int, delta: float) -> float:
    """The Gaussian mechanism at sampling rate 1, by hand: RDP alpha / (2 z^2) a round,
    added over the rounds, turned into epsilon by the conversion of Canonne, Kamath and
    Steinke 2020 (Proposition 12, the one dp-accounting uses), at the best order."""
    best = math.inf
    for a in ORDERS:
        rdp = rounds * a / (2 * z * z)
        eps = rdp + math.log1p(-1 / a) - (math.log(delta) + math.log(a)) / (a - 1)
        best = min(best, max(eps, 0.0))
    return best


@pytest.mark.parametrize(("z", "rounds"), [(1.0, 1), (1.1, 10), (2.0, 30), (0.7, 5)])
def test_epsilon_at_sampling_rate_one_is_the_gaussian_mechanisms_closed_form(z, rounds):
    got = epsilon([(z, 1.0)] * rounds, 1e-5)
    assert got == pytest.approx(closed_form(z, rounds, 1e-5), rel=1e-9)


def test_epsilon_grows_with_every_round_and_shrinks_with_more_noise():
    spent = [epsilon([(1.0, 1.0)] * n, 1e-5) for n in range(1, 8)]
    assert spent == sorted(spent) and len(set(spent)) == len(spent)
    assert epsilon([(2.0, 1.0)] * 5, 1e-5) < epsilon([(1.0, 1.0)] * 5, 1e-5)


def test_sampling_fewer_clusters_spends_less_than_taking_them_all():
    assert epsilon([(1.0, 0.1)] * 10, 1e-5) < epsilon([(1.0, 1.0)] * 10, 1e-5) / 3


def test_epsilon_is_the_same_number_every_time():
    rounds = [(1.0, 1.0)] * 3 + [(1.5, 0.5)] * 4
    assert epsilon(rounds, 1e-6) == epsilon(list(rounds), 1e-6)


def test_runs_merge_identical_rounds_and_give_the_epsilon_of_the_rounds_they_hold():
    runs: list = []
    for z, q in [(1.0, 1.0), (1.0, 1.0), (2.0, 1.0), (1.0, 1.0)]:
        runs = extend_runs(runs, z, q)
    assert runs == [(1.0, 1.0, 2), (2.0, 1.0, 1), (1.0, 1.0, 1)]
    rounds = [(1.0, 1.0), (1.0, 1.0), (2.0, 1.0), (1.0, 1.0)]
    assert epsilon_of_runs(runs, 1e-5) == pytest.approx(epsilon(rounds, 1e-5), rel=1e-12)


def test_no_noise_gives_no_guarantee_and_no_rounds_spend_nothing():
    assert epsilon([(1.0, 1.0), (0.0, 1.0)], 1e-5) == math.inf
    assert epsilon([], 1e-5) == 0.0


@pytest.mark.parametrize(
    ("rounds", "delta", "message"),
    [
        ([(1.0, 1.0)], 0.0, "delta: expected a number in (0, 1), got 0.0"),
        (
            [(1.0, 1.5)],
            1e-5,
            "each run: expected noise_multiplier >= 0, sampling_rate in (0, 1] and "
            "rounds >= 1, got (1.0, 1.5, 1)",
        ),
    ],
)
def test_bad_arguments_are_refused_by_name(rounds, delta, message):
    with pytest.raises(ValueError) as err:
        epsilon(rounds, delta)
    assert str(err.value) == message


def test_the_cli_and_loading_a_dp_blueprint_without_a_target_do_not_import_dp_accounting(
    tmp_path,
):
    stock = Path(__file__).resolve().parents[2] / "blueprints" / "digits-fedavg.yaml"
    path = tmp_path / "dp.yaml"
    path.write_text(
        stock.read_text().replace("    options: {}\n", "    options: {}\n    dp: {clipNorm: 1.0}\n")
    )
    code = (
        "import sys\n"
        "from fl_gitops.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "from fl_gitops.blueprint import load_blueprint\n"
        f"load_blueprint({str(path)!r})\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'dp_accounting'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
