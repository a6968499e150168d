"""A config repo with an experiment one round in, and a user's clone of it.

Shared by the tests of "where you stand is enough" and of status/history's ``-o``: a bare
remote (the repo the hub syncs), one round aggregated and the next running, through the
real reconcile command over a local hub (tests/reconcile/fleet.py's deterministic
clusters), and the environment of a user with no hub configured.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

import pytest

from fl_gitops.cli import main
from tests.reconcile.fleet import PATH, Fleet, blueprint_text, git, make_remote

CLUSTERS = ["cluster-a", "cluster-b", "cluster-c"]
ENV = (
    "FL_GITOPS_REPO",
    "FL_GITOPS_PATH",
    "FL_GITOPS_BRANCH",
    "FL_GITOPS_KUBECONFIG",
    "FL_GITOPS_LOCAL_HUB",
    "KUBECONFIG",
    "KUBERNETES_SERVICE_HOST",
    "GIT_DIR",
    "GIT_WORK_TREE",
)


@dataclass
class Experiment:
    remote: Path
    hub: Path
    store: Path
    fleet: Fleet

    def reconcile(self) -> None:
        """One pass of the real command (its line kept off the test's captured output)."""
        argv = ["reconcile", "--repo", str(self.remote), "--path", PATH, "--local-hub"]
        with contextlib.redirect_stdout(io.StringIO()):
            assert main([*argv, str(self.hub), "--workdir", str(self.remote.parent / "rw")]) == 0


def no_hub_user(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A user with an empty home (no ~/.kube/config), no KUBECONFIG, no fl-gitops env,
    and a cache of clones under ``tmp``; the walk up for a work tree stops at ``tmp``."""
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp / "cache"))
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp.parent))
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


def one_round_in(tmp: Path, *, clone_at: str | None = None) -> Experiment:
    """Round 1 aggregated from three clusters, round 2 running: two reported, one not."""
    store = tmp / "store"
    remote = make_remote(tmp, blueprint_text(store, clusters=3, min_clusters=2))
    hub = tmp / "hub"
    fleet = Fleet(tmp, remote, store, CLUSTERS, hub_dir=hub)
    experiment = Experiment(remote, hub, store, fleet)
    experiment.reconcile()
    fleet.run_jobs()
    if clone_at is not None:  # a clone made before round 1 was aggregated
        clone(remote, tmp / clone_at)
    experiment.reconcile()
    fleet.run_jobs(skip=["cluster-c"])
    return experiment


def clone(remote: Path, where: Path) -> Path:
    git(where.parent, "clone", "-q", str(remote), str(where))
    return where


__all__ = ["CLUSTERS", "PATH", "Experiment", "clone", "git", "no_hub_user", "one_round_in"]
