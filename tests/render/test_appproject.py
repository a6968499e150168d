"""The AppProject lets the config repo create only the cluster-scoped objects fl-gitops renders.

Argo CD syncs an experiment's kustomization through this project; a config-repo writer
must not be able to add a ClusterRoleBinding to cluster-admin through it. The whitelist
is checked against the rendered tree with Argo CD's own rule: group, kind, and a name
glob in Go's filepath.Match syntax (fnmatch is the same for these names).
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

import yaml

from fl_gitops.blueprint import load_blueprint
from fl_gitops.cli import main
from fl_gitops.placement import generate_inventory, inventory_list

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "blueprints" / "digits-fedavg.yaml"
NOW = "2026-11-28T00:00:00Z"
CLUSTER_SCOPED = {("rbac.authorization.k8s.io", "ClusterRole"),
                  ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
                  ("", "Namespace")}  # fmt: skip


def _render(tmp_path: Path) -> tuple[Path, str]:
    blueprint = load_blueprint(REFERENCE)
    inventory = tmp_path / "inventory.yaml"
    clusters = generate_inventory(3, spec=blueprint.placement, seed=2)
    inventory.write_text(yaml.safe_dump(inventory_list(clusters)))
    out = tmp_path / "out"
    argv = ["render", str(REFERENCE), "--inventory", str(inventory), "--out", str(out)]
    assert main([*argv, "--now", NOW, "--bootstrap", "--allow-empty"]) == 0
    return out, blueprint.gitops.path


def _allowed(whitelist: list[dict], group: str, kind: str, name: str) -> bool:
    return any(
        w["group"] == group and w["kind"] == kind and fnmatch.fnmatchcase(name, w.get("name", "*"))
        for w in whitelist
    )


def _synced_objects(out: Path, path: str) -> list[dict]:
    root = out / path
    kustomization = yaml.safe_load((root / "kustomization.yaml").read_text())
    objects = []
    for resource in kustomization["resources"]:
        objects += [d for d in yaml.safe_load_all((root / resource).read_text()) if d]
    return objects


def test_every_cluster_scoped_object_argo_cd_syncs_is_whitelisted_by_name(tmp_path: Path) -> None:
    out, path = _render(tmp_path)
    project = yaml.safe_load((out / "bootstrap" / "appproject.yaml").read_text())
    whitelist = project["spec"]["clusterResourceWhitelist"]

    scoped = [
        o
        for o in _synced_objects(out, path)
        if (o["apiVersion"].rpartition("/")[0], o["kind"]) in CLUSTER_SCOPED
    ]
    assert {o["kind"] for o in scoped} == {"ClusterRole", "ClusterRoleBinding"}
    for o in scoped:
        group = o["apiVersion"].rpartition("/")[0]
        assert _allowed(whitelist, group, o["kind"], o["metadata"]["name"]), o["metadata"]
    assert all(w.get("name") for w in whitelist)  # no kind is allowed whatever its name


def test_a_binding_to_cluster_admin_or_another_namespace_s_reader_is_refused(
    tmp_path: Path,
) -> None:
    out, _path = _render(tmp_path)
    project = yaml.safe_load((out / "bootstrap" / "appproject.yaml").read_text())
    whitelist = project["spec"]["clusterResourceWhitelist"]
    rbac = "rbac.authorization.k8s.io"

    assert not _allowed(whitelist, rbac, "ClusterRoleBinding", "cluster-admin")
    assert not _allowed(whitelist, rbac, "ClusterRoleBinding", "fl-gitops-owned")
    assert not _allowed(whitelist, rbac, "ClusterRole", "fl-gitops-kube-system-x-read-works")
    assert not _allowed(whitelist, "", "Namespace", "kube-system")
    assert not _allowed(whitelist, "apiextensions.k8s.io", "CustomResourceDefinition", "x")
    assert _allowed(whitelist, rbac, "ClusterRole", "fl-gitops-fl-system-other-read-works")
