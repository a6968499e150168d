"""One level-triggered pass of the hub's reconcile job.

Read the experiment from Git (blueprint, round state, roster), the hub (PlacementDecisions,
each roster cluster's Job status) and the store; decide one action (`_decide.decide`);
carry it out as one commit. The commit is derived inside the config repo's publish loop,
so a rejected push re-derives from the new tip: two reconcilers racing make one commit per
round, and the loser finds nothing left to do. Every write to the store is idempotent
(content-addressed models, per-round state) and aggregation is deterministic, so a pass
killed at any point and run again converges to the same tree and the same model digest.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from fl_gitops.aggregate import AggregateResult, NotEnoughUpdates, aggregate_from_store
from fl_gitops.aggregate.checks import Limits
from fl_gitops.aggregate.strategies.dp import client_clip_bound
from fl_gitops.blueprint import Blueprint, load_blueprint
from fl_gitops.contracts import API_VERSION
from fl_gitops.errors import InputError
from fl_gitops.gitops import (
    Change,
    ConfigRepo,
    PublishHooks,
    PublishResult,
    PullRequestSpec,
    round_branch_name,
    round_trailers,
)
from fl_gitops.hub import ClusterStatus, Hub, JobState, ShardJobState, ShardRunner
from fl_gitops.models import initial_model_bytes
from fl_gitops.reconcile._decide import (
    Action,
    Aggregate,
    Finish,
    Observed,
    RetryRound,
    StartRound,
    Wait,
    below_quorum,
    decide,
    roster_statuses,
)
from fl_gitops.reconcile._privacy import (
    Prior,
    bits_record,
    budget_stop,
    clips_on_clusters,
    dp_record,
    next_clip,
    read_prior,
    round_clip,
    round_options,
    spent_runs,
)
from fl_gitops.reconcile._secure import (
    after_round,
    aggregate_sum,
    next_phase,
    round_account,
    start_phase,
    unmask_round,
)
from fl_gitops.reconcile._secure import params as secure_params
from fl_gitops.reconcile._sharded import ShardsFailed, aggregate_sharded, collect_done_shard_dirs
from fl_gitops.render import (
    Layout,
    Names,
    RoundState,
    apply_changes,
    plan_changes,
    read_roster,
    read_round_state,
    read_secagg,
    render_experiment,
    yaml_document,
)
from fl_gitops.reports import UNCLIPPED_KEY, HubReport
from fl_gitops.secagg import SecAggError
from fl_gitops.secagg._loop import SecAggRound
from fl_gitops.store import ModelStore

__all__ = ["PassHooks", "PassResult", "reconcile_once"]


@dataclass
class PassHooks:
    """Points where a test can stop a pass, to prove it resumes (each may raise)."""

    after_shard_job: Callable[[], None] = lambda: None
    after_aggregate: Callable[[], None] = lambda: None
    after_model_written: Callable[[], None] = lambda: None
    after_commit: Callable[[], None] = lambda: None
    after_push: Callable[[], None] = lambda: None


@dataclass
class PassResult:
    """What one pass did.

    Attributes:
        action: the action carried out (a below-quorum aggregation is the retry or the
            finish it fell through to); match on its type.
        message: one line saying what happened.
        publish: the commit published, or None when the pass waited.
        model_digest: the new global model, after an aggregation.
        record: the round record written to ``.history/``, after an aggregation.
        shards: the shards' Job as the hub reported it, while a sharded round's
            aggregation runs (the action is then a ``Wait``).
    """

    action: Action
    message: str
    publish: PublishResult | None = None
    model_digest: str | None = None
    record: dict[str, Any] = field(default_factory=dict)
    shards: ShardJobState | None = None


def _strategy(blueprint: Blueprint) -> tuple[str, dict[str, Any]]:
    """The strategy name and options the aggregation runs, the DP wrapper included, as
    the loader built them (once, with the schema's defaults)."""
    strategy = blueprint.strategy
    return strategy.effective_name, dict(strategy.effective_options)


class _Pass:
    """The state of one pass, shared by the derive calls of its publish loop."""

    def __init__(
        self,
        repo: ConfigRepo,
        hub: Hub,
        *,
        path: str,
        now: datetime,
        open_store: Callable[[str], ModelStore],
        hooks: PassHooks,
    ) -> None:
        self.repo = repo
        self.hub = hub
        self.path = path.strip("/")
        self.now = now
        self.open_store = open_store
        self.hooks = hooks
        self.layout = Layout()
        self.result: PassResult | None = None  # set by each derive
        # Aggregation is the expensive step; a re-derive after a rejected push reuses it.
        self._aggregated: dict[tuple[Any, ...], AggregateResult] = {}
        self._planned: tuple[str, Blueprint, Observed, Action] | None = None
        # A sharded round's Job: its state while it runs; (namespace, name) once it is
        # done with (merged or failed), deleted after the pass has published.
        self.shards: ShardJobState | None = None
        self.finished_job: tuple[str, str] | None = None
        self.finished_dir: tuple[ModelStore, int, str] | None = None
        # The previous round record's DP budget and adaptive clip, read by observe.
        self.prior = Prior()
        # With secure aggregation: the round's record (secagg.yaml), read by observe.
        self.secagg: SecAggRound | None = None

    # -- observing -----------------------------------------------------------------------

    def observe(self, root: Path) -> tuple[Blueprint, Observed]:
        experiment_dir = root / self.path
        blueprint_path = experiment_dir / self.layout.blueprint
        if not blueprint_path.is_file():
            raise InputError(f"{self.path}: no {self.layout.blueprint} in the config repo")
        blueprint = load_blueprint(blueprint_path)
        state = read_round_state(experiment_dir)
        record = read_roster(experiment_dir)
        current = (state.round, state.attempt) if state else (1, 1)
        roster = None
        from_hub = False
        if record is not None and record.matches(state):
            roster = record.clusters
            from_hub = record.source == "hub"
        decided: tuple[str, ...] = ()
        statuses = {}
        if state is None or state.phase == "Running":
            decided = tuple(self.hub.decided_clusters(blueprint.namespace, blueprint.name))
            if roster is not None and from_hub:
                step = state.step if state is not None else ""
                names = Names(blueprint.name, blueprint.namespace, *current, step)
                statuses = self.hub.job_statuses(
                    work_name=names.work,
                    job_name=names.job,
                    clusters=roster,
                    experiment=blueprint.name,
                )
        started = self.repo.last_change_time(f"{self.path}/{self.layout.roster}")
        elapsed = (self.now - started).total_seconds() if started is not None else 0.0
        self.prior = Prior()
        if blueprint.strategy.dp:
            self.prior = read_prior(experiment_dir, current[0], self.layout)
        self.secagg = None
        if blueprint.strategy.secure_aggregation is not None:
            self.secagg = read_secagg(experiment_dir)
        return blueprint, Observed(
            blueprint=blueprint,
            state=state,
            roster=roster,
            roster_from_hub=from_hub,
            decided=decided,
            statuses=statuses,
            elapsed_seconds=max(elapsed, 0.0),
            spent=self.prior.runs,
        )

    # -- acting --------------------------------------------------------------------------

    def plan(self, root: Path) -> tuple[Blueprint, Observed, Action]:
        """Observe and decide, once per remote tip (a re-derive on a new tip observes again)."""
        tip = self.repo.head()
        if self._planned is None or self._planned[0] != tip:
            blueprint, seen = self.observe(root)
            self._planned = (tip, blueprint, seen, decide(seen))
        _, blueprint, seen, action = self._planned
        return blueprint, seen, action

    def derive(self, root: Path) -> Change | None:
        blueprint, seen, action = self.plan(root)
        store = self.open_store(blueprint.store.uri)
        state = seen.state or self._initial_state(blueprint, store)
        if isinstance(action, Aggregate) and blueprint.strategy.secure_aggregation is not None:
            secure = self._secure(root, blueprint, seen, state, action, store)
            if isinstance(secure, Change):
                return secure
            action = secure
        elif isinstance(action, Aggregate):
            action_or_result = self._aggregate(blueprint, seen, state, action, store)
            if isinstance(action_or_result, AggregateResult):
                return self._advance(root, blueprint, seen, state, action, action_or_result)
            action = action_or_result
        return self._act(root, blueprint, seen, state, action)

    def _initial_state(self, blueprint: Blueprint, store: ModelStore) -> RoundState:
        data = initial_model_bytes(
            blueprint.client["model"], blueprint.client["data"], source=blueprint.file
        )
        digest = store.put_model(data)
        return RoundState(round=1, model_digest=digest)

    def _act(
        self,
        root: Path,
        blueprint: Blueprint,
        seen: Observed,
        state: RoundState,
        action: Action,
    ) -> Change | None:
        exp = blueprint.name
        self.result = PassResult(action=action, message="")
        if isinstance(action, Wait):
            self.result.message = action.reason
            self.result.shards = self.shards
            return None
        if isinstance(action, StartRound) and blueprint.strategy.secure_aggregation is not None:
            start = start_phase(blueprint, state, action.roster, self.secagg)
            self._write(root, blueprint, start.state, start.roster, start.record)
            self.result.message = f"round {state.round}: {start.message}"
            body = "Roster: " + ", ".join(start.roster)
            return self._change(
                blueprint, f"fl({exp}): round {state.round} roster", start.state, body=body
            )
        if isinstance(action, StartRound):
            state = self._clipped(blueprint, state)
            self._write(root, blueprint, state, action.roster)
            self.result.message = f"round {state.round}: {len(action.roster)} clusters placed"
            body = "Roster: " + ", ".join(action.roster)
            return self._change(
                blueprint, f"fl({exp}): round {state.round} roster", state, body=body
            )
        if isinstance(action, RetryRound):
            retry = RoundState(
                round=state.round, model_digest=state.model_digest, attempt=state.attempt + 1
            )
            retry = self._clipped(blueprint, retry)
            roster = action.roster
            if blueprint.strategy.secure_aggregation is not None:
                # Fresh secrets for the new attempt: spent seeds and keys are never reused.
                start = start_phase(blueprint, retry, action.roster, self.secagg)
                self._write(root, blueprint, start.state, start.roster, start.record)
                retry, roster = start.state, start.roster
            else:
                self._write(root, blueprint, retry, roster)
            self.result.message = f"round {state.round} retried: {action.reason}"
            return self._change(
                blueprint,
                f"fl({exp}): round {state.round} retry (attempt {retry.attempt})",
                retry,
                body=f"Below quorum: {action.reason}\nRoster: " + ", ".join(roster),
            )
        if isinstance(action, Finish):
            final = RoundState(
                round=state.round,
                model_digest=state.model_digest,
                phase=action.phase,
                message=action.reason,
                attempt=state.attempt,
            )
            self._write(root, blueprint, final, ())
            self.result.message = f"experiment {action.phase}: {action.reason}"
            return self._change(
                blueprint,
                f"fl({exp}): round {state.round} -> {action.phase.lower()}",
                final,
                body=action.reason,
            )
        raise AssertionError(f"unhandled action {action!r}")

    def _aggregate(
        self,
        blueprint: Blueprint,
        seen: Observed,
        state: RoundState,
        action: Aggregate,
        store: ModelStore,
    ) -> AggregateResult | Action:
        name, options = _strategy(blueprint)
        reported, problems = _reports(seen)
        clip_bound = blueprint.store.update_norm_bound
        if clips_on_clusters(blueprint):
            reported, problems = _with_bits(reported, problems)
            # An honest cluster clipped its update to the round's clip: farther is refused.
            clip_bound = _tighter(clip_bound, client_clip_bound(round_clip(blueprint, self.prior)))
        bits = {c: r.unclipped for c, r in reported.items() if r.unclipped is not None}
        options = round_options(blueprint, options, self.prior, bits)
        key = (state.round, state.attempt, state.model_digest, action.clusters, repr(options))
        result = self._aggregated.get(key)
        if result is None:
            influence = blueprint.influence
            limits = Limits(
                max_update_bytes=blueprint.store.max_update_bytes,
                max_l2_norm=clip_bound,
                min_updates=min(blueprint.completion.min_clusters, len(seen.roster or ())),
                median_distance_multiple=influence.median_distance_multiple,
                max_num_examples=influence.max_num_examples,
                cap_num_examples=influence.above_max_num_examples == "cap",
            )
            seed = int((blueprint.strategy.dp or {}).get("seed", 0)) + state.round
            try:
                if blueprint.aggregation.shards > 1:
                    sharded = aggregate_sharded(
                        self.hub, store, blueprint, state, strategy=name, options=options,
                        roster=seen.roster, limits=limits, seed=seed,
                        clusters=action.clusters, reported=reported,
                        after_job=self.hooks.after_shard_job,
                    )  # fmt: skip
                    if sharded.running is not None:
                        self.shards = sharded.running.job
                        return Wait(sharded.running.message)
                    self.finished_job = (sharded.job.namespace, sharded.job.name)
                    self.finished_dir = (store, state.round, sharded.out)
                    assert sharded.result is not None
                    result = sharded.result
                else:
                    result = aggregate_from_store(
                        store,
                        state.round,
                        state.model_digest,
                        strategy=name,
                        options=options,
                        roster=seen.roster,
                        limits=limits,
                        seed=seed,
                        clusters=action.clusters,
                        reported=reported,
                    )
            except NotEnoughUpdates as exc:
                rejected = exc.rejected
                if clip_bound != blueprint.store.update_norm_bound:
                    rejected = _beyond_clip(rejected, clip_bound)
                rejected = _explained(rejected, problems)
                reasons = "; ".join(f"{c}: {r}" for c, r in sorted(rejected.items()))
                return below_quorum(seen, f"{exc}" + (f" (rejected {reasons})" if reasons else ""))
            except ShardsFailed as exc:
                self.finished_job = exc.job
                self.finished_dir = (store, state.round, exc.out)
                return below_quorum(seen, str(exc))
            if clip_bound != blueprint.store.update_norm_bound:
                result = dataclasses.replace(
                    result, rejected=_beyond_clip(result.rejected, clip_bound)
                )
            result = dataclasses.replace(result, rejected=_explained(result.rejected, problems))
            self._aggregated[key] = result
        self.hooks.after_aggregate()
        store.put_model(result.model)
        if result.new_state is not None:
            store.put_state(name, state.round, result.new_state)
        bits = result.record.get("dp", {}).get("unclipped")
        if bits is not None:
            # The clusters' clip bits, which the next clip was made from: beside the updates
            # for `verify --reaggregate`, never in Git (which publishes the noisy count only).
            store.put_round_record(
                state.round, bits_record(state.round, state.attempt, result.digest, bits)
            )
        self.hooks.after_model_written()
        return result

    def _advance(
        self,
        root: Path,
        blueprint: Blueprint,
        seen: Observed,
        state: RoundState,
        action: Aggregate,
        result: AggregateResult,
    ) -> Change:
        exp = blueprint.name
        record = self._record(blueprint, seen, state, action, result)
        history = root / self.path / self.layout.history(state.round)
        history.parent.mkdir(parents=True, exist_ok=True)
        history.write_text(yaml_document(record), encoding="utf-8")
        stop = None
        if state.round < blueprint.rounds and "dp" in record:
            stop = budget_stop(blueprint, spent_runs(record["dp"]), state.round + 1)
        if state.round >= blueprint.rounds or stop is not None:
            final = RoundState(
                round=state.round,
                model_digest=result.digest,
                phase="Completed",
                message=stop or f"completed {blueprint.rounds} rounds",
            )
            self._write(root, blueprint, final, ())
            subject = f"fl({exp}): round {state.round} -> completed"
            nxt = final
        elif blueprint.strategy.secure_aggregation is not None:
            assert self.secagg is not None
            roster = seen.decided or tuple(seen.roster or ())
            start = after_round(blueprint, self.secagg, roster, result.digest)
            nxt = start.state
            self._write(root, blueprint, nxt, start.roster, start.record)
            subject = f"fl({exp}): round {state.round} -> {state.round + 1}"
        else:
            clip = None
            if clips_on_clusters(blueprint):
                clip = next_clip(blueprint, record["dp"])
            nxt = RoundState(round=state.round + 1, model_digest=result.digest, clip_norm=clip)
            roster = seen.decided or tuple(seen.roster or ())
            self._write(root, blueprint, nxt, roster)
            subject = f"fl({exp}): round {state.round} -> {state.round + 1}"
        self.result = PassResult(
            action=action,
            message=f"round {state.round} aggregated from {len(result.contributors)} clusters"
            + (f"; experiment Completed: {stop}" if stop else ""),
            model_digest=result.digest,
            record=record,
        )
        body = _body(record) + (f"\n{stop}" if stop else "")
        return self._change(blueprint, subject, nxt, body=body, model=result.digest)

    def _record(
        self,
        blueprint: Blueprint,
        seen: Observed,
        state: RoundState,
        action: Aggregate,
        result: AggregateResult,
    ) -> dict[str, Any]:
        roster = tuple(seen.roster or ())
        record: dict[str, Any] = {
            "apiVersion": API_VERSION,
            "kind": "RoundRecord",
            "experiment": blueprint.name,
            "round": state.round,
            "attempt": state.attempt,
            "baseModel": state.model_digest,
            "model": result.digest,
            "strategy": {"name": blueprint.strategy.name, "options": blueprint.strategy.options},
            "roster": list(roster),
            "status": roster_statuses(roster, seen.statuses),
            "contributors": list(result.contributors),
            "weights": {c: round(w, 6) for c, w in sorted(result.weights.items())},
            # What each cluster reported through the hub, for `fl-gitops verify` to check
            # the store against and to re-aggregate the round from.
            "updates": dict(sorted(result.record.get("updates", {}).items())),
            "numExamples": dict(sorted(result.record.get("num_examples", {}).items())),
            "rejected": dict(sorted(result.rejected.items())),
            "failed": list(action.failed),
            "timedOut": action.timed_out,
            "metrics": {k: round(v, 6) for k, v in sorted(result.metrics.items())},
        }
        shards = result.record.get("shards")
        if shards is not None:
            # Which shards made the model (the same bytes as one pod: the plan says how).
            record["aggregation"] = {"shards": shards["of"], "plan": shards["plan"]}
        if blueprint.strategy.dp:
            # What the round's noise was and the budget spent so far: the epsilon can be
            # recomputed from this record alone (reconcile/_privacy.py).
            record["dp"] = dp_record(blueprint, result.record.get("dp", {}), self.prior)
        secure = result.record.get("secureAggregation")
        if secure is not None:
            record["secureAggregation"] = secure
        if blueprint.evaluation_server:
            record["evaluation"] = _evaluate(blueprint, result.model)
        return record

    def _secure(
        self,
        root: Path,
        blueprint: Blueprint,
        seen: Observed,
        state: RoundState,
        action: Aggregate,
        store: ModelStore,
    ) -> Change | Action:
        """A secure round's phase is over (``reconcile/_secure.py``): commit the next
        phase, or, after the reveal, unmask the sum, aggregate it and move on as any round;
        too few clusters fall through to the completion policy (retry or fail)."""
        exp = blueprint.name
        record = self.secagg
        if state.secagg is None:
            # secureAggregation turned on in a running round: its Jobs trained in the clear
            # for a plain round, so the round starts again as a secure one, its first phase.
            start = start_phase(
                blueprint,
                dataclasses.replace(state, attempt=state.attempt + 1),
                seen.decided or tuple(seen.roster or ()),
                None,
            )
            self._write(root, blueprint, start.state, start.roster, start.record)
            self.result = PassResult(action=action, message=f"round {state.round}: {start.message}")
            return self._change(
                blueprint,
                f"fl({exp}): round {state.round} secure aggregation: {start.state.secagg}",
                start.state,
                body="secureAggregation turned on: the round starts again as a secure one",
            )
        if record is None or (record.round, record.attempt, record.phase) != (
            state.round,
            state.attempt,
            state.secagg,
        ):
            raise InputError(
                f"{self.path}/{self.layout.secagg}: missing, or not round {state.round} attempt "
                f"{state.attempt} phase {state.secagg} as the round state says"
            )
        try:
            if record.phase != "reveal":
                nxt = next_phase(blueprint, state, record, action.clusters, seen.statuses, store)
                self._write(root, blueprint, nxt.state, nxt.roster, nxt.record)
                self.result = PassResult(
                    action=action, message=f"round {state.round}: {nxt.message}"
                )
                body = f"{nxt.message}\nRoster: " + ", ".join(nxt.roster)
                if action.failed:
                    body += "\nFailed: " + ", ".join(action.failed)
                return self._change(
                    blueprint,
                    f"fl({exp}): round {state.round} secure aggregation: {nxt.state.secagg}",
                    nxt.state,
                    body=body,
                )
            unmasked = unmask_round(blueprint, state, record, action.clusters, seen.statuses, store)
        except SecAggError as exc:
            return below_quorum(seen, str(exc))
        name, options = _strategy(blueprint)
        self.hooks.after_aggregate()
        result = aggregate_sum(blueprint, state, unmasked, store, strategy=name, options=options)
        total = sum(unmasked.weights[c] for c in unmasked.survivors)
        metrics: dict[str, float] = {}
        for cluster in unmasked.survivors:
            for key, value in record.metrics.get(cluster, {}).items():
                metrics[key] = metrics.get(key, 0.0) + value * unmasked.weights[cluster] / total
        account = round_account(record, unmasked, secure_params(blueprint))
        result = dataclasses.replace(
            result,
            contributors=list(unmasked.survivors),
            weights={c: unmasked.weights[c] / total for c in unmasked.survivors},
            rejected={},
            metrics=metrics,
            record={
                "num_examples": {
                    c: int(record.survivors[c]["numExamples"]) for c in unmasked.survivors
                },
                "secureAggregation": account,
            },
        )
        store.put_model(result.model)
        if result.new_state is not None:
            store.put_state(name, state.round, result.new_state)
        self.hooks.after_model_written()
        # The round's roster is U1 (who shared and was asked to train); its failures the
        # clusters that dropped before their masked input was in (a failed reveal is
        # covered by the threshold and counted in the record's secureAggregation).
        action = dataclasses.replace(action, failed=unmasked.dropped)
        statuses = {
            c: ClusterStatus(c, JobState.FAILED, "dropped before its masked input", None)
            for c in unmasked.dropped
        }
        for cluster in unmasked.survivors:
            statuses[cluster] = ClusterStatus(cluster, JobState.SUCCEEDED, "survivor", None)
        seen = dataclasses.replace(seen, roster=tuple(sorted(record.mask_keys)), statuses=statuses)
        return self._advance(root, blueprint, seen, state, action, result)

    def _clipped(self, blueprint: Blueprint, state: RoundState) -> RoundState:
        """``state`` with the round's clip for the round configs when the clusters clip
        their own updates: the clip the aggregation will check them against (from the
        previous round's record, as ``round_options`` takes it)."""
        if not clips_on_clusters(blueprint):
            return state
        return dataclasses.replace(state, clip_norm=round_clip(blueprint, self.prior))

    # -- writing -------------------------------------------------------------------------

    def _write(
        self,
        root: Path,
        blueprint: Blueprint,
        state: RoundState,
        roster: tuple[str, ...],
        secagg: SecAggRound | None = None,
    ) -> None:
        tree = render_experiment(
            blueprint,
            roster=roster,
            state=state,
            roster_source="hub",
            secagg=None if secagg is None else secagg.to_json(),
        )
        apply_changes(root, tree, plan_changes(root, tree))

    def _change(
        self,
        blueprint: Blueprint,
        subject: str,
        state: RoundState,
        *,
        body: str = "",
        model: str | None = None,
    ) -> Change:
        trailers = round_trailers(
            experiment=blueprint.name,
            round_=state.round,
            model=model or state.model_digest,
            blueprint=blueprint.digest,
        )
        return Change(message=subject, trailers=trailers, body=body)


def _reports(seen: Observed) -> tuple[dict[str, HubReport], dict[str, str]]:
    """What each succeeded cluster reported through the hub, and why the others did not.

    The reports are the authority the aggregation checks each update against (its digest,
    its weight); a cluster with none is rejected by the aggregation, with the reason
    given here in its place (``_explained``).
    """
    reported: dict[str, HubReport] = {}
    problems: dict[str, str] = {}
    for cluster, status in sorted(seen.statuses.items()):
        if status.report is not None:
            reported[cluster] = status.report
        elif status.state is JobState.SUCCEEDED:
            problems[cluster] = status.report_problem or "nothing reported"
    return reported, problems


def _with_bits(
    reported: Mapping[str, HubReport], problems: Mapping[str, str]
) -> tuple[dict[str, HubReport], dict[str, str]]:
    """With client-side clipping, a report without the clip bit is no report: its update
    is rejected with that reason (the count of adaptive clipping needs every bit)."""
    kept = {c: r for c, r in reported.items() if r.unclipped is not None}
    missing = {
        c: f"{UNCLIPPED_KEY}: not reported (the blueprint's dp.clipping is client)"
        for c in reported
        if c not in kept
    }
    return kept, {**problems, **missing}


def _tighter(bound: float | None, clip: float) -> float:
    return clip if bound is None else min(bound, clip)


def _beyond_clip(rejected: Mapping[str, str], bound: float | None) -> dict[str, str]:
    """The rejections with the clip's reason on those the distance bound made, when the
    bound is the round's clip: with client-side clipping such an update was not clipped."""
    said = f"over the bound of {bound:.6g}"
    return {
        c: (
            f"{r}: the round's clip (dp.clipping: client), which an honest cluster's Job "
            "clips its update to"
            if r.endswith(said)
            else r
        )
        for c, r in rejected.items()
    }


def _explained(rejected: Mapping[str, str], problems: Mapping[str, str]) -> dict[str, str]:
    """The rejections, each for want of a report saying what was wrong with it."""
    return {
        cluster: (
            f"no valid result reported through the hub: {problems[cluster]}"
            if cluster in problems
            else reason
        )
        for cluster, reason in sorted(rejected.items())
    }


def _body(record: Mapping[str, Any]) -> str:
    lines = [f"Roster: {', '.join(record['roster'])}"]
    lines.append(f"Contributors: {', '.join(record['contributors'])}")
    for cluster, reason in record["rejected"].items():
        lines.append(f"Rejected {cluster}: {reason}")
    if record["failed"]:
        lines.append(f"Failed: {', '.join(record['failed'])}")
    metrics = ", ".join(f"{k}={v:.4f}" for k, v in record["metrics"].items())
    if metrics:
        lines.append(f"Metrics: {metrics}")
    evaluation = record.get("evaluation") or {}
    if "accuracy" in evaluation:
        lines.append(f"Server evaluation: accuracy={evaluation['accuracy']:.4f}")
    return "\n".join(lines)


def _evaluate(blueprint: Blueprint, model: bytes | bytearray) -> dict[str, Any]:
    """Server-side evaluation on the held-out set, when torch is installed."""
    try:
        from fl_gitops.client.data import server_test_set
        from fl_gitops.client.train import evaluate_bytes
    except ImportError as exc:
        return {"skipped": f"torch is not installed ({exc.name})"}
    model_cfg, data_cfg = blueprint.client["model"], blueprint.client["data"]
    test = server_test_set(data_cfg)
    if test is None:
        return {"skipped": "the data has no server-side test set"}
    x, y = test
    metrics = evaluate_bytes(model, x, y, model_cfg=model_cfg, data_cfg=data_cfg)
    return {k: round(float(v), 6) for k, v in sorted(metrics.items())}


def reconcile_once(
    repo: ConfigRepo,
    hub: Hub,
    *,
    path: str,
    now: datetime,
    open_store: Callable[[str], ModelStore] | None = None,
    hooks: PassHooks | None = None,
    environ: Mapping[str, str] | None = None,
    max_attempts: int = 5,
    sleep: Callable[[float], None] | None = None,
) -> PassResult:
    """Run one reconcile pass for the experiment at ``path`` in the config repo.

    Args:
        repo: the config repo (cloned; each pass starts from the remote tip).
        hub: where PlacementDecisions and ManifestWork status come from.
        path: the experiment's directory in the repo (``spec.gitops.path``).
        now: the pass's time, for the round timeout (passed in: the core has no clock).
        open_store: opens the model store for a URI (default: credentials from ``environ``).
        hooks: kill points for fault-injection tests.

    Returns:
        What the pass did: its action, a message, and the commit it published if any.

    Raises:
        InputError: the blueprint or the recorded state is bad.
        GitError, HubError, StoreError: a side failed; the next pass starts over.
    """
    env = dict(os.environ if environ is None else environ)
    opener = open_store or (lambda uri: ModelStore.from_env(uri, env))
    hooks = hooks or PassHooks()
    work = _Pass(repo, hub, path=path, now=now, open_store=opener, hooks=hooks)
    repo.sync()
    blueprint, seen, action = work.plan(repo.root)
    if seen.state is not None:
        # The shards' directories of rounds Git has left (a pull request merged since, or
        # a pass killed after its push): garbage, each a whole model's worth of slices.
        collect_done_shard_dirs(opener(blueprint.store.uri), seen.state)
    if isinstance(action, Wait):
        # Nothing to commit: skip the publish loop (and its fetch) altogether.
        return PassResult(action=action, message=action.reason)
    publish_hooks = PublishHooks(after_commit=hooks.after_commit, after_push=hooks.after_push)
    mode, round_branch, pr = _publish_mode(blueprint, seen, action, env)
    extra: dict[str, Any] = {}
    if sleep is not None:
        extra["sleep"] = sleep
    result = repo.publish(
        work.derive,
        mode=mode,
        round_branch=round_branch,
        pr=pr,
        max_attempts=max_attempts,
        hooks=publish_hooks,
        fresh=True,  # synced just above; a rejected push syncs again
        **extra,
    )
    assert work.result is not None  # publish derives at least once
    work.result.publish = result
    if mode == "pull-request":
        # The round is committed only once its pull request is merged: until then each
        # pass aggregates it again, from the Job found by name and its files (the Job's
        # ttlSecondsAfterFinished removes it on a real hub).
        return work.result
    if work.finished_job is not None:
        # Merged (or failed) and published: the shards' Job is done with, and so are
        # their files (the merged model is in the store; their slices add up to one).
        assert isinstance(hub, ShardRunner)
        hub.delete_shard_job(*work.finished_job)
    if work.finished_dir is not None:
        shard_store, round_, name = work.finished_dir
        shard_store.remove_aggregation(round_, name)
    return work.result


def _publish_mode(
    blueprint: Blueprint, seen: Observed, action: Action, environ: Mapping[str, str]
) -> tuple[str, str | None, PullRequestSpec | None]:
    """Direct, or pull-request with the branch of the round the change leads to.

    The branch is named after where the commit takes the experiment: round N's roster
    and the aggregation that leads to round N both go to ``.../round-N``; a retry to
    ``.../round-N-attempt-K``; the end of the experiment to ``.../round-N-completed``
    (or ``-failed``). So a round never gets two branches, and a merged branch is never
    reused for a different change.
    """
    if blueprint.gitops.mode != "pull-request":
        return "direct", None, None
    round_ = seen.state.round if seen.state is not None else 1
    attempt = seen.state.attempt if seen.state is not None else 1
    if isinstance(action, Aggregate):
        last = round_ >= blueprint.rounds
        branch = round_branch_name(blueprint.name, round_ if last else round_ + 1)
        branch += "-completed" if last else ""
    elif isinstance(action, RetryRound):
        branch = f"{round_branch_name(blueprint.name, round_)}-attempt-{attempt + 1}"
    elif isinstance(action, Finish):
        branch = f"{round_branch_name(blueprint.name, round_)}-{action.phase.lower()}"
    else:
        branch = round_branch_name(blueprint.name, round_)
        branch += f"-attempt-{attempt}" if attempt > 1 else ""
    pr_cfg = blueprint.gitops.pull_request
    pr = PullRequestSpec.from_blueprint(pr_cfg, environ) if pr_cfg else None
    return "pull-request", branch, pr
