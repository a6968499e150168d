"""What a reconcile pass should do next: a pure function of the state it observed.

Everything the pass knows (the blueprint, the round state and roster in Git, each roster
cluster's Job status on the hub, how long the round has run) goes in; one action comes
out. Keeping the decision pure makes the completion policy testable without Git, a hub
or a store, and makes the pass level-triggered: the same observations always give the
same action, however often the pass is killed and run again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fl_gitops.aggregate.strategies._accountant import Run
from fl_gitops.blueprint import Blueprint
from fl_gitops.hub import ClusterStatus, JobState
from fl_gitops.reconcile._privacy import budget_stop
from fl_gitops.render import RoundState

__all__ = [
    "Action",
    "Aggregate",
    "Finish",
    "Observed",
    "RetryRound",
    "StartRound",
    "Wait",
    "decide",
]


@dataclass(frozen=True)
class Observed:
    """What a pass saw, gathered before deciding."""

    blueprint: Blueprint
    state: RoundState | None  # None: only a blueprint is committed so far
    roster: tuple[str, ...] | None  # the current round's roster, None if not chosen yet
    roster_from_hub: bool
    decided: tuple[str, ...]  # the hub's PlacementDecisions now
    statuses: Mapping[str, ClusterStatus]  # roster cluster -> its Job's status
    elapsed_seconds: float  # since the roster was committed
    # The DP budget spent by the rounds aggregated so far (the last round record's runs).
    spent: tuple[Run, ...] = ()


@dataclass(frozen=True)
class Wait:
    """Nothing to commit yet."""

    reason: str


@dataclass(frozen=True)
class StartRound:
    """Commit the current round with this roster (the hub's decisions)."""

    roster: tuple[str, ...]


@dataclass(frozen=True)
class Aggregate:
    """Aggregate the round from these clusters' updates, then move on."""

    clusters: tuple[str, ...]
    failed: tuple[str, ...]
    timed_out: bool


@dataclass(frozen=True)
class RetryRound:
    """Below quorum: run the round again, once, with a fresh roster."""

    roster: tuple[str, ...]
    reason: str


@dataclass(frozen=True)
class Finish:
    """The experiment ends here: Failed, or Completed when the privacy budget would not
    cover the next round (Completed also comes after the last aggregation)."""

    phase: str
    reason: str


Action = Wait | StartRound | Aggregate | RetryRound | Finish


def _names(statuses: Mapping[str, ClusterStatus], state: JobState) -> tuple[str, ...]:
    return tuple(sorted(c for c, s in statuses.items() if s.state == state))


def decide(seen: Observed) -> Action:
    """The one next step for the experiment, from what the pass observed."""
    blueprint = seen.blueprint
    state = seen.state
    if state is not None and state.phase != "Running":
        return Wait(f"experiment is {state.phase}")
    if seen.roster is None or not seen.roster_from_hub:
        # No roster yet, or only an offline preview's: the hub's decisions win.
        if not seen.decided:
            return Wait("the hub has no PlacementDecisions for this experiment yet")
        stop = budget_stop(blueprint, seen.spent, state.round if state else 1)
        if stop is not None:
            return Finish("Completed", stop)
        return StartRound(tuple(seen.decided))
    roster = seen.roster
    statuses = seen.statuses
    succeeded = _names(statuses, JobState.SUCCEEDED)
    failed = _names(statuses, JobState.FAILED)
    finished = len(succeeded) + len(failed) == len(roster)
    timed_out = seen.elapsed_seconds >= blueprint.completion.timeout_seconds
    quorum = min(blueprint.completion.min_clusters, len(roster))
    secure = blueprint.strategy.secure_aggregation
    if secure is not None and state is not None and state.secagg == "reveal":
        # The round's contributors are its survivors, fixed already; what the reveal needs
        # is threshold holders of each secret, which the unmasking checks secret by secret.
        quorum = min(int(secure["threshold"]), len(roster))
    if len(succeeded) == len(roster):
        return Aggregate(succeeded, failed, timed_out=False)
    if (finished or timed_out) and len(succeeded) >= quorum:
        return Aggregate(succeeded, failed, timed_out=timed_out and not finished)
    if finished or timed_out:
        why = (
            f"{len(succeeded)} of {len(roster)} clusters succeeded"
            f"{' before the timeout' if timed_out else ''}, {len(failed)} failed; "
            f"quorum is {quorum}"
        )
        if secure is not None and state is not None and state.secagg is not None:
            why = f"secure aggregation, {state.secagg}: {why}; nothing unmasked"
        return below_quorum(seen, why)
    waiting = len(roster) - len(succeeded) - len(failed)
    return Wait(
        f"{len(succeeded)} succeeded, {len(failed)} failed, {waiting} still running "
        f"({seen.elapsed_seconds:.0f}s of {blueprint.completion.timeout_seconds:.0f}s)"
    )


def below_quorum(seen: Observed, why: str) -> Action:
    """Retry the round with a fresh roster while retries remain, else fail the experiment."""
    state = seen.state
    attempt = state.attempt if state is not None else 1
    if attempt <= seen.blueprint.completion.retries and seen.decided:
        return RetryRound(tuple(seen.decided), why)
    prefix = f"round {state.round if state else 1}: "
    # The aggregation's own refusal already names its round: say it once.
    return Finish("Failed", why if why.startswith(prefix) else prefix + why)


def roster_statuses(roster: Sequence[str], statuses: Mapping[str, ClusterStatus]) -> dict[str, str]:
    """Each roster cluster's state as a word, for status output and round records."""
    return {c: (statuses[c].state.value if c in statuses else "unknown") for c in roster}
