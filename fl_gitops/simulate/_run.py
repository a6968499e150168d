"""`fl-gitops simulate`: the whole loop on one machine, with the real reconcile pass.

The renderer, the reconcile pass, the client, the store and Git are the production code;
only the hub's other parties (`LocalAgent` with a `LocalHub`, or with a real API server
read through `KubernetesHub` when `hub="kubernetes"`) and where a cluster's data comes from
are the simulation's own. Time is simulated where the loop would
wait: stragglers finish after their delay and the round timeout passes without sleeping,
by moving the clock the reconcile pass is given.

``tamper_store`` plays a party with write access to the bucket and nothing else: after
K clusters of a round have reported through the hub, it replaces their updates in the
store by other valid-looking ones (a re-serialized, rescaled copy) with metadata
rewritten to match. The hub still holds what each cluster reported, so the reconcile
pass must reject them, naming both digests; ``report.json`` lists them with the reason.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fl_gitops._cpus import usable_cores
from fl_gitops.errors import FlGitopsError, InputError
from fl_gitops.simulate._agent import (
    LocalAgent,
    LocalPlayers,
    Players,
    RoundWork,
    pending,
    read_result,
)
from fl_gitops.simulate._workers import WorkerPool, warm_parent
from fl_gitops.simulate._world import (
    BRANCH,
    World,
    dump_inventory,
    generated_inventory,
    load_inventory_file,
    open_world,
)

if TYPE_CHECKING:
    from fl_gitops.client.roundconfig import RoundConfig
    from fl_gitops.gitops import ConfigRepo
    from fl_gitops.reconcile import PassResult
    from fl_gitops.render import RoundState

__all__ = ["SimulationOptions", "SimulationReport", "run_simulation"]

BYZANTINE_KINDS = ("signflip", "scale")
# How often a waiting simulation looks at its round's shards again, in wall seconds.
_SHARD_POLL_SECONDS = 0.2
HUB_KINDS = ("local", "kubernetes")


@dataclass(frozen=True)
class SimulationOptions:
    """How to simulate: the fleet, the faults, and where to keep the run."""

    workdir: Path
    clusters: int = 10
    rounds: int | None = None
    inventory: Path | None = None
    fail_rate: float = 0.0
    stragglers: int = 0
    straggler_delay: float = 60.0
    byzantine: int = 0
    byzantine_kind: str = "signflip"
    byzantine_factor: float = 10.0
    tamper_store: int = 0
    aggregation_shards: int | None = None  # None: the blueprint's spec.aggregation.shards
    centralized: bool = False
    jobs: int = 0  # 0: one worker per core
    seed: int = 0
    plot: bool = True
    hub: str = "local"  # or "kubernetes": a real API server named by kubeconfig
    kubeconfig: Path | None = None
    context: str | None = None

    def check(self) -> None:
        if not 1 <= self.clusters <= 10_000:
            raise InputError(f"--clusters: expected 1 to 10000, got {self.clusters}")
        if self.rounds is not None and self.rounds < 1:
            raise InputError(f"--rounds: expected at least 1, got {self.rounds}")
        if self.jobs < 0:
            raise InputError(f"--jobs: expected at least 1, got {self.jobs}")
        if not 0.0 <= self.fail_rate < 1.0:
            raise InputError(f"--fail-rate: expected 0 <= rate < 1, got {self.fail_rate}")
        for name, value in (
            ("--stragglers", self.stragglers),
            ("--byzantine", self.byzantine),
            ("--tamper-store", self.tamper_store),
        ):
            if not 0 <= value <= self.clusters:
                raise InputError(f"{name}: expected 0 to {self.clusters}, got {value}")
        if self.aggregation_shards is not None and not 1 <= self.aggregation_shards <= 64:
            raise InputError(
                f"--aggregation-shards: expected 1 to 64, got {self.aggregation_shards}"
            )
        if self.straggler_delay < 0:
            raise InputError(
                f"--straggler-delay: expected seconds >= 0, got {self.straggler_delay}"
            )
        if self.hub not in HUB_KINDS:
            raise InputError(f"--hub: expected one of {', '.join(HUB_KINDS)}, got {self.hub!r}")
        if self.hub == "local" and (self.kubeconfig is not None or self.context is not None):
            flag = "--kubeconfig" if self.kubeconfig is not None else "--context"
            raise InputError(f"{flag}: only used with --hub kubernetes")
        if self.byzantine_kind not in BYZANTINE_KINDS:
            raise InputError(
                f"--byzantine-kind: expected one of {', '.join(BYZANTINE_KINDS)}, "
                f"got {self.byzantine_kind!r}"
            )


@dataclass
class SimulationReport:
    """What `report.json` holds."""

    experiment: str
    phase: str
    rounds: list[dict[str, Any]]
    final_model: str
    final_model_path: str
    config_repo: str
    centralized_accuracy: float | None = None
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)
    tampered: list[dict[str, Any]] = field(default_factory=list)
    #: Why the experiment ended so (a Failed run's reason), as the last pass recorded it.
    message: str = ""
    #: The work dir's experiment had already ended: nothing ran, report.json kept as it was.
    already_finished: bool = False
    #: Whether rounds.png was drawn (never for a run with no aggregated round).
    plotted: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "experiment": self.experiment,
            "phase": self.phase,
            "message": self.message,
            "rounds": self.rounds,
            "final_model": self.final_model,
            "final_model_path": self.final_model_path,
            "config_repo": self.config_repo,
            "seconds": round(self.seconds, 3),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }
        if self.centralized_accuracy is not None:
            out["centralized_accuracy"] = self.centralized_accuracy
        if self.tampered:
            out["tampered"] = self.tampered
        return out


class _Clock:
    """Wall time plus whatever the simulation skipped (timeouts, straggler delays)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance_to(self, when: datetime) -> None:
        gap = when - self.now()
        if gap > timedelta():
            self.offset += gap


@dataclass
class _Round:
    """The simulation's bookkeeping for the round (and attempt) being trained."""

    job: str
    started: datetime
    wall_started: float
    failing: set[str]
    stragglers: set[str]
    launched: bool = False
    stragglers_done: bool = False
    tampered: list[str] = field(default_factory=list)


def _timings() -> dict[str, float]:
    return {"reconcile": 0.0, "sync": 0.0, "train": 0.0}


@dataclass
class _Loop:
    """The simulated world around the reconcile job, one tick at a time.

    A tick is what happens on a real hub between two passes of the reconcile CronJob:
    Argo CD syncs the pushed tip, the work agents launch the round's Jobs (or time passes
    for stragglers and the round's timeout), the Jobs report, and the reconcile job passes
    again.
    """

    options: SimulationOptions
    world: World
    repo: ConfigRepo
    hub: Any  # the Hub the reconcile pass reads
    agent: LocalAgent
    pool: WorkerPool
    emit: Callable[[str, dict[str, Any]], None]
    byzantine: set[str]
    clock: _Clock = field(default_factory=lambda: _Clock())
    timings: dict[str, float] = field(default_factory=_timings)
    measured: dict[int, float] = field(default_factory=dict)  # round -> wall seconds
    centralized: float | None = None
    current: _Round | None = None
    stuck: int = 0  # ticks in a row in which nothing but the clock moved
    skipped_told: bool = False
    tampered: list[tuple[int, str, str]] = field(default_factory=list)  # round, job, cluster

    def tick(self, last: PassResult) -> PassResult:
        """Sync, launch the round's Jobs (or let time pass), report, reconcile."""
        if last.shards is not None:
            return self.wait_for_shards(last)
        works = self.sync()
        current = self.round_of(works)
        todo = pending(works, self.agent.hub, self.agent.experiment)
        self.emit_progress(works, todo)
        late = [w for w in todo if w.cluster in current.stragglers]
        if not current.launched:
            self.launch(current, works, todo)
        elif late and not current.stragglers_done:
            self.let_stragglers_finish(current, late)
        else:
            self.let_the_timeout_pass(current, last)
        return self.reconcile()

    # -- the parties -----------------------------------------------------------------

    def reconcile(self) -> PassResult:
        """One reconcile pass at the simulated time; a round's row once it is aggregated."""
        from fl_gitops.reconcile import Aggregate, reconcile_once

        t0 = time.perf_counter()
        result = reconcile_once(self.repo, self.hub, path=self.world.path, now=self.clock.now())
        self.timings["reconcile"] += time.perf_counter() - t0
        # A secure round's phases end as Aggregate actions too; only the last has a record.
        if isinstance(result.action, Aggregate) and result.record and self.current is not None:
            row = _row(result.record, time.perf_counter() - self.current.wall_started)
            self.measured[row["round"]] = row["seconds"]
            self.emit("round", row)
        return result

    def wait_for_shards(self, last: PassResult) -> PassResult:
        """The round's aggregation shards run (the hub's Job, in local workers): wall time
        passes, not simulated time (the Job's deadline is real), then the next pass."""
        assert last.shards is not None and self.current is not None
        state = self._state()
        self.emit(
            "shards",
            {
                "round": state.round if state else 1,
                "done": len(last.shards.succeeded),
                "shards": self.world.blueprint.aggregation.shards,
            },
        )
        time.sleep(_SHARD_POLL_SECONDS)
        return self.reconcile()

    def running(self) -> bool:
        """Whether the experiment is still running, as the last pass left it in Git."""
        state = self._state()
        return state is None or state.phase == "Running"

    def sync(self) -> list[RoundWork]:
        """Argo CD: the ManifestWorks at the pushed tip, as the hub stored them."""
        t0 = time.perf_counter()
        works = self.agent.sync()
        self.timings["sync"] += time.perf_counter() - t0
        if not works:
            state = self._state()
            raise FlGitopsError(f"round {state.round if state else 1}: nothing was synced")
        if self.agent.last_sync.skipped and not self.skipped_told:
            self.skipped_told = True
            for ref, why in sorted(self.agent.last_sync.skipped.items()):
                self.emit("skipped", {"object": ref, "reason": why})
        if self.options.centralized and self.centralized is None:
            rounds = self.world.blueprint.rounds
            config = works[0].config
            self.centralized = float(self.pool.call(_centralized_job, config, rounds))
        return works

    def launch(self, current: _Round, works: list[RoundWork], todo: list[RoundWork]) -> None:
        """Start the round: failing clusters report failure, stragglers wait, the rest train."""
        run = []
        for work in todo:
            if work.cluster in current.failing:
                self.agent.report(work, succeeded=False)
            elif work.cluster not in current.stragglers:
                run.append(work)
        self.run_jobs(run)
        current.launched = True
        self.emit_progress(works, pending(works, self.agent.hub, self.agent.experiment))

    def let_stragglers_finish(self, current: _Round, late: list[RoundWork]) -> None:
        """Move the clock to the stragglers' finish (or the timeout); run them if due."""
        due = current.started + timedelta(seconds=self.options.straggler_delay)
        self.clock.advance_to(min(due, self._deadline(current)))
        if self.clock.now() >= due:
            self.run_jobs(late)
        current.stragglers_done = True

    def let_the_timeout_pass(self, current: _Round, last: PassResult) -> None:
        """Every Job meant to run has run and the pass still waits: move past the timeout."""
        self.stuck += 1
        if self.stuck > 3:
            raise FlGitopsError(f"the simulation is stuck: {last.message}")
        self.clock.advance_to(self._deadline(current))

    def run_jobs(self, works: list[RoundWork]) -> None:
        """The Jobs run in warm workers; the work agent reports each one's outcome."""
        t0 = time.perf_counter()
        outcomes = self.pool.run([w.spec for w in works])
        with self.agent.hub.batch():
            for work, outcome in zip(works, outcomes, strict=True):
                ok = outcome.exit_code == 0
                if ok and work.cluster in self.byzantine:
                    _poison(self.world, work, self.options)
                if not ok:
                    print(
                        f"warning: {work.cluster}: {work.job_name} exited {outcome.exit_code}: "
                        f"{outcome.stderr.strip().splitlines()[-1:] or ''}"
                    )
                self.agent.report(work, succeeded=ok)
                if ok:
                    self.tamper_after_report(work)
        self.timings["train"] += time.perf_counter() - t0

    def tamper_after_report(self, work: RoundWork) -> None:
        """The bucket's intruder: the round's first ``tamper_store`` clusters to report
        have their update replaced in the store, metadata and all (not their report)."""
        current = self.current
        if current is None or len(current.tampered) >= self.options.tamper_store:
            return
        _tamper_store(self.world, work)
        current.tampered.append(work.cluster)
        self.tampered.append((work.round, work.job_name, work.cluster))
        self.emit("tampered", {"round": work.round, "cluster": work.cluster})

    # -- bookkeeping -------------------------------------------------------------------

    def round_of(self, works: list[RoundWork]) -> _Round:
        """The round the synced works belong to; a new Job name starts a new one."""
        job = works[0].job_name
        if self.current is None or self.current.job != job:
            failing, stragglers = _roles(self.options, job, [w.cluster for w in works])
            self.current = _Round(job, self.clock.now(), time.perf_counter(), failing, stragglers)
            self.stuck = 0
        return self.current

    def emit_progress(self, works: list[RoundWork], todo: list[RoundWork]) -> None:
        self.emit(
            "jobs", {"round": works[0].round, "total": len(works), "done": len(works) - len(todo)}
        )

    def _deadline(self, current: _Round) -> datetime:
        timeout = timedelta(seconds=self.world.blueprint.completion.timeout_seconds)
        return current.started + timeout + timedelta(seconds=1)

    def _state(self) -> RoundState | None:
        from fl_gitops.render import read_round_state

        return read_round_state(self.repo.root / self.world.path)


def _roles(options: SimulationOptions, job: str, clusters: list[str]) -> tuple[set[str], set[str]]:
    """Which clusters fail and which straggle this round: seeded, so a resume agrees."""
    rng = random.Random(f"{options.seed}:{job}")
    failing = {c for c in clusters if rng.random() < options.fail_rate}
    healthy = [c for c in clusters if c not in failing]
    stragglers = set(rng.sample(healthy, min(options.stragglers, len(healthy))))
    return failing, stragglers


def _byzantine(options: SimulationOptions, roster: list[str]) -> set[str]:
    """The last K clusters of the roster send poisoned updates, every round."""
    return set(sorted(roster)[len(roster) - options.byzantine :]) if options.byzantine else set()


def _poison(world: World, work: RoundWork, options: SimulationOptions) -> None:
    """Replace a cluster's honest update with a sign-flipped or scaled one, as an attacker
    would: the cluster itself, so it reports the poisoned update's digest through the hub
    too (its own channel), and only the strategy and the influence bounds stand in its way."""
    from fl_gitops.client import byzantine_update

    factor = options.byzantine_factor
    _replace_update(
        world,
        work,
        lambda update, base: byzantine_update(
            update, base, kind=options.byzantine_kind, factor=factor
        ),
        report=True,
    )


def _tamper_store(world: World, work: RoundWork) -> None:
    """Replace a cluster's update in the store by a valid-looking one (its step from the
    global model, rescaled to 0.9 and serialized again) with metadata rewritten to match,
    leaving the cluster's report through the hub as it was."""
    import numpy as np

    def rescaled(update: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
        return {
            k: (base[k] + np.float32(0.9) * (update[k] - base[k])).astype(np.float32)
            for k in sorted(update)
        }

    _replace_update(world, work, rescaled, report=False)


def _replace_update(
    world: World,
    work: RoundWork,
    change: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]],
    *,
    report: bool,
) -> None:
    """Rewrite a stored update (``change(update, base)``) and its metadata's sha256; with
    ``report``, the cluster's result file too, as the cluster would report it."""
    from fl_gitops.reports import UNCLIPPED_KEY, report_data
    from fl_gitops.store import ModelStore
    from fl_gitops.tensors import load_bytes, serialize, write_atomic

    store = ModelStore.open(world.store_uri)
    meta = store.read_update_meta(work.round, work.cluster)
    update = load_bytes(store.get_update(work.round, work.cluster))
    base = load_bytes(store.get_model(meta["base_model"]))
    keep = {k: v for k, v in meta.items() if k not in ("sha256", "round", "cluster")}
    record = store.put_update(work.round, work.cluster, serialize(change(update, base)), keep)
    if report:
        # A clip bit the Job reported stays as it said (client-side DP): the lie is the update.
        said = (read_result(work.result_file) or {}).get(UNCLIPPED_KEY)
        data = report_data(
            record["sha256"],
            int(record["num_examples"]),
            record["metrics"],
            unclipped=None if said is None else said == "true",
        )
        write_atomic(work.result_file, json.dumps(data, sort_keys=True).encode("utf-8"))


def run_simulation(
    blueprint_file: Path,
    options: SimulationOptions,
    *,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
) -> SimulationReport:
    """Run (or resume) the simulation to the experiment's end.

    Args:
        blueprint_file: the user's blueprint.
        options: fleet size, faults, work directory.
        on_event: called with ("round", row), ("jobs", progress) and ("start", info)
            for a progress display.

    Raises:
        InputError: bad options or blueprint.
        FlGitopsError: the loop cannot go on (reported with the reason).
    """
    from fl_gitops.gitops import ConfigRepo
    from fl_gitops.placement import evaluate_placement
    from fl_gitops.render import read_round_state

    options.check()
    options = dataclasses.replace(options, workdir=options.workdir.resolve())
    emit = on_event or (lambda kind, data: None)
    wall_start = time.perf_counter()
    world = open_world(
        blueprint_file,
        options.workdir,
        clusters=options.clusters,
        rounds=options.rounds,
        aggregation_shards=options.aggregation_shards,
    )
    blueprint = world.blueprint
    repo = ConfigRepo.open(
        world.remote.resolve().as_uri(),
        branch=BRANCH,
        workdir=world.reconciler,
        user_name="fl-gitops simulate",
        user_email="simulate@localhost",
    )
    ended = read_round_state(repo.root / world.path)
    if ended is not None and ended.phase != "Running":
        # Already over: no hub, no workers, and the report it wrote when it ended stays.
        return SimulationReport(
            experiment=blueprint.name,
            phase=ended.phase,
            rounds=[],
            final_model=ended.model_digest,
            final_model_path="",
            config_repo=str(world.remote.resolve()),
            seconds=time.perf_counter() - wall_start,
            message=ended.message,
            already_finished=True,
        )
    players, hub = _open_hub(options, world)
    players.ensure_namespace(blueprint.namespace)
    if not players.decided_clusters(blueprint.namespace, blueprint.name):
        if options.inventory is not None:
            fleet = load_inventory_file(options.inventory)
        else:
            fleet = generated_inventory(blueprint, options.clusters, seed=options.seed)
        dump_inventory(fleet, options.workdir / "inventory.yaml")
        placed = evaluate_placement(
            blueprint.placement,
            fleet,
            placement_name=blueprint.name,
            namespace=blueprint.namespace,
            now=datetime.now(UTC),
        )
        if not placed.decided:
            raise InputError(f"{blueprint.file}: the placement selects no cluster of the inventory")
        players.register(fleet)
        players.place(placed, namespace=blueprint.namespace, placement=blueprint.name)
    roster = players.decided_clusters(blueprint.namespace, blueprint.name)
    emit(
        "start",
        {
            "experiment": blueprint.name,
            "rounds": blueprint.rounds,
            "clusters": len(roster),
            "resumed": world.resumed,
            "workdir": str(options.workdir),
        },
    )
    base_env = {"PATH": os.environ.get("PATH", ""), "FL_SIMULATION": "1"}
    agent = LocalAgent(
        players,
        remote=world.remote,
        branch=BRANCH,
        jobs_dir=options.workdir / "jobs",
        path=world.path,
        experiment=blueprint.name,
        base_env=base_env,
    )
    warm_parent()  # imported once here, shared by every forked worker
    try:
        with WorkerPool(options.jobs or usable_cores()) as pool:
            world_loop = _Loop(
                options=options,
                world=world,
                repo=repo,
                hub=hub,
                agent=agent,
                pool=pool,
                emit=emit,
                byzantine=_byzantine(options, roster),
            )
            result = world_loop.reconcile()
            while world_loop.running():
                result = world_loop.tick(result)
    except BaseException:
        _stop_shard_workers(world)
        raise
    timings, measured = world_loop.timings, world_loop.measured
    centralized = world_loop.centralized
    rows = _report_rows(repo, world.path, measured)
    state = read_round_state(repo.root / world.path)
    assert state is not None
    from fl_gitops.render import model_uri

    final_path = model_uri(world.store_uri, state.model_digest).removeprefix("file://")
    tampered = _tampered_rows(world_loop.tampered, rows)
    report = SimulationReport(
        experiment=blueprint.name,
        phase=state.phase,
        rounds=rows,
        final_model=state.model_digest,
        final_model_path=final_path,
        config_repo=str(world.remote.resolve()),
        centralized_accuracy=centralized,
        seconds=time.perf_counter() - wall_start,
        timings=timings,
        tampered=tampered,
        message=state.message,
        plotted=options.plot and bool(rows),
    )
    (options.workdir / "report.json").write_text(json.dumps(report.to_json(), indent=2) + "\n")
    if report.plotted:  # a run with no aggregated round has nothing to draw: no empty axes
        from fl_gitops.history import plot_rounds, round_rows

        plot_rounds(
            round_rows(repo, world.path),
            options.workdir / "rounds.png",
            title=blueprint.name,
            baseline=centralized,  # the centralized baseline, drawn when it was measured
        )
    return report


def _stop_shard_workers(world: World) -> None:
    """A run stopped (Ctrl-C, SIGTERM, an error) leaves no shard worker behind: the local
    Job controller's detached workers are killed and their Jobs forgotten, and a resumed
    run creates the round's Job again (its name comes from the same inputs)."""
    from fl_gitops.hub import HubError, LocalHub

    with contextlib.suppress(HubError, OSError):
        LocalHub(world.hub).delete_all_shard_jobs()


def _open_hub(options: SimulationOptions, world: World) -> tuple[Players, Any]:
    """The hub's players and the ``Hub`` the reconcile pass reads, for ``options.hub``."""
    if options.hub == "kubernetes":
        from fl_gitops.hub import KubernetesHub, LocalHub
        from fl_gitops.simulate._kube import KubeJobController, KubePlayers, KubeShardHub

        hub = KubernetesHub.from_config(kubeconfig=options.kubeconfig, context=options.context)
        admin = KubernetesHub.api_client_from_config(
            kubeconfig=options.kubeconfig, context=options.context
        )
        # the shards' Job is created on the server; the simulation plays its Job controller
        jobs = KubeJobController(admin, LocalHub(world.hub))
        return KubePlayers(admin, hub), KubeShardHub(hub, jobs)
    from fl_gitops.hub import LocalHub

    local = LocalHub(world.hub)
    return LocalPlayers(local), local


def _row(record: dict[str, Any], seconds: float) -> dict[str, Any]:
    from fl_gitops.history import round_epsilon, round_metric

    return {
        "round": record.get("round"),
        "accuracy": round_metric(record, "accuracy"),
        "loss": round_metric(record, "loss"),
        "contributors": len(record.get("contributors") or []),
        "rejected": len(record.get("rejected") or {}),
        "seconds": round(seconds, 3),
        "epsilon": round_epsilon(record),
    }


def _report_rows(repo: Any, path: str, measured: dict[int, float]) -> list[dict[str, Any]]:
    """The rounds as Git records them; seconds as measured where this session ran them."""
    from fl_gitops.history import round_rows

    return [
        {
            "round": r.round,
            "accuracy": r.accuracy,
            "loss": r.loss,
            "contributors": r.contributors,
            "rejected": r.rejected,
            "seconds": measured.get(r.round, r.seconds),
            "epsilon": r.epsilon,
            "model": r.model,
            "rejected_reasons": dict(r.rejected_reasons),
        }
        for r in round_rows(repo, path)
    ]


def _tampered_rows(
    tampered: list[tuple[int, str, str]], rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each tampered update with what became of it: the round record's rejection when
    its round was aggregated (the last attempt's Job is the one aggregated), else
    ``aggregated: false`` (an attempt retried or failed below quorum, in Git's log)."""
    reasons = {row["round"]: row["rejected_reasons"] for row in rows}
    last_job = {round_: job for round_, job, _ in tampered}
    out = []
    for round_, job, cluster in tampered:
        aggregated = round_ in reasons and job == last_job[round_]
        out.append(
            {
                "round": round_,
                "job": job,
                "cluster": cluster,
                "aggregated": aggregated,
                "rejected": reasons[round_].get(cluster) if aggregated else None,
            }
        )
    return out


def _centralized_job(config: RoundConfig, rounds: int) -> float:
    """Centralized training of the round config's model, data and train settings, for as
    many epochs as the federation runs in all."""
    from fl_gitops.client.train import train_centralized

    train = dataclasses.replace(config.train, epochs=rounds * config.train.epochs)
    metrics = train_centralized(config.model, config.data, train, seed=config.train.seed)
    return float(metrics["accuracy"])
