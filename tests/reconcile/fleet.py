"""A config repo on a bare remote, a local hub, a file store, and clusters that answer.

The clusters here do not train with torch: they add a small deterministic step to the
global model, so that reconcile tests (which test Git, hub and store handling, not
learning) run in milliseconds and every rerun produces the same bytes. Syncing and
reporting are the simulation's own ``LocalAgent`` (Argo CD and the work agent).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from fl_gitops.gitops import ConfigRepo
from fl_gitops.hub import LocalHub
from fl_gitops.reconcile import reconcile_once
from fl_gitops.reports import report_data
from fl_gitops.simulate import LocalPlayers, Players
from fl_gitops.simulate._agent import LocalAgent, RoundWork
from fl_gitops.store import ModelStore
from fl_gitops.tensors import load_bytes, serialize

if TYPE_CHECKING:
    from fl_gitops.client.roundconfig import RoundConfig
    from fl_gitops.reconcile import PassResult

EXP = "digits-small"
PATH = f"experiments/{EXP}"


def blueprint_text(store: Path, **changes: Any) -> str:
    rounds = changes.get("rounds", 3)
    clusters = changes.get("clusters", 4)
    quorum = changes.get("min_clusters", 3)
    strategy = changes.get("strategy", "fedavg")
    mode = changes.get("mode", "direct")
    timeout = changes.get("timeout", "30m")
    return f"""apiVersion: fl-gitops.io/v1alpha1
kind: Experiment
metadata:
  name: {EXP}
  namespace: fl-system
spec:
  rounds: {rounds}
  placement:
    clusterSets: [fl-silos]
    numberOfClusters: {clusters}
  completion:
    minClusters: {quorum}
    timeout: {timeout}
  strategy:
    name: {strategy}
  client:
    image: ghcr.io/example/fl-gitops:0.1.0
    model:
      builtin: logreg
    data:
      builtin: digits
      partition: {{kind: iid, seed: 1}}
    train:
      epochs: 1
      batchSize: 16
      optimizer: {{name: sgd, lr: 0.1}}
  store:
    uri: file://{store}
  gitops:
    repo: https://git.example.com/fl-config.git
    branch: main
    path: {PATH}
    mode: {mode}
"""


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def reconcile_pass(tmp: Path, remote: Path, fleet: Fleet) -> PassResult:
    """One reconcile pass over the fleet's hub, from the clone ``tmp / "reconciler"``."""
    repo = ConfigRepo.open(str(remote), branch="main", workdir=tmp / "reconciler")
    return reconcile_once(repo, fleet.hub, path=PATH, now=datetime.now(UTC), sleep=lambda s: None)


def round_record(remote: Path, round_: int = 1) -> dict[str, Any]:
    """The round record the remote's main holds for ``round_``."""
    record: dict[str, Any] = yaml.safe_load(
        git(remote, "show", f"main:{PATH}/.history/round-{round_}.yaml")
    )
    return record


def make_remote(tmp: Path, blueprint: str) -> Path:
    """A bare remote whose main branch holds only the experiment's blueprint."""
    remote = tmp / "remote.git"
    git(tmp, "init", "-q", "--bare", "-b", "main", str(remote))
    seed = tmp / "seed"
    git(tmp, "clone", "-q", str(remote), str(seed))
    (seed / PATH).mkdir(parents=True)
    (seed / PATH / "blueprint.yaml").write_text(blueprint)
    git(seed, "add", "-A")
    git(seed, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "add experiment")
    git(seed, "push", "-q", "origin", "main")
    return remote


class Fleet:
    """The hub side of the loop for tests: the shipped ``LocalAgent`` plays Argo CD's sync
    and the work agent, and the clusters' Jobs write a deterministic update.

    ``players`` are the hub's writers: by default ``LocalPlayers`` over ``hub`` (a
    ``LocalHub``, also what the reconcile pass reads), or a real API server's.
    """

    def __init__(
        self,
        tmp: Path,
        remote: Path,
        store: Path,
        clusters: Iterable[str],
        *,
        hub_dir: Path | None = None,
        players: Players | None = None,
    ) -> None:
        self.tmp = tmp
        self.remote = remote
        self.store = ModelStore.open(f"file://{store}")
        self.hub = LocalHub(hub_dir) if hub_dir is not None else LocalHub()
        self.clusters = sorted(clusters)
        if players is None:
            self.hub.set_decisions("fl-system", EXP, self.clusters)
        self.players: Players = players or LocalPlayers(self.hub)
        self.agent = LocalAgent(
            self.players,
            remote=remote,
            branch="main",
            jobs_dir=tmp / "jobs",
            path=PATH,
            experiment=EXP,
            base_env={},
        )

    def sync(self) -> list[RoundWork]:
        """Apply the ManifestWorks at the remote's tip, pruning the rest (``LocalAgent``)."""
        return self.agent.sync()

    def run_jobs(self, *, fail: Iterable[str] = (), skip: Iterable[str] = ()) -> list[str]:
        """Each synced ManifestWork's Job writes an update, reports it through the hub (its
        result file) and reports done (or failure)."""
        fail, skip = set(fail), set(skip)
        ran = []
        for work in self.sync():
            if work.cluster in skip:
                continue
            if work.cluster in fail:
                self.agent.report(work, succeeded=False)
                continue
            self.write_result(work, self.write_update(work.config))
            self.agent.report(work, succeeded=True)
            ran.append(work.cluster)
        return ran

    @staticmethod
    def write_result(work: RoundWork, record: dict[str, Any]) -> None:
        """What the Job reports for its update: the result file the agent reads back."""
        data = report_data(record["sha256"], record["num_examples"], record["metrics"])
        work.result_file.parent.mkdir(parents=True, exist_ok=True)
        work.result_file.write_text(json.dumps(data))

    def write_update(self, config: RoundConfig) -> dict[str, Any]:
        tensors = load_bytes(self.store.get_model(config.global_digest))
        index = config.roster_index
        step = np.float32(0.01 * (index + 1))
        updated = {name: (t + step).astype(np.float32) for name, t in sorted(tensors.items())}
        meta = {
            "base_model": config.global_digest,
            "num_examples": 100 + 10 * index,
            "metrics": {"train_accuracy": 0.5 + 0.01 * index},
        }
        return self.store.put_update(config.round, config.cluster, serialize(updated), meta)
