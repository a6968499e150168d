"""A round aggregated by the hub's shards (``spec.aggregation.shards > 1``), level-triggered.

Why a module of its own: one pod's round is one call (``aggregate_from_store``); a sharded
round spans passes. Each pass writes the round's inputs document into the store (the same
bytes every time: content-addressed), asks the hub for the shards' Job by a name made
from the inputs' digest (``ShardRunner.shard_job`` creates it when it is not there), and
goes on from what the Job reports: not done, the pass ends without a commit; done, the
shards' files are merged into the round one pod would have made; failed, the round is
an aggregation failure, retried or failed by the completion policy. A pass killed at any
point finds the same document, the same Job and its finished shards on the next run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fl_gitops.aggregate import AggregateResult, NotEnoughUpdates
from fl_gitops.aggregate._inputs import collect_inputs, inputs_name
from fl_gitops.aggregate._shards import (
    ShardDirError,
    merge_shards,
    read_shortfall,
    shard_plan_of,
)
from fl_gitops.aggregate.checks import Limits
from fl_gitops.blueprint import Blueprint
from fl_gitops.errors import FlGitopsError, InputError
from fl_gitops.hub import SHARD_MESSAGE_ENV, Hub, ShardJobSpec, ShardJobState, ShardRunner
from fl_gitops.render import Names, RoundState
from fl_gitops.render._shardjob import TERMINATION_MESSAGE_PATH
from fl_gitops.reports import HubReport
from fl_gitops.store import ModelStore

__all__ = [
    "ShardedRound",
    "ShardsFailed",
    "ShardsRunning",
    "aggregate_sharded",
    "collect_done_shard_dirs",
    "shard_dir_name",
    "shard_job_spec",
    "shards_in_progress",
]

# The shard container's own environment, as the reconcile CronJob's (a read-only root), and
# where it writes its ending message: the pod's termination message, which the kubelet
# reports through the hub (the merge checks the shards' files against it).
_ENV: tuple[Mapping[str, Any], ...] = (
    {"name": "HOME", "value": "/tmp"},
    {"name": SHARD_MESSAGE_ENV, "value": TERMINATION_MESSAGE_PATH},
)


class ShardsFailed(FlGitopsError):
    """The shards' Job failed (its deadline, or a shard out of retries): the round's
    aggregation failed, with the hub's reason. ``job``: its (namespace, name)."""

    def __init__(self, message: str, job: tuple[str, str], out: str) -> None:
        super().__init__(message)
        self.job = job
        self.out = out


@dataclass(frozen=True)
class ShardsRunning:
    """The shards' Job is not done yet: the pass ends without a commit."""

    job: ShardJobState
    shards: int
    round: int

    @property
    def message(self) -> str:
        done = len(self.job.succeeded)
        return f"aggregating round {self.round}: {done} of {self.shards} shards done"


@dataclass(frozen=True)
class ShardedRound:
    """What a pass got from the shards: the running Job, or the merged round."""

    job: ShardJobSpec
    running: ShardsRunning | None = None
    result: AggregateResult | None = None
    # The shards' directory in the round's aggregation folder: removed once published.
    out: str = ""


def shard_job_spec(
    blueprint: Blueprint,
    state: RoundState,
    *,
    inputs_uri: str,
    inputs_digest: str,
    out: str,
) -> ShardJobSpec:
    """The Indexed Job of the round's shards: a pure function of the blueprint, the round
    and its inputs (so a later pass builds the same spec and finds the same Job).

    ``args`` follow the container's command ``fl-gitops``, as the reconcile CronJob's do.
    """
    names = Names(blueprint.name, blueprint.namespace, state.round, state.attempt)
    shards = blueprint.aggregation.shards
    args = (
        "aggregate", "--inputs", inputs_uri, "--inputs-digest", inputs_digest,
        "--shard", f"auto/{shards}", "--out", out,
    )  # fmt: skip
    return ShardJobSpec(
        namespace=blueprint.namespace,
        name=names.aggregation_job(inputs_digest),
        experiment=blueprint.name,
        round=state.round,
        shards=shards,
        image=blueprint.reconcile.image,
        args=args,
        service_account=names.aggregation,
        active_deadline_seconds=blueprint.aggregation.active_deadline_seconds,
        backoff_limit_per_index=blueprint.aggregation.backoff_limit_per_index,
        resources=dict(blueprint.aggregation.resources),
        image_pull_secrets=tuple(blueprint.reconcile.image_pull_secrets),
        store_secret=blueprint.store.secret_ref,
        env=_ENV,
    )


def aggregate_sharded(
    hub: Hub,
    store: ModelStore,
    blueprint: Blueprint,
    state: RoundState,
    *,
    strategy: str,
    options: Mapping[str, Any],
    roster: tuple[str, ...] | None,
    limits: Limits,
    seed: int,
    clusters: tuple[str, ...],
    reported: Mapping[str, HubReport],
    after_job: Any = None,
) -> ShardedRound:
    """One pass's step of a sharded round (see the module docstring).

    Returns:
        The Job's spec with either ``running`` (not done) or ``result``: the round as
        ``aggregate_from_store`` returns it, its record naming the shards (N, plan id).

    Raises:
        InputError: the hub cannot run shards (it is no ``ShardRunner``).
        NotEnoughUpdates: the shards found too few valid updates (as one pod would).
        ShardsFailed: the Job failed (the hub's reason), or the shards' files in the store
            are not the ones the shards reported through the hub as they ended.
        HubError, StoreError: a side failed; the next pass starts over.
    """
    shards = blueprint.aggregation.shards
    if not isinstance(hub, ShardRunner):
        raise InputError(
            f"{blueprint.file}: spec.aggregation.shards: {shards} shards need a hub that "
            f"runs the shards' Job; {type(hub).__name__} cannot (use shards: 1)"
        )
    inputs = collect_inputs(
        store, state.round, state.model_digest, strategy=strategy, options=options,
        roster=roster, limits=limits, seed=seed, clusters=clusters, reported=reported,
    )  # fmt: skip
    digest = inputs.digest
    uri = store.put_aggregation_file(state.round, inputs_name(digest), inputs.to_bytes())
    name = shard_dir_name(state, digest)
    out = store.aggregation_uri(state.round, name)
    spec = shard_job_spec(blueprint, state, inputs_uri=uri, inputs_digest=digest, out=out)
    job = hub.shard_job(spec)
    if after_job is not None:
        after_job()
    if job.failed:
        reason = job.reason or "the shards' Job failed"
        raise ShardsFailed(
            f"round {state.round}: the aggregation shards failed: {reason}",
            (spec.namespace, spec.name),
            name,
        )
    if not job.complete:
        return ShardedRound(spec, running=ShardsRunning(job, shards, state.round), out=name)
    # Only the files each shard reported through the hub as it ended (the digest of the
    # one it ended with): a bucket writer's swap after the Job is an aggregation failure,
    # retried by the completion policy into a fresh directory, never a merged round.
    try:
        shortfall = read_shortfall(out, shards, messages=job.messages)
        result = None if shortfall is not None else merge_shards([out], messages=job.messages)
    except ShardDirError as exc:
        raise ShardsFailed(
            f"round {state.round}: the aggregation shards' files in the store are not the "
            f"ones they reported: {exc}",
            (spec.namespace, spec.name),
            name,
        ) from None
    if shortfall is not None:
        raise NotEnoughUpdates(
            shortfall.round,
            valid=shortfall.valid,
            needed=shortfall.needed,
            rejected=shortfall.rejected,
            requirement=shortfall.requirement,
        )
    assert result is not None
    record = {
        **result.record,
        "authority": "hub",
        "shards": {"of": shards, "plan": shard_plan_of(out, shards)},
    }
    return ShardedRound(spec, result=dataclasses.replace(result, record=record), out=name)


def shards_in_progress(
    hub: Any, store: ModelStore, blueprint: Blueprint, state: RoundState
) -> tuple[ShardJobSpec, ShardJobState] | None:
    """The round's shards' Job as the hub has it now, for ``status``: found by the inputs
    documents the passes wrote for this round (the Job is named by their digest), never
    created. None when shards are not in use, the hub cannot run them, or there is no Job.

    Raises:
        HubError, StoreError: a side could not be read.
    """
    if blueprint.aggregation.shards <= 1 or not isinstance(hub, ShardRunner):
        return None
    for name in reversed(store.list_aggregation(state.round)):
        if not (name.startswith("inputs-") and name.endswith(".json")):
            continue
        digest = "sha256:" + name[len("inputs-") : -len(".json")]
        out = store.aggregation_uri(state.round, shard_dir_name(state, digest))
        uri = store.aggregation_uri(state.round, name)
        spec = shard_job_spec(blueprint, state, inputs_uri=uri, inputs_digest=digest, out=out)
        job = hub.shard_job(spec, create=False)
        if job.exists:
            return spec, job
    return None


def collect_done_shard_dirs(store: ModelStore, state: RoundState) -> list[tuple[int, str]]:
    """Remove the shards' directories of the rounds Git has gone past, and return them.

    Why: a pass removes its round's directory once it has published the merge, but in
    pull-request mode the round is committed only when a person merges it, long after the
    pass; and a pass killed between its push and its cleanup never gets back to it. Each
    directory's slices add up to a whole model. So every pass looks at the round before the
    one Git is at (and at the last one, once the experiment is over): a round Git has left
    can never be merged again, and its directories are garbage. Level-triggered, and
    idempotent; the inputs documents stay, as those rounds' account.

    Raises:
        StoreError: the store could not be listed or a directory not removed.
    """
    rounds = [state.round - 1] if state.round > 1 else []
    if state.phase in ("Completed", "Failed"):
        rounds.append(state.round)
    removed = []
    for round_ in rounds:
        for name in store.list_aggregation(round_):
            if name.startswith("shards-"):
                store.remove_aggregation(round_, name)
                removed.append((round_, name))
    return removed


def shard_dir_name(state: RoundState, inputs_digest: str) -> str:
    """The shards' directory in ``rounds/<N>/aggregation/``: per attempt and inputs."""
    return f"shards-a{state.attempt}-{inputs_digest[7:23]}"
