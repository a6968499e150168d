"""targetEpsilon in the pure decision: no round starts that would take epsilon past it."""

from __future__ import annotations

from pathlib import Path

import pytest

from fl_gitops.blueprint import load_blueprint
from fl_gitops.reconcile._decide import Finish, Observed, StartRound, decide
from fl_gitops.render import RoundState

STOCK = Path(__file__).resolve().parents[2] / "blueprints" / "digits-fedavg.yaml"
MODEL = "sha256:" + "0" * 64


@pytest.fixture(scope="module")
def blueprint(tmp_path_factory):
    path = tmp_path_factory.mktemp("bp") / "dp.yaml"
    text = STOCK.read_text().replace(
        "    options: {}\n", "    options: {}\n    dp: {clipNorm: 1.0, targetEpsilon: 10}\n"
    )
    path.write_text(text)
    return load_blueprint(path)


def _seen(blueprint, spent, round_=4) -> Observed:
    return Observed(
        blueprint=blueprint,
        state=RoundState(round=round_, model_digest=MODEL),
        roster=None,
        roster_from_hub=False,
        decided=("cluster-001", "cluster-002"),
        statuses={},
        elapsed_seconds=0.0,
        spent=spent,
    )


def test_a_round_that_fits_the_budget_starts(blueprint):
    # Two rounds at z = 1 spent 7.08; a third brings it to 9.01 <= 10.
    assert decide(_seen(blueprint, ((1.0, 1.0, 2),), 3)) == StartRound(
        ("cluster-001", "cluster-002")
    )


def test_a_round_that_would_exceed_the_budget_completes_the_experiment(blueprint):
    # Three rounds spent 9.01; a fourth would bring it to 10.73 > 10.
    assert decide(_seen(blueprint, ((1.0, 1.0, 3),))) == Finish(
        "Completed", "privacy budget reached: round 4 would spend epsilon 10.73 > targetEpsilon 10"
    )
