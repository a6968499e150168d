"""The simulation's world on disk: a bare config repo, a file store, a local hub, a fleet.

Everything lives in one work directory, so a second run in the same directory resumes:
the config repo (and so the round) is whatever was last committed, the store keeps every
model and update, and the local hub keeps the ManifestWorks and their status.

A run killed at any point resumes: the config repo is created whole or not at all (in a
temporary directory, renamed into place), one left without its branch (killed by an
older version between ``git init`` and the first commit, or the branch deleted) gets the
branch back from the reconciler's clone, which saw its last tip, or, when nothing ever
reached it, its first commit again.

The reconcile passes sign their commits with the work dir's own ed25519 key
(``signing-key``, made on the first run), and ``allowed_signers`` beside it trusts that
key, so ``git verify-commit`` and ``fl-gitops verify --allowed-signers`` check the rounds.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML

from fl_gitops.blueprint import Blueprint, default, load_blueprint, read_bounded
from fl_gitops.errors import GitError, InputError
from fl_gitops.gitops import (
    BareRepo,
    Change,
    generate_signing_key,
    remember_signing_key,
    write_allowed_signers,
)

__all__ = ["BRANCH", "SIGNER", "World", "open_world"]

#: The config remote's branch: the simulated blueprint points there.
BRANCH = "main"
#: Who the simulation's commits are by, and the principal its allowed_signers trusts.
SIGNER_NAME = "fl-gitops simulate"
SIGNER = "simulate@localhost"


@dataclass(frozen=True)
class World:
    """Paths of one simulation, and the blueprint as committed to its config repo."""

    workdir: Path
    remote: Path
    store: Path
    hub: Path
    reconciler: Path
    signing_key: Path
    allowed_signers: Path
    blueprint: Blueprint
    resumed: bool

    @property
    def path(self) -> str:
        return self.blueprint.gitops.path

    @property
    def store_uri(self) -> str:
        return self.store.resolve().as_uri()


def simulated_blueprint(
    source: bytes,
    file: str,
    *,
    store_uri: str,
    repo_uri: str,
    clusters: int,
    rounds: int | None,
    aggregation_shards: int | None = None,
) -> str:
    """The user's blueprint, pointed at the local repo and store and sized to the fleet
    (and its aggregation split in ``aggregation_shards``, when given).

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
    if aggregation_shards is not None:
        if spec.get("aggregation") is None:
            spec["aggregation"] = {}
        spec["aggregation"]["shards"] = aggregation_shards
    quorum = (spec.get("completion") or {}).get(
        "minClusters", default("spec", "completion", "minClusters")
    )
    if int(quorum) > clusters:  # a quorum left to its default is lowered too
        spec.setdefault("completion", {})["minClusters"] = clusters
    spec["store"]["uri"] = store_uri
    for key in ("secretRef",):
        spec["store"].pop(key, None)
    gitops = spec["gitops"]
    gitops["repo"] = repo_uri
    gitops["branch"] = BRANCH
    gitops["mode"] = "direct"
    for key in ("pullRequest", "credentialsSecretRef"):
        gitops.pop(key, None)
    client_env = spec["client"].get("env")
    if client_env:  # a Secret on a cluster is not there to read: its variables go
        for index in reversed(range(len(client_env))):
            if "valueFrom" in client_env[index]:
                del client_env[index]
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
    aggregation_shards: int | None = None,
) -> World:
    """Create the world in ``workdir``, or reopen the one already there.

    Raises:
        InputError: the blueprint is bad, or the work directory holds another experiment.
    """
    _make_workdir(workdir)
    remote = workdir / "config-repo.git"
    store = workdir / "store"
    paths = {
        "workdir": workdir,
        "remote": remote,
        "store": store,
        "hub": workdir / "hub",
        "reconciler": workdir / "reconciler",
        "signing_key": workdir / "signing-key",
        "allowed_signers": workdir / "allowed_signers",
    }
    original = load_blueprint(blueprint_file)  # located errors for the user's own file
    not_ours = InputError(
        f"--workdir {workdir}: its config-repo.git is not a bare git repository a "
        "simulation made; use another --workdir"
    )
    if remote.exists() and not ((remote / "HEAD").is_file() and (remote / "objects").is_dir()):
        raise not_ours  # before anything is written into someone else's directory
    _ensure_signing(paths["signing_key"], paths["allowed_signers"], paths["reconciler"])
    store.mkdir(parents=True, exist_ok=True)
    text = simulated_blueprint(
        read_bounded(blueprint_file),
        str(blueprint_file),
        store_uri=store.resolve().as_uri(),
        repo_uri=remote.resolve().as_uri(),
        clusters=clusters,
        rounds=rounds,
        aggregation_shards=aggregation_shards,
    )
    first = {
        "files": {f"{original.gitops.path}/blueprint.yaml": text.encode()},
        "change": Change(message=f"add experiment {original.name}"),
        "user_name": SIGNER_NAME,
        "user_email": SIGNER,
    }
    if not remote.exists():
        BareRepo.create(remote, branch=BRANCH, **first)  # type: ignore[arg-type]
        blueprint = load_blueprint(blueprint_file, text=text.encode())
        return World(**paths, blueprint=blueprint, resumed=False)
    committed = f"{original.gitops.path}/blueprint.yaml"
    try:
        bare = BareRepo(remote)
        # Killed before the first commit reached the branch, or the branch deleted: the
        # reconciler's clone saw its last tip; without one the run starts again.
        if (
            bare.branch_tip(BRANCH) is None
            and bare.restore_branch(BRANCH, paths["reconciler"]) is None
        ):
            bare.write_first_commit(BRANCH, **first)  # type: ignore[arg-type]
            blueprint = load_blueprint(blueprint_file, text=text.encode())
            return World(**paths, blueprint=blueprint, resumed=False)
        (data,) = bare.read_blobs(BRANCH, [committed])
    except GitError:
        raise not_ours from None  # git's own words would name git's internals, not the fix
    if data is None:
        raise InputError(
            f"--workdir {workdir}: holds another experiment than {blueprint_file}'s; "
            "use another --workdir"
        )
    blueprint = load_blueprint(f"{remote.name}:{committed}", text=data)
    if data != text.encode():
        there = simulated_blueprint(
            read_bounded(blueprint_file),
            str(blueprint_file),
            store_uri=blueprint.store.uri,
            repo_uri=blueprint.gitops.repo,
            clusters=clusters,
            rounds=rounds,
            aggregation_shards=aggregation_shards,
        )
        if data == there.encode():  # the same run, its blueprint pointing where it was made
            raise InputError(
                f"--workdir {workdir}: was made in another directory (its committed "
                "blueprint names the store and repo there); run it there, or use another "
                "--workdir"
            )
        made = load_blueprint(blueprint_file, text=text.encode())
        raise InputError(f"--workdir {workdir}: {_difference(blueprint, made)}")
    return World(**paths, blueprint=blueprint, resumed=True)


def _make_workdir(workdir: Path) -> None:
    """The work directory, made when missing; a path that cannot be one is the user's to
    change, named by the flag that gave it.

    Raises:
        InputError: ``workdir`` is a file, or cannot be made.
    """
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise InputError(f"--workdir {workdir}: exists and is not a directory") from None
    except OSError as exc:
        raise InputError(
            f"--workdir {workdir}: cannot be made ({exc.strerror or 'an OS error'})"
        ) from None


def _difference(there: Blueprint, asked: Blueprint) -> str:
    """Why a work dir cannot resume this run, said by the flag or file to change: a
    resumed run must be the run that was started, or its rounds would mix two experiments.
    Names and counts only: nothing else from either blueprint is repeated."""
    again = "; run it again as it was started, or use another --workdir"
    if there.name != asked.name:
        return f"holds another experiment than {asked.file}'s{again}"
    if there.rounds != asked.rounds:
        return f"was started with --rounds {there.rounds}, not {asked.rounds}{again}"
    started, now = (b.placement.get("numberOfClusters") for b in (there, asked))
    if started != now:
        return f"was started with --clusters {started}, not {now}{again}"
    if there.aggregation.shards != asked.aggregation.shards:
        return (
            f"was started with --aggregation-shards {there.aggregation.shards}, "
            f"not {asked.aggregation.shards}{again}"
        )
    return f"was started from another version of {asked.file}{again}"


def _ensure_signing(key: Path, allowed: Path, reconciler: Path) -> None:
    """The work dir's signing key and allowed_signers (made once), and the reconciler's
    clone set to sign with it."""
    public = key.with_name(key.name + ".pub")
    if not (key.is_file() and public.is_file() and allowed.is_file()):
        # The first run, or one killed while making them: make them (again).
        key.unlink(missing_ok=True)
        public.unlink(missing_ok=True)
        line = generate_signing_key(key, comment=SIGNER)
        write_allowed_signers(allowed, principal=SIGNER, public_key=line)
    remember_signing_key(reconciler, key)


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
