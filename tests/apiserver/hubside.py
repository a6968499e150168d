"""The reconcile loop's world on the real API server: repo, store, RBAC, a ServiceAccount token.

tests/reconcile's ``Fleet`` (a bare config remote, a file store, clusters that answer
without torch) with its hub side swapped for the real one: its ``LocalAgent``'s players
are ``KubePlayers``, so Argo CD's sync and the work agent's status reports go to the API
server as an administrator, while the reconcile
pass reads through a ``KubernetesHub`` authenticated as the experiment's own ServiceAccount,
with a token from the TokenRequest API and only the RBAC that ``fl-gitops render`` wrote.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from fl_gitops.devhub import ApiServer
from fl_gitops.hub import KubernetesHub
from fl_gitops.placement import evaluate_placement, generate_inventory, inventory_list
from fl_gitops.simulate import ARGOCD_MANAGER, KubePlayers
from fl_gitops.simulate._agent import RoundWork

from ..reconcile.fleet import EXP, PATH, Fleet, blueprint_text, git, make_remote

NOW = datetime(2026, 12, 1, tzinfo=UTC)
FL_GITOPS = str(Path(sys.executable).with_name("fl-gitops"))


def apply_objects(admin: Any, objects: Iterable[Mapping[str, Any]]) -> None:
    """Server-side apply as Argo CD does (its field manager), as an administrator."""
    from kubernetes import dynamic

    client = dynamic.DynamicClient(admin)
    for obj in objects:
        resource = client.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        meta = obj["metadata"]
        resource.server_side_apply(
            body=dict(obj),
            name=meta["name"],
            namespace=meta.get("namespace"),
            field_manager=ARGOCD_MANAGER,
            force_conflicts=True,
        )


def delete_objects(admin: Any, objects: Iterable[Mapping[str, Any]]) -> None:
    """Delete what ``apply_objects`` applied (cluster-scoped objects outlive a namespace)."""
    from kubernetes import dynamic
    from kubernetes.dynamic.exceptions import NotFoundError

    client = dynamic.DynamicClient(admin)
    for obj in objects:
        resource = client.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        meta = obj["metadata"]
        with contextlib.suppress(NotFoundError):
            resource.delete(name=meta["name"], namespace=meta.get("namespace"))


def service_account_token(admin: Any, namespace: str, name: str) -> str:
    """A bound token for ServiceAccount ``namespace/name``, from the TokenRequest API."""
    from kubernetes import client as k8s

    answer = k8s.CoreV1Api(admin).create_namespaced_service_account_token(
        name,
        namespace,
        k8s.AuthenticationV1TokenRequest(
            spec=k8s.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)
        ),
    )
    token: str = answer.status.token
    return token


class KubeFleet(Fleet):
    """``Fleet`` whose sync and Job reports go to the real API server.

    ``sync()`` applies the ManifestWorks at the remote's tip (server-side apply, pruning
    the experiment's others) and ``run_jobs()`` writes each cluster's update to the store
    and then the work's status, as the work agent does, through the status subresource.
    """

    def __init__(
        self, tmp: Path, remote: Path, store: Path, clusters: Iterable[str], players: KubePlayers
    ) -> None:
        super().__init__(tmp, remote, store, clusters, players=players)
        self._synced: tuple[str, list[RoundWork]] | None = None

    def sync(self) -> list[RoundWork]:
        """Apply the remote tip's works, once per tip, as Argo CD's auto-sync does.

        Re-applying an unchanged ManifestWork is not a no-op on this 1.20 server: a second
        later its managedFields time moves, so it gets a new resourceVersion, a change
        every watch sees (an unchanged ConfigMap, or a work with an empty workload, is left
        alone). A test of what wakes a watch must not make one by accident.
        """
        tip = git(self.remote, "rev-parse", "main")
        if self._synced is None or self._synced[0] != tip:
            self._synced = (tip, super().sync())
        return self._synced[1]


@dataclass
class World:
    """One experiment on the real hub, its reconcile identity and its config repo."""

    tmp: Path
    namespace: str
    clusters: list[str]
    remote: Path
    rendered: Path  # the experiment's folder as `fl-gitops render` wrote it
    rbac: list[dict[str, Any]]
    service_account: str
    token: str
    fleet: KubeFleet
    players: KubePlayers

    def kubeconfig(self, apiserver: ApiServer) -> Path:
        """A kubeconfig that authenticates as the experiment's ServiceAccount."""
        return apiserver.kubeconfig(
            self.tmp / "sa.kubeconfig", user=self.service_account, token=self.token
        )


def _run(*args: str) -> str:
    done = subprocess.run([FL_GITOPS, *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def make_world(
    tmp: Path,
    admin: Any,
    apiserver: ApiServer,
    namespace: str,
    *,
    clusters: int = 3,
    rounds: int = 3,
) -> World:
    """The fleet's experiment in ``namespace``: placed, its RBAC applied, a token for it.

    The blueprint is tests/reconcile's (namespace ``namespace``; every placed cluster
    needed for quorum). Its clusters get unique names (the API server is shared by the
    whole run), are registered as ManagedClusters with their namespaces, and placed: the
    PlacementDecisions are written as the placement controller writes them. The RBAC is
    exactly what `fl-gitops render` puts in hub/reconcile-rbac.yaml, applied as Argo CD
    would; the token is the ServiceAccount's own.
    """
    from fl_gitops.blueprint import load_blueprint

    store = tmp / "store"
    text = blueprint_text(store, clusters=clusters, min_clusters=clusters, rounds=rounds)
    text = text.replace("namespace: fl-system", f"namespace: {namespace}")
    remote = make_remote(tmp, text)
    blueprint_file = tmp / "blueprint.yaml"
    blueprint_file.write_text(text)
    blueprint = load_blueprint(blueprint_file)
    prefix = f"c{uuid.uuid4().hex[:6]}"
    managed = generate_inventory(clusters, spec=blueprint.placement, seed=1, name_prefix=prefix)
    inventory = tmp / "inventory.json"
    inventory.write_text(json.dumps(inventory_list(managed)))
    _run("render", str(blueprint_file), "--inventory", str(inventory), "--out", str(tmp / "out"))
    rendered = tmp / "out" / PATH
    rbac = [
        doc
        for doc in yaml.safe_load_all((rendered / "hub" / "reconcile-rbac.yaml").read_text())
        if doc
    ]
    (service_account,) = (o["metadata"]["name"] for o in rbac if o["kind"] == "ServiceAccount")
    apply_objects(admin, rbac)
    token = service_account_token(admin, namespace, service_account)

    players = KubePlayers(admin, KubernetesHub(admin))
    players.register(managed)
    placed = evaluate_placement(
        blueprint.placement, managed, placement_name=EXP, namespace=namespace, now=NOW
    )
    players.place(placed, namespace=namespace, placement=EXP)
    names = sorted(c["metadata"]["name"] for c in managed)
    assert list(placed.decided) == names
    return World(
        tmp=tmp,
        namespace=namespace,
        clusters=names,
        remote=remote,
        rendered=rendered,
        rbac=rbac,
        service_account=service_account,
        token=token,
        fleet=KubeFleet(tmp, remote, store, names, players),
        players=players,
    )
