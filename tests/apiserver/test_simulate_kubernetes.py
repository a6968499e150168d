"""`simulate --hub kubernetes`: the whole loop through a real API server.

The reconcile pass reads the hub with the real ``KubernetesHub``; the simulation plays
Argo CD (server-side apply of the kustomization's resources, pruning), OCM's placement
controller (PlacementDecisions with ``status.decisions``) and the work agent (status
through the status subresource) against the same server. Same settings, same final model
as the in-memory hub: the hub is a transport, not a participant in the arithmetic.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fl_gitops.cli import main
from fl_gitops.devhub import ApiServer

REPO = Path(__file__).resolve().parents[2]
STOCK = REPO / "blueprints" / "digits-fedavg.yaml"
WORKS = ("work.open-cluster-management.io", "v1", "manifestworks")


def _blueprint(tmp: Path, name: str) -> Path:
    text = STOCK.read_text()
    text = text.replace("name: digits-fedavg ", f"name: {name} ")
    text = text.replace("path: experiments/digits-fedavg", f"path: experiments/{name}")
    path = tmp / f"{name}.yaml"
    path.write_text(text)
    return path


def _simulate(blueprint: Path, workdir: Path, *extra: str) -> dict[str, Any]:
    args = ["simulate", str(blueprint), "--clusters", "4", "--rounds", "3", "--jobs", "2"]
    assert main([*args, "--workdir", str(workdir), "--no-plot", *extra]) == 0
    report: dict[str, Any] = json.loads((workdir / "report.json").read_text())
    return report


def test_the_loop_through_a_real_api_server_reaches_the_in_memory_model(
    apiserver: ApiServer, admin: Any, tmp_path: Path, capsys: Any
) -> None:
    from kubernetes import client as k8s

    blueprint = _blueprint(tmp_path, "digits-kube")
    in_memory = _simulate(blueprint, tmp_path / "local")
    kubeconfig = apiserver.kubeconfig(tmp_path / "kubeconfig")
    real = _simulate(
        blueprint, tmp_path / "kube", "--hub", "kubernetes", "--kubeconfig", str(kubeconfig)
    )
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert real["phase"] == in_memory["phase"] == "Completed"
    assert real["final_model"] == in_memory["final_model"]
    assert [r["accuracy"] for r in real["rounds"]] == [r["accuracy"] for r in in_memory["rounds"]]
    # what 1.20 cannot serve is said, once, not silently dropped
    assert out.count("not synced") == 1
    assert "batch/v1 CronJob is not served by this API server" in out

    # The server holds what the parties wrote: decisions in status, works whose status the
    # agent wrote for the last round's Job, with the Job's Complete condition rule satisfied.
    api = k8s.CustomObjectsApi(admin)
    decisions = api.list_namespaced_custom_object(
        "cluster.open-cluster-management.io",
        "v1beta1",
        "fl-system",
        "placementdecisions",
        label_selector="cluster.open-cluster-management.io/placement=digits-kube",
    )["items"]
    roster = sorted(d["clusterName"] for p in decisions for d in p["status"]["decisions"])
    assert len(roster) == 4
    works = api.list_cluster_custom_object(
        *WORKS, label_selector="fl-gitops.io/experiment=digits-kube"
    )["items"]
    assert sorted(w["metadata"]["namespace"] for w in works) == roster
    for work in works:
        # the status the agent wrote, through the status subresource, for the last round
        conditions = {c["type"]: c for c in work["status"]["conditions"]}
        assert conditions["Complete"]["status"] == "True"
        assert conditions["Complete"]["observedGeneration"] == work["metadata"]["generation"]
        assert work["metadata"]["generation"] == 3  # one spec change a round
