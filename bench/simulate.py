"""Benchmark `fl-gitops simulate` against a bare federated loop, and time its orchestration.

    python bench/simulate.py                            # digits-fedavg, 10 clusters, 30 rounds
    python bench/simulate.py --clusters 10 --rounds 30 --iid
    python bench/simulate.py --blueprint blueprints/digits-fedavg.yaml --skip-orchestration

Two ways of running the same federated training, each in a fresh Python process:

- ``bare``: the blueprint's model, data partition, local training and weighted FedAvg,
  clients trained in turn in one process: no Git, no store, no subprocesses. It uses the
  library's own pieces the way a cluster's Job does (``fl_gitops.client.run_client``):
  round 0 from ``initial_model_bytes``, each cluster's part by its place in the sorted
  roster, ``train_local`` seeded with ``client_seed(train.seed, round, rosterIndex)`` on one
  torch thread, then a float64 mean weighted by ``num_examples`` summed in cluster-name
  order (what the streaming aggregator does), and server-side evaluation on the held-out
  25% with ``evaluate_bytes``. With the same arithmetic the global models should be the
  same bytes; the bench prints how many rounds' digests match and the largest accuracy gap.
- ``simulate``: ``fl_gitops.simulate.run_simulation`` called in the child process on a fresh
  temporary work directory (the same call the CLI makes, without the rich display and
  without the PNG plot; warm workers forked from that child, one per core).

Wall time is measured inside each child from before its heavy imports to the end (the
interpreter's own start-up, the same for both, is left out). Memory is the child's process
tree, seen from this process: /proc is sampled every 0.1 s and the RSS and PSS of the child
and all its descendants are summed (PSS splits pages that forked workers share with their
parent, so it does not count them twice; RSS does). ``getrusage`` cannot give the tree's
sum: for RUSAGE_CHILDREN Linux reports the largest single descendant's peak, so it is
printed only as a cross-check.

Orchestration: the same simulation with a small model (logreg, 1 local epoch) for 3 rounds
at 10 and 100 clusters, with library functions wrapped from the outside (in the child, before
the run) to attribute time: the reconcile pass (fetch and checkout, reading the blueprint and
state, hub status reads, aggregation, server-side evaluation, rendering and writing files,
git add/diff, commit, push), the local Argo CD sync (checkout of the pushed tip, applying
ManifestWorks, preparing each Job's command line), training in the worker pool, and status
reports. Times are exclusive (a wrapped call's time excludes wrapped calls inside it); what
no wrapper covers is shown as "unattributed". Round 1 carries the one-off costs (creating the
repos, placement, forking and warming the workers), so it is shown apart from later rounds.
No library code is changed.
"""

from __future__ import annotations

import argparse
import functools
import io
import itertools
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

DEFAULT_BLUEPRINT = Path(__file__).resolve().parent.parent / "blueprints" / "digits-fedavg.yaml"
SAMPLE_SECONDS = 0.1
ORCHESTRATION_ROUNDS = 3
ORCHESTRATION_CLUSTERS = (10, 100)


# ------------------------------------------------------------------ blueprint copies


def blueprint_copy(source: Path, target: Path, edit: Callable[[Any], None]) -> Path:
    """Write an edited copy of a blueprint (ruamel round trip: comments and order kept)."""
    from ruamel.yaml import YAML

    yaml_rt = YAML(typ="rt")
    doc = yaml_rt.load(source.read_text(encoding="utf-8"))
    edit(doc)
    out = io.StringIO()
    yaml_rt.dump(doc, out)
    target.write_text(out.getvalue(), encoding="utf-8")
    return target


def _iid(doc: Any) -> None:
    doc["spec"]["client"]["data"]["partition"] = {"kind": "iid", "seed": 7}


def _small(doc: Any) -> None:
    client = doc["spec"]["client"]
    client["model"] = {"builtin": "logreg"}
    client["train"]["epochs"] = 1


# ------------------------------------------------------------------ the bare loop (child)


def bare_loop(blueprint_file: Path, clusters: int, rounds: int) -> dict[str, Any]:
    """The blueprint's federated training, clients in turn in this process."""
    import numpy as np
    import torch

    from fl_gitops.blueprint import load_blueprint
    from fl_gitops.client.data import load_local_data, server_test_set
    from fl_gitops.client.roundconfig import OptimizerConfig, TrainConfig
    from fl_gitops.client.train import client_seed, evaluate_bytes, train_local
    from fl_gitops.models import bytes_to_tensors, digest_of, initial_model_bytes, tensors_to_bytes
    from fl_gitops.models.torch import build_model, load_tensors, module_to_tensors

    blueprint = load_blueprint(blueprint_file)
    strategy = blueprint.strategy.name
    if strategy not in ("fedavg", "fedprox"):
        raise SystemExit(
            f"{blueprint_file}: spec.strategy.name: the bare loop does FedAvg's weighted "
            f"mean only (fedavg or fedprox), got {strategy!r}"
        )
    prox_mu = float(blueprint.strategy.options.get("mu", 0.0)) if strategy == "fedprox" else 0.0
    model_cfg = blueprint.client["model"]
    data_cfg = blueprint.client["data"]
    train = blueprint.client["train"]
    opt = train["optimizer"]
    train_cfg = TrainConfig(
        epochs=train["epochs"],
        batch_size=train["batchSize"],
        optimizer=OptimizerConfig(
            opt["name"], opt["lr"], opt.get("momentum", 0.0), opt.get("weightDecay", 0.0)
        ),
        seed=train.get("seed", 0),
    )
    torch.set_num_threads(1)  # what run_client does: one intra-op thread per Job
    x_test, y_test = server_test_set(data_cfg)
    model_bytes = initial_model_bytes(model_cfg, data_cfg)
    rows = []
    for round_number in range(1, rounds + 1):
        start = time.perf_counter()
        base = bytes_to_tensors(model_bytes)
        acc = {name: np.zeros(t.size, dtype=np.float64) for name, t in base.items()}
        total = 0.0
        # The roster is sorted by cluster name; rosterIndex is the place in it, and the
        # aggregator sums in that same order.
        for index in range(clusters):
            module = load_tensors(build_model(model_cfg, data_cfg), base)
            data = load_local_data(data_cfg, index, clusters)
            train_local(
                module,
                data,
                train_cfg,
                seed=client_seed(train_cfg.seed, round_number, index),
                prox_mu=prox_mu,
            )
            weight = float(data.num_examples)
            for name, values in module_to_tensors(module).items():
                acc[name] += np.multiply(values.ravel(), weight, dtype=np.float64)
            total += weight
        new = {
            name: (acc[name] / total).reshape(base[name].shape).astype(base[name].dtype)
            for name in base
        }
        model_bytes = tensors_to_bytes(new)
        metrics = evaluate_bytes(
            model_bytes, x_test, y_test, model_cfg=model_cfg, data_cfg=data_cfg
        )
        rows.append(
            {
                "round": round_number,
                "accuracy": metrics["accuracy"],
                "loss": metrics["loss"],
                "seconds": time.perf_counter() - start,
                "model": digest_of(model_bytes),
            }
        )
    return {"rounds": rows, "final_model": rows[-1]["model"]}


# ------------------------------------------------------------------ the simulation (child)


class Profiler:
    """Exclusive wall time per category, from wrappers put around library functions."""

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._stack: list[list[Any]] = []  # [category, time spent in wrapped callees]

    def snapshot(self) -> dict[str, float]:
        return dict(self.totals)

    def inside(self, category: str) -> bool:
        return any(frame[0] == category for frame in self._stack)

    def wrap(self, owner: Any, attr: str, category: str | Callable[[], str]) -> None:
        original = getattr(owner, attr)
        profiler = self

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            name = category() if callable(category) else category
            profiler._stack.append([name, 0.0])
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                _, nested = profiler._stack.pop()
                profiler.totals[name] += elapsed - nested
                profiler.calls[name] += 1
                if profiler._stack:
                    profiler._stack[-1][1] += elapsed

        setattr(owner, attr, timed)


RECONCILE = "reconcile: other (decide, records, YAML)"


def instrument(profiler: Profiler) -> None:
    """Wrap the functions a simulated round goes through (module attributes, not code)."""
    import fl_gitops.reconcile
    import fl_gitops.reconcile._pass as pass_module
    import fl_gitops.render
    from fl_gitops.gitops import ConfigRepo
    from fl_gitops.hub import LocalHub
    from fl_gitops.simulate._agent import LocalAgent
    from fl_gitops.simulate._workers import WorkerPool
    from fl_gitops.store import ModelStore

    def status(kind: str) -> Callable[[], str]:
        def name() -> str:
            where = "reconcile" if profiler.inside(RECONCILE) else "sim loop"
            return f"{where}: hub {kind}"

        return name

    profiler.wrap(fl_gitops.reconcile, "reconcile_once", RECONCILE)
    profiler.wrap(ConfigRepo, "sync", "reconcile: git fetch + checkout")
    profiler.wrap(ConfigRepo, "publish", "reconcile: git add/diff (publish loop)")
    profiler.wrap(ConfigRepo, "_commit", "reconcile: git commit")
    profiler.wrap(ConfigRepo, "_push", "reconcile: git push")
    profiler.wrap(ConfigRepo, "last_change_time", "reconcile: read blueprint, state, git log")
    profiler.wrap(ConfigRepo, "head", "reconcile: read blueprint, state, git log")
    profiler.wrap(pass_module, "load_blueprint", "reconcile: read blueprint, state, git log")
    profiler.wrap(pass_module, "read_round_state", "reconcile: read blueprint, state, git log")
    profiler.wrap(pass_module, "render_experiment", "reconcile: render")
    profiler.wrap(pass_module, "plan_changes", "reconcile: write rendered files")
    profiler.wrap(pass_module, "apply_changes", "reconcile: write rendered files")
    profiler.wrap(pass_module, "aggregate_from_store", "reconcile: aggregate")
    profiler.wrap(pass_module, "_evaluate", "reconcile: evaluate (server test set)")
    profiler.wrap(ModelStore, "put_model", "reconcile: store the new model")
    profiler.wrap(LocalHub, "decided_clusters", status("status read"))
    profiler.wrap(LocalHub, "job_statuses", status("status read"))
    profiler.wrap(LocalAgent, "sync", "sync: git fetch + reset, read kustomization")
    profiler.wrap(LocalHub, "sync_works", "sync: apply ManifestWorks to the hub")
    profiler.wrap(LocalAgent, "_prepare", "sync: prepare Job argv, env, mounts")
    profiler.wrap(LocalHub, "report_job", "status: report Job results")
    profiler.wrap(LocalHub, "_save", "status: hub state files")
    profiler.wrap(WorkerPool, "run", "train: worker pool (Jobs)")
    profiler.wrap(fl_gitops.render, "read_round_state", "sim loop: read round state")


def simulate_child(
    blueprint_file: Path, clusters: int, rounds: int, jobs: int, *, profile: bool
) -> dict[str, Any]:
    """``run_simulation`` on a fresh work directory; with ``profile``, time its parts."""
    from fl_gitops.simulate import SimulationOptions, run_simulation

    profiler = Profiler()
    if profile:
        instrument(profiler)
    marks: list[tuple[float, dict[str, float]]] = []

    def on_event(kind: str, data: Mapping[str, Any]) -> None:
        if kind == "round":
            marks.append((time.perf_counter(), profiler.snapshot()))

    with tempfile.TemporaryDirectory(prefix="fl-bench-sim-") as tmp:
        options = SimulationOptions(
            workdir=Path(tmp) / "sim", clusters=clusters, rounds=rounds, jobs=jobs, plot=False
        )
        marks.append((time.perf_counter(), profiler.snapshot()))
        report = run_simulation(blueprint_file, options, on_event=on_event)
        git_dir = str(options.workdir / "config-repo.git")
        commits = subprocess.run(
            ["git", "--git-dir", git_dir, "rev-list", "--count", "main"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    # One window per round: from the previous round's aggregation commit (round 1: from
    # the call) to this round's. Round 1 thus carries the work dir, placement and workers.
    windows = [
        {"wall": t1 - t0, "parts": {k: after[k] - before.get(k, 0.0) for k in after}}
        for (t0, before), (t1, after) in itertools.pairwise(marks)
    ]
    return {
        "rounds": report.rounds,
        "final_model": report.final_model,
        "timings": report.timings,
        "seconds": report.seconds,
        "commits": int(commits),
        "windows": windows,
        "jobs": jobs or os.cpu_count() or 1,
    }


def child_main(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    blueprint = Path(args.blueprint)
    if args.child == "bare":
        out = bare_loop(blueprint, args.clusters, args.rounds)
    else:
        out = simulate_child(
            blueprint, args.clusters, args.rounds, args.jobs, profile=args.child == "profile"
        )
    out["wall"] = time.perf_counter() - start
    out["ru_self_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["ru_children_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    Path(args.out).write_text(json.dumps(out), encoding="utf-8")
    return 0


# ------------------------------------------------------------------ memory of a process tree


def _children_of(root: int) -> list[int]:
    """``root`` and every live descendant, from the parent links in /proc/<pid>/stat."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        parents[int(entry)] = int(fields[1])
    tree, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, ppid in parents.items() if ppid in frontier]
        tree.extend(frontier)
    return tree


def _rss_pss(pid: int) -> tuple[int, int]:
    """Resident and proportional set size of one process, in bytes (0, 0 if it is gone)."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, pss


class TreeSampler:
    """Samples the summed RSS and PSS of a process tree until stopped; keeps the peaks."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_rss = 0
        self.peak_pss = 0
        self.max_procs = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            tree = _children_of(self.pid)
            sizes = [_rss_pss(pid) for pid in tree]
            self.peak_rss = max(self.peak_rss, sum(s[0] for s in sizes))
            self.peak_pss = max(self.peak_pss, sum(s[1] for s in sizes))
            self.max_procs = max(self.max_procs, sum(1 for s in sizes if s[0]))
            self._stop.wait(SAMPLE_SECONDS)

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_child(kind: str, blueprint: Path, clusters: int, rounds: int, jobs: int) -> dict[str, Any]:
    """Run one part in a fresh interpreter; return its result with the tree's memory."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = Path(f.name)
    argv = [
        sys.executable,
        __file__,
        "--child",
        kind,
        "--blueprint",
        str(blueprint),
        "--clusters",
        str(clusters),
        "--rounds",
        str(rounds),
        "--jobs",
        str(jobs),
        "--out",
        str(out),
    ]
    start = time.perf_counter()
    proc = subprocess.Popen(argv)
    with TreeSampler(proc.pid) as sampler:
        code = proc.wait()
    elapsed = time.perf_counter() - start
    if code != 0:
        raise SystemExit(f"the {kind} run failed (exit {code}): {' '.join(argv)}")
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    out.unlink()
    result["process_seconds"] = elapsed
    result["tree_rss_mb"] = sampler.peak_rss / 2**20
    result["tree_pss_mb"] = sampler.peak_pss / 2**20
    result["tree_procs"] = sampler.max_procs
    return result


# ------------------------------------------------------------------ reporting


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:6.2f}%"


def compare(blueprint: Path, label: str, clusters: int, rounds: int, jobs: int) -> None:
    print(f"\n== {label}: {blueprint.name}, {clusters} clusters, {rounds} rounds ==", flush=True)
    bare = run_child("bare", blueprint, clusters, rounds, jobs)
    sim = run_child("simulate", blueprint, clusters, rounds, jobs)
    print(f"{'round':>5}  {'bare acc':>9}  {'simulate acc':>12}  {'diff (pt)':>9}  same model")
    worst = 0.0
    same = 0
    for b, s in zip(bare["rounds"], sim["rounds"], strict=True):
        diff = 100 * abs(b["accuracy"] - s["accuracy"])
        worst = max(worst, diff)
        same += b["model"] == s["model"]
        print(
            f"{b['round']:>5}  {_pct(b['accuracy']):>9}  {_pct(s['accuracy']):>12}  "
            f"{diff:9.2f}  {'yes' if b['model'] == s['model'] else 'no'}"
        )
    print(
        f"largest accuracy difference: {worst:.2f} points; identical global model (sha256) "
        f"in {same} of {len(bare['rounds'])} rounds; simulate made {sim['commits']} commits"
    )
    ratio = sim["wall"] / bare["wall"]
    print(
        f"wall time (in the child, imports included): bare {bare['wall']:.2f}s, "
        f"simulate {sim['wall']:.2f}s, ratio simulate/bare {ratio:.2f} (target <= 1.5)"
    )
    print(
        f"wall time (whole process, interpreter start included): bare "
        f"{bare['process_seconds']:.2f}s, simulate {sim['process_seconds']:.2f}s, ratio "
        f"{sim['process_seconds'] / bare['process_seconds']:.2f}"
    )
    t = sim["timings"]
    print(
        f"simulate's own timings (report.json): reconcile {t['reconcile']:.2f}s, "
        f"sync {t['sync']:.2f}s, train {t['train']:.2f}s, of {sim['seconds']:.2f}s"
    )
    for name, r in (("bare", bare), ("simulate", sim)):
        print(
            f"peak memory {name:>8}: process tree {r['tree_rss_mb']:.0f} MB RSS summed, "
            f"{r['tree_pss_mb']:.0f} MB PSS summed (sampled every {SAMPLE_SECONDS}s, up to "
            f"{r['tree_procs']} processes); getrusage: self {r['ru_self_mb']:.0f} MB, "
            f"largest child {r['ru_children_mb']:.0f} MB"
        )


def orchestration(blueprint: Path, tmp: Path, jobs: int) -> None:
    small = blueprint_copy(blueprint, tmp / "small.yaml", _small)
    print(
        f"\n== orchestration per round: {blueprint.name} with logreg, 1 epoch, "
        f"{ORCHESTRATION_ROUNDS} rounds (ms, exclusive) ==",
        flush=True,
    )
    results = {
        n: run_child("profile", small, n, ORCHESTRATION_ROUNDS, jobs)
        for n in ORCHESTRATION_CLUSTERS
    }
    columns: list[tuple[str, dict[str, float], float]] = []
    for n, r in results.items():
        windows = r["windows"]
        first = windows[0]
        later = windows[1:] or windows
        mean = {
            k: sum(w["parts"].get(k, 0.0) for w in later) / len(later)
            for k in {k for w in later for k in w["parts"]}
        }
        columns.append((f"{n} r1", first["parts"], first["wall"]))
        columns.append((f"{n} r2+", mean, sum(w["wall"] for w in later) / len(later)))
    names = sorted({k for _, parts, _ in columns for k in parts})
    width = max(len(n) for n in [*names, "unattributed"])
    print(f"{'clusters, round':<{width}}  " + "  ".join(f"{c:>9}" for c, _, _ in columns))
    for name in names:
        cells = "  ".join(f"{1000 * parts.get(name, 0.0):9.1f}" for _, parts, _ in columns)
        print(f"{name:<{width}}  {cells}")
    rest = "  ".join(f"{1000 * (wall - sum(parts.values())):9.1f}" for _, parts, wall in columns)
    print(f"{'unattributed':<{width}}  {rest}")
    walls = "  ".join(f"{1000 * wall:9.1f}" for _, _, wall in columns)
    print(f"{'round wall time':<{width}}  {walls}")
    for n, r in results.items():
        acc = r["rounds"][-1]["accuracy"]
        print(
            f"{n} clusters: {len(r['rounds'])} rounds completed, {r['commits']} commits, final "
            f"accuracy {_pct(acc).strip()}, {r['wall']:.1f}s in all, tree peak "
            f"{r['tree_pss_mb']:.0f} MB PSS / {r['tree_rss_mb']:.0f} MB RSS"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--blueprint", default=str(DEFAULT_BLUEPRINT))
    parser.add_argument("--clusters", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=0, help="simulate's workers (0: cores)")
    parser.add_argument("--iid", action="store_true", help="also run an IID copy")
    parser.add_argument("--skip-orchestration", action="store_true")
    parser.add_argument("--child", choices=["bare", "simulate", "profile"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args)
    blueprint = Path(args.blueprint).resolve()
    print(
        f"bench/simulate.py: {os.cpu_count()} cores, python {sys.version.split()[0]}; "
        "each run in a fresh process; simulate = fl_gitops.simulate.run_simulation in that "
        "process (fresh temp workdir, no plot)"
    )
    with tempfile.TemporaryDirectory(prefix="fl-bench-") as tmp:
        compare(blueprint, "as written", args.clusters, args.rounds, args.jobs)
        if args.iid:
            iid = blueprint_copy(blueprint, Path(tmp) / "iid.yaml", _iid)
            compare(iid, "IID copy", args.clusters, args.rounds, args.jobs)
        if not args.skip_orchestration:
            orchestration(blueprint, Path(tmp), args.jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
