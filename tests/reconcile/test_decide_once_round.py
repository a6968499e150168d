"""A round that fails below quorum names its round once, whoever wrote the reason."""

from __future__ import annotations

from fl_gitops.reconcile._decide import Finish, below_quorum


class _Completion:
    retries = 0


class _Blueprint:
    completion = _Completion()


class _State:
    round = 3
    attempt = 1


class _Seen:
    blueprint = _Blueprint()
    state = _State()
    decided = ("cluster-001",)


def test_the_aggregations_own_round_prefix_is_not_repeated():
    action = below_quorum(_Seen(), "round 3: 7 valid update(s), at least 8 needed")  # type: ignore[arg-type]
    assert action == Finish("Failed", "round 3: 7 valid update(s), at least 8 needed")


def test_a_reason_without_its_round_gets_it():
    action = below_quorum(_Seen(), "2 of 10 clusters done")  # type: ignore[arg-type]
    assert action == Finish("Failed", "round 3: 2 of 10 clusters done")
