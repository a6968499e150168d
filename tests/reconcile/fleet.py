"""A config repo on a bare remote, a local hub, a file store, and clusters that answer.

The clusters here do not train with torch: they add a small deterministic step to the
global model, so that reconcile tests (which test Git, hub and store handling, not
learning) run in milliseconds and every rerun produces the same bytes. Syncing plays
Argo CD: it reads the kustomization at the remote's tip and applies its ManifestWorks.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from fl_gitops.hub import LocalHub
from fl_gitops.store import ModelStore
from fl_gitops.tensors import load_bytes, serialize

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
    """The hub side of the loop for tests: Argo CD's sync and the clusters' Jobs."""

    def __init__(
        self,
        tmp: Path,
        remote: Path,
        store: Path,
        clusters: Iterable[str],
        *,
        hub_dir: Path | None = None,
    ) -> None:
        self.tmp = tmp
        self.remote = remote
        self.store = ModelStore.open(f"file://{store}")
        self.hub = LocalHub(hub_dir) if hub_dir is not None else LocalHub()
        self.clusters = sorted(clusters)
        self.hub.set_decisions("fl-system", EXP, self.clusters)
        self.checkout = tmp / "argocd"
        git(tmp, "clone", "-q", str(remote), str(self.checkout))

    def sync(self) -> list[dict[str, Any]]:
        """Pull the remote's tip and apply the experiment's ManifestWorks, pruning the rest."""
        git(self.checkout, "fetch", "-q", "origin")
        git(self.checkout, "reset", "-q", "--hard", "origin/main")
        exp = self.checkout / PATH
        works = []
        kustomization = exp / "kustomization.yaml"
        if kustomization.exists():
            for rel in yaml.safe_load(kustomization.read_text())["resources"]:
                for obj in yaml.safe_load_all((exp / rel).read_text()):
                    if obj and obj["kind"] == "ManifestWork":
                        works.append(obj)
        self.hub.sync_works(works, experiment=EXP)
        return works

    def run_jobs(self, *, fail: Iterable[str] = (), skip: Iterable[str] = ()) -> list[str]:
        """Each synced ManifestWork's Job writes an update and reports done (or failure)."""
        fail, skip = set(fail), set(skip)
        ran = []
        for work in self.sync():
            cluster = work["metadata"]["namespace"]
            manifests = work["spec"]["workload"]["manifests"]
            job = next(m for m in manifests if m["kind"] == "Job")
            config_map = next(m for m in manifests if m["kind"] == "ConfigMap")
            config = json.loads(config_map["data"]["round.json"])
            if cluster in skip:
                continue
            if cluster in fail:
                self.hub.report_job(
                    cluster,
                    work["metadata"]["name"],
                    job_name=job["metadata"]["name"],
                    succeeded=False,
                )
                continue
            self.write_update(config)
            self.hub.report_job(
                cluster,
                work["metadata"]["name"],
                job_name=job["metadata"]["name"],
                succeeded=True,
            )
            ran.append(cluster)
        return ran

    def write_update(self, config: dict[str, Any]) -> None:
        base_digest = config["globalModel"]["digest"]
        tensors = load_bytes(self.store.get_model(base_digest))
        index = config["rosterIndex"]
        step = np.float32(0.01 * (index + 1))
        updated = {name: (t + step).astype(np.float32) for name, t in sorted(tensors.items())}
        meta = {
            "base_model": base_digest,
            "num_examples": 100 + 10 * index,
            "metrics": {"train_accuracy": 0.5 + 0.01 * index},
        }
        self.store.put_update(config["round"], config["cluster"], serialize(updated), meta)
