"""A round that fails below quorum names its round once, whoever wrote the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from fl_gitops.blueprint import load_blueprint
from fl_gitops.reconcile._decide import Finish, Observed, below_quorum
from fl_gitops.render import RoundState

BLUEPRINT = Path(__file__).resolve().parents[2] / "blueprints" / "digits-fedavg.yaml"
MODEL = "sha256:" + "0" * 64


@pytest.fixture(scope="module")
def seen_after_the_last_retry() -> Observed:
    blueprint = load_blueprint(BLUEPRINT)
    last = blueprint.completion.retries + 1
    return Observed(
        blueprint=blueprint,
        state=RoundState(round=3, model_digest=MODEL, attempt=last),
        roster=("cluster-001",),
        roster_from_hub=True,
        decided=("cluster-001",),
        statuses={},
        elapsed_seconds=0.0,
    )


def test_the_aggregations_own_round_prefix_is_not_repeated(seen_after_the_last_retry):
    action = below_quorum(seen_after_the_last_retry, "round 3: 7 valid update(s), at least 8")
    assert action == Finish("Failed", "round 3: 7 valid update(s), at least 8")


def test_a_reason_without_its_round_gets_it(seen_after_the_last_retry):
    action = below_quorum(seen_after_the_last_retry, "2 of 10 clusters done")
    assert action == Finish("Failed", "round 3: 2 of 10 clusters done")
