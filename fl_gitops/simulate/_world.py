"""The simulation's world on disk: a bare config repo, a file store, a local hub, a fleet.

Everything lives in one work directory, so a second run in the same directory resumes:
the config repo (and so the round) is whatever was last committed, the store keeps every
model and update, and the local hub keeps the ManifestWorks and their status.
"""

from __future__ import annotations

import io
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML

from fl_gitops.blueprint import Blueprint, load_blueprint, read_bounded
from fl_gitops.errors import InputError

__all__ = ["World", "open_world"]


@dataclass(frozen=True)
class World:
    """Paths of one simulation, and the blueprint as committed to its config repo."""

    workdir: Path
    remote: Path
    store: Path
    hub: Path
    reconciler: Path
    blueprint: Blueprint
    resumed: bool

    @property
    def path(self) -> str:
        return self.blueprint.gitops.path

    @property
    def store_uri(self) -> str:
        return self.store.resolve().as_uri()


def git(cwd: Path, *args: str) -> str:
    """Run git for the simulation's own plumbing (creating and seeding the bare remote)."""
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise InputError(f"git {' '.join(args[:2])} in {cwd}: {done.stderr.strip()}")
    return done.stdout.strip()


def simulated_blueprint(
    source: bytes, file: str, *, store_uri: str, repo_uri: str, clusters: int, rounds: int | None
) -> str:
    """The user's blueprint, pointed at the local repo and store and sized to the fleet.

    Comments and order are kept (ruamel round-trip), so `git show` in the work directory
    reads like the original. Secrets are dropped: nothing leaves the machine.
    """
    yaml_rt = YAML(typ="rt")
    yaml_rt.preserve_quotes = True
    doc = yaml_rt.load(source)
    spec = doc["spec"]
    if rounds is not None:
        spec["rounds"] = rounds
    spec["placement"]["numberOfClusters"] = clusters
    completion = spec["completion"]
    completion["minClusters"] = min(int(completion["minClusters"]), clusters)
    spec["store"]["uri"] = store_uri
    for key in ("secretRef",):
        spec["store"].pop(key, None)
    gitops = spec["gitops"]
    gitops["repo"] = repo_uri
    gitops["branch"] = "main"
    gitops["mode"] = "direct"
    for key in ("pullRequest", "credentialsSecretRef"):
        gitops.pop(key, None)
    spec.setdefault("evaluation", {})["server"] = True
    out = io.StringIO()
    yaml_rt.dump(doc, out)
    return out.getvalue()


def open_world(
    blueprint_file: Path,
    workdir: Path,
    *,
    clusters: int,
    rounds: int | None,
) -> World:
    """Create the world in ``workdir``, or reopen the one already there.

    Raises:
        InputError: the blueprint is bad, or the work directory holds another experiment.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    remote = workdir / "config-repo.git"
    store = workdir / "store"
    paths = {
        "workdir": workdir,
        "remote": remote,
        "store": store,
        "hub": workdir / "hub",
        "reconciler": workdir / "reconciler",
    }
    original = load_blueprint(blueprint_file)  # located errors for the user's own file
    if (remote / "HEAD").exists():
        text = git(remote, "show", f"main:{original.gitops.path}/blueprint.yaml")
        blueprint = load_blueprint(
            f"{remote.name}:{original.gitops.path}/blueprint.yaml", text=text.encode()
        )
        if blueprint.name != original.name:
            raise InputError(
                f"{workdir}: holds experiment {blueprint.name!r}, not {original.name!r}; "
                "use another --workdir"
            )
        return World(**paths, blueprint=blueprint, resumed=True)
    store.mkdir(parents=True, exist_ok=True)
    text = simulated_blueprint(
        read_bounded(blueprint_file),
        str(blueprint_file),
        store_uri=store.resolve().as_uri(),
        repo_uri=remote.resolve().as_uri(),
        clusters=clusters,
        rounds=rounds,
    )
    blueprint = load_blueprint(blueprint_file, text=text.encode())
    git(workdir, "init", "-q", "--bare", "-b", "main", str(remote.name))
    seed = workdir / "seed"
    git(workdir, "clone", "-q", remote.name, seed.name)
    target = seed / blueprint.gitops.path / "blueprint.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    identity = ["-c", "user.name=fl-gitops simulate", "-c", "user.email=simulate@localhost"]
    git(seed, "add", "-A")
    git(seed, *identity, "commit", "-q", "-m", f"add experiment {blueprint.name}")
    git(seed, "push", "-q", "origin", "main")
    subprocess.run(["rm", "-rf", str(seed)], check=True)
    return World(**paths, blueprint=blueprint, resumed=False)


def generated_inventory(blueprint: Blueprint, clusters: int, seed: int = 0) -> list[dict[str, Any]]:
    """N ManagedClusters that the blueprint's placement selects."""
    from fl_gitops.placement import generate_inventory

    return generate_inventory(clusters, spec=blueprint.placement, seed=seed)


def load_inventory_file(path: Path) -> list[dict[str, Any]]:
    from fl_gitops.placement import load_inventory

    return load_inventory(path)


def dump_inventory(clusters: list[dict[str, Any]], path: Path) -> None:
    from fl_gitops.placement import inventory_list

    path.write_text(yaml.dump(inventory_list(clusters), Dumper=yaml.CSafeDumper, sort_keys=False))
