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


class PodEvents:
    """Every event of the pods of the experiment's Jobs in ``fl-system`` (they carry the
    Job template's labels), from a watch in a thread: (type, Job, index, phase)."""

    def __init__(self, admin: Any) -> None:
        from kubernetes import client as k8s
        from kubernetes import watch

        self.events: list[tuple[str, str, str, str]] = []
        self._core = k8s.CoreV1Api(admin)
        self._watch = watch.Watch()
        selector = f"{EXPERIMENT_LABEL}={EXP}"
        listed = self._core.list_namespaced_pod("fl-system", label_selector=selector)
        assert listed.items == []
        self._thread = threading.Thread(
            target=self._follow, args=(selector, listed.metadata.resource_version), daemon=True
        )
        self._thread.start()

    def _follow(self, selector: str, version: str) -> None:
        import urllib3

        stream = self._watch.stream(
            self._core.list_namespaced_pod,
            "fl-system",
            label_selector=selector,
            resource_version=version,
            timeout_seconds=600,
        )
        try:
            for event in stream:
                pod = event["object"]
                job = pod.metadata.labels.get("job-name", "")
                index = (pod.metadata.annotations or {}).get(
                    "batch.kubernetes.io/job-completion-index", ""
                )
                self.events.append((event["type"], job, index, pod.status.phase or ""))
        except urllib3.exceptions.ProtocolError:
            pass  # stop() closed the stream under it

    def stop(self) -> list[tuple[str, str, str, str]]:
        self._watch.stop()
        self._thread.join(timeout=10)
        return self.events


class JobEvents:
    """Every event of the experiment's Jobs in ``fl-system``, from a watch in a thread."""

    def __init__(self, admin: Any) -> None:
        from kubernetes import client as k8s
        from kubernetes import watch

        self.events: list[tuple[str, str, bool]] = []  # type, name, Complete
        self._batch = k8s.BatchV1Api(admin)
        self._watch = watch.Watch()
        selector = f"{EXPERIMENT_LABEL}={EXP}"
        listed = self._batch.list_namespaced_job("fl-system", label_selector=selector)
        assert listed.items == []
        self._thread = threading.Thread(
            target=self._follow, args=(selector, listed.metadata.resource_version), daemon=True
        )
        self._thread.start()

    def _follow(self, selector: str, version: str) -> None:
        import urllib3

        stream = self._watch.stream(
            self._batch.list_namespaced_job,
            "fl-system",
            label_selector=selector,
            resource_version=version,
            timeout_seconds=600,
        )
        try:
            for event in stream:
                job = event["object"]
                conditions = job.status.conditions or []
                complete = any(c.type == "Complete" and c.status == "True" for c in conditions)
                self.events.append((event["type"], job.metadata.name, complete))
        except urllib3.exceptions.ProtocolError:
            pass  # stop() closed the stream under it

    def stop(self) -> list[tuple[str, str, bool]]:
        self._watch.stop()
        self._thread.join(timeout=10)
        return self.events


def test_each_rounds_shards_job_is_created_completed_and_deleted_on_the_server(
    apiserver: ApiServer, admin: Any, tmp_path: Path
) -> None:
    from kubernetes import client as k8s

    blueprint = _blueprint(tmp_path)
    one_pod = _simulate(blueprint, tmp_path / "local", "--aggregation-shards", "1")
    kubeconfig = apiserver.kubeconfig(tmp_path / "kubeconfig")
    watcher, pod_watcher = JobEvents(admin), PodEvents(admin)
    sharded = _simulate(
        blueprint,
        tmp_path / "kube",
        "--hub", "kubernetes", "--kubeconfig", str(kubeconfig), "--aggregation-shards", "2",
    )  # fmt: skip
    events, pod_events = watcher.stop(), pod_watcher.stop()

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
            pod = [(kind, phase) for kind, j, i, phase in pod_events if (j, i) == (name, index)]
            assert pod[0][0] == "ADDED"
            assert ("MODIFIED", "Succeeded") in pod
            assert pod[-1][0] == "DELETED"
    selector = f"{EXPERIMENT_LABEL}={EXP}"
    left = k8s.BatchV1Api(admin).list_namespaced_job("fl-system", label_selector=selector)
    assert left.items == []
    pods = k8s.CoreV1Api(admin).list_namespaced_pod("fl-system", label_selector=selector)
    assert pods.items == []
