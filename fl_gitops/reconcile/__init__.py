"""The hub's reconcile job: one level-triggered pass from Git, hub and store to a commit."""

from fl_gitops.reconcile._decide import (
    Action,
    Aggregate,
    Finish,
    Observed,
    RetryRound,
    StartRound,
    Wait,
    decide,
)
from fl_gitops.reconcile._pass import PassHooks, PassResult, reconcile_once
from fl_gitops.reconcile._rollback import rollback, round_start_commit

__all__ = [
    "Action",
    "Aggregate",
    "Finish",
    "Observed",
    "PassHooks",
    "PassResult",
    "RetryRound",
    "StartRound",
    "Wait",
    "decide",
    "reconcile_once",
    "rollback",
    "round_start_commit",
]
