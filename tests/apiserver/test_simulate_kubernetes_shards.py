"""`simulate --hub kubernetes --aggregation-shards N`: the shards' Job through a real API server.

The reconcile pass creates each round's Indexed Job on the server with the real
``KubernetesHub``, reads it back level-triggered and deletes it after the merge. The
server (1.20) runs no Job controller, no kubelet and no garbage collector, so the
simulation plays them (``KubeJobController``: the indexes as local workers, a pod per
succeeded index ended through the pod status subresource, the Job's status written
through its status subresource, the pods deleted with their Job). A watch on the server
sees each round's Job created, completed and deleted, and its pods made, ended and
deleted, and the run reaches the final model of one pod on the in-memory hub.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from fl_gitops.cli import main
from fl_gitops.devhub import ApiServer
from fl_gitops.labels import EXPERIMENT_LABEL

REPO = Path(__file__).resolve().parents[2]
STOCK = REPO / "blueprints" / "digits-fedavg.yaml"
EXP = "digits-kshards"


def _blueprint(tmp: Path) -> Path:
    text = STOCK.read_text()
    text = text.replace("name: digits-fedavg ", f"name: {EXP} ")
    text = text.replace("path: experiments/digits-fedavg", f"path: experiments/{EXP}")
    path = tmp / f"{EXP}.yaml"
    path.write_text(text)
    return path


def _simulate(blueprint: Path, workdir: Path, *extra: str) -> dict[str, Any]:
    args = ["simulate", str(blueprint), "--clusters", "3", "--rounds", "2", "--jobs", "2"]
    assert main([*args, "--workdir", str(workdir), "--no-plot", "-q", *extra]) == 0
    report: dict[str, Any] = json.loads((workdir / "report.json").read_text())
    return report


def _history(report: dict[str, Any]) -> list[dict[str, Any]]:
    keep = ("round", "model", "accuracy", "loss", "contributors", "rejected")
    return [{k: row[k] for k in keep} for row in report["rounds"]]


class Events:
    """Every event of one kind of the experiment's objects in ``fl-system`` (by its label),
    from a watch in a thread, each made a row by ``row``."""

    def __init__(self, list_objects: Any, row: Any) -> None:
        from kubernetes import watch

        self.events: list[tuple[Any, ...]] = []
        self._list = list_objects
        self._row = row
        self._watch = watch.Watch()
        selector = f"{EXPERIMENT_LABEL}={EXP}"
        listed = list_objects("fl-system", label_selector=selector)
        assert listed.items == []
        self._thread = threading.Thread(
            target=self._follow, args=(selector, listed.metadata.resource_version), daemon=True
        )
        self._thread.start()

    def _follow(self, selector: str, version: str) -> None:
        import urllib3

        stream = self._watch.stream(
            self._list,
            "fl-system",
            label_selector=selector,
            resource_version=version,
            timeout_seconds=600,
        )
        try:
            for event in stream:
                self.events.append((event["type"], *self._row(event["object"])))
        except urllib3.exceptions.ProtocolError:
            pass  # stop() closed the stream under it

    def stop(self) -> list[tuple[Any, ...]]:
        self._watch.stop()
        self._thread.join(timeout=10)
        return self.events


def pod_events(admin: Any) -> Events:
    """The pods of the experiment's Jobs (they carry the Job template's labels): (type,
    Job, index, phase)."""
    from kubernetes import client as k8s

    def row(pod: Any) -> tuple[str, str, str]:
        job = pod.metadata.labels.get("job-name", "")
        index = (pod.metadata.annotations or {}).get("batch.kubernetes.io/job-completion-index", "")
        return job, index, pod.status.phase or ""

    return Events(k8s.CoreV1Api(admin).list_namespaced_pod, row)


def job_events(admin: Any) -> Events:
    """The experiment's Jobs: (type, name, Complete)."""
    from kubernetes import client as k8s

    def row(job: Any) -> tuple[str, bool]:
        conditions = job.status.conditions or []
        return job.metadata.name, any(
            c.type == "Complete" and c.status == "True" for c in conditions
        )

    return Events(k8s.BatchV1Api(admin).list_namespaced_job, row)


def test_each_rounds_shards_job_is_created_completed_and_deleted_on_the_server(
    apiserver: ApiServer, admin: Any, tmp_path: Path
) -> None:
    from kubernetes import client as k8s

    blueprint = _blueprint(tmp_path)
    one_pod = _simulate(blueprint, tmp_path / "local", "--aggregation-shards", "1")
    kubeconfig = apiserver.kubeconfig(tmp_path / "kubeconfig")
    watcher, pod_watcher = job_events(admin), pod_events(admin)
    sharded = _simulate(
        blueprint,
        tmp_path / "kube",
        "--hub", "kubernetes", "--kubeconfig", str(kubeconfig), "--aggregation-shards", "2",
    )  # fmt: skip
    events, pods_seen = watcher.stop(), pod_watcher.stop()

    assert sharded["phase"] == one_pod["phase"] == "Completed"
    assert sharded["final_model"] == one_pod["final_model"]
    assert _history(sharded) == _history(one_pod)
    names = list(dict.fromkeys(name for _, name, _ in events))
    assert [n.split("-agg-")[1][:2] for n in names] == ["r1", "r2"]  # one Job a round
    for name in names:
        seen = [(kind, complete) for kind, n, complete in events if n == name]
        assert seen[0] == ("ADDED", False)
        assert ("MODIFIED", True) in seen  # the Complete condition, in the status
        assert seen[-1][0] == "DELETED"  # by the reconcile pass, after the merge
        # a pod per index, made, ended Succeeded by the kubelet's part, deleted with the Job
        for index in ("0", "1"):
            pod = [(kind, phase) for kind, j, i, phase in pods_seen if (j, i) == (name, index)]
            assert pod[0][0] == "ADDED"
            assert ("MODIFIED", "Succeeded") in pod
            assert pod[-1][0] == "DELETED"
    selector = f"{EXPERIMENT_LABEL}={EXP}"
    left = k8s.BatchV1Api(admin).list_namespaced_job("fl-system", label_selector=selector)
    assert left.items == []
    pods = k8s.CoreV1Api(admin).list_namespaced_pod("fl-system", label_selector=selector)
    assert pods.items == []
