"""Argo CD, OCM's controllers and the work agent, played against a real API server.

With ``simulate --hub kubernetes`` the reconcile pass reads the hub through the real
``KubernetesHub``; nothing else runs on that API server (a development hub has no
controllers), so this module writes what the other parties of a real hub would write,
through the same API calls they make:

- OCM's registration: a ManagedCluster and its namespace for each cluster of the fleet;
- OCM's placement controller: PlacementDecisions, 100 decisions a page, created and then
  given their decisions through the status subresource;
- Argo CD: server-side apply of exactly the kustomization's resources (field manager
  ``argocd-controller``), then pruning what carries the experiment's label but left them;
- the work agent: each ManifestWork's status through the status subresource, in the
  shapes ``fl_gitops.hub._agent`` writes, with optimistic concurrency (a conflict is read
  again and retried, as a controller does).

Kinds the server does not serve (``batch/v1`` CronJob on Kubernetes 1.20) are skipped by
the sync and named in its result, as Argo CD would show them failing.

With ``spec.aggregation.shards`` > 1 the reconcile pass creates the round's Indexed Job on
the server itself (``KubernetesHub.shard_job``); a development hub has no Job controller,
no kubelet and no garbage collector, so ``KubeJobController`` plays them: it runs the
Job's indexes as local workers (``LocalHub``'s, the same ``fl-gitops aggregate --shard
auto/N`` argv and ``JOB_COMPLETION_INDEX``), makes a Pod for each index that succeeded and
writes its ending (the shard's termination message) through the pod's status subresource,
as the kubelet would, writes the Job's status as the Job controller would, and deletes the
pods of a deleted Job. ``KubeShardHub`` is the pass's hub then: the real
``KubernetesHub``, with that controller acting on a Job just before the pass reads it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import fl_gitops.hub._agent as work_agent
from fl_gitops.devhub import differences
from fl_gitops.errors import HubError
from fl_gitops.hub import (
    ClusterStatus,
    KubernetesHub,
    LocalHub,
    ShardJobSpec,
    ShardJobState,
    translate,
)
from fl_gitops.hub._jobstatus import COMPLETION_INDEX_ANNOTATION
from fl_gitops.labels import EXPERIMENT_LABEL, ROUND_LABEL
from fl_gitops.placement import PlacementResult, decision_pages
from fl_gitops.render import SHARD_CONTAINER
from fl_gitops.simulate._agent import SyncResult

__all__ = [
    "ARGOCD_MANAGER",
    "KubeJobController",
    "KubePlayers",
    "KubeShardHub",
    "ended_status",
    "pod_name",
    "shard_pod",
]

#: The field manager Argo CD's server-side apply uses.
ARGOCD_MANAGER = "argocd-controller"
_WORKS = ("work.open-cluster-management.io", "v1", "manifestworks")
_CONFLICT_RETRIES = 5


def _ref(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    where = f"{meta['namespace']}/" if meta.get("namespace") else ""
    return f"{obj.get('kind')} {where}{meta.get('name')}"


class KubePlayers:
    """The writers of a real hub, over an administrator's ``ApiClient``.

    Args:
        api_client: a ``kubernetes.client.ApiClient`` with rights to write everything.
        hub: the ``KubernetesHub`` the reconcile pass reads (its reads are delegated).
    """

    def __init__(self, api_client: Any, hub: KubernetesHub) -> None:
        from kubernetes import client as k8s
        from kubernetes import dynamic

        self._k8s = k8s
        self._api: Any = k8s.CustomObjectsApi(api_client)  # answers are plain dicts
        self._core: Any = k8s.CoreV1Api(api_client)
        self._dynamic = dynamic.DynamicClient(api_client)  # type: ignore[no-untyped-call]
        self._resources: dict[tuple[str, str], Any] = {}
        self._hub = hub
        self._host = api_client.configuration.host

    # -- reads: what the reconcile pass sees -------------------------------------------

    def decided_clusters(self, namespace: str, placement: str) -> list[str]:
        return self._hub.decided_clusters(namespace, placement)

    def job_statuses(self, **kwargs: Any) -> Any:
        return self._hub.job_statuses(**kwargs)

    @contextlib.contextmanager
    def batch(self) -> Iterator[KubePlayers]:
        """Every write goes to the server at once; nothing to group."""
        yield self

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # the client's ApiException, transport errors
            if isinstance(exc, self._k8s.ApiException | OSError) or type(exc).__module__.startswith(
                ("urllib3", "kubernetes")
            ):
                raise translate(exc, f"hub {self._host}: {what}") from exc
            raise

    # -- OCM's registration ------------------------------------------------------------

    def ensure_namespace(self, name: str) -> None:
        """Create namespace ``name`` unless it is there (a hub admin or OCM made it)."""
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        try:
            self._core.create_namespace(body)
        except self._k8s.ApiException as exc:
            if exc.status != 409:
                raise translate(exc, f"hub {self._host}: create namespace {name}") from exc

    def register(self, clusters: Sequence[Mapping[str, Any]]) -> None:
        """A ManagedCluster (spec and labels from the inventory) and a namespace for each."""
        for cluster in clusters:
            meta = cluster.get("metadata") or {}
            name = str(meta["name"])
            body = {
                "apiVersion": "cluster.open-cluster-management.io/v1",
                "kind": "ManagedCluster",
                "metadata": {"name": name, "labels": dict(meta.get("labels") or {})},
                "spec": {"hubAcceptsClient": True},
            }
            self._apply(body, manager="registration-controller")
            self.ensure_namespace(name)

    # -- OCM's placement controller ------------------------------------------------------

    def place(self, result: PlacementResult, *, namespace: str, placement: str) -> None:
        """Write the PlacementDecisions of ``result``: each object, then its status."""
        group, version = "cluster.open-cluster-management.io", "v1beta1"
        for page in decision_pages(result, placement_name=placement, namespace=namespace):
            status = page.pop("status")
            name = page["metadata"]["name"]
            stored = self._apply(page, manager="placement-controller")
            stored["status"] = status
            self._call(
                f"update placementdecisions {namespace}/{name} status",
                self._api.replace_namespaced_custom_object_status,
                group,
                version,
                namespace,
                "placementdecisions",
                name,
                stored,
            )

    # -- Argo CD -----------------------------------------------------------------------------

    def _resource(self, api_version: str, kind: str) -> Any:
        from kubernetes.dynamic.exceptions import ResourceNotFoundError

        key = (api_version, kind)
        if key not in self._resources:
            try:
                self._resources[key] = self._dynamic.resources.get(
                    api_version=api_version, kind=kind
                )
            except ResourceNotFoundError:
                self._resources[key] = None
        return self._resources[key]

    def _apply(
        self, obj: Mapping[str, Any], *, manager: str, dry_run: bool = False
    ) -> dict[str, Any]:
        resource = self._resource(str(obj.get("apiVersion")), str(obj.get("kind")))
        if resource is None:
            raise HubError(
                f"hub {self._host}: {_ref(obj)}: {obj.get('apiVersion')} {obj.get('kind')} "
                "is not served by this API server (install OCM's CRDs; `fl-gitops dev-hub` "
                "starts a server that has them)"
            )
        meta = obj.get("metadata") or {}
        extra = {"dry_run": "All"} if dry_run else {}
        stored = self._call(
            f"apply {_ref(obj)}",
            resource.server_side_apply,
            body=dict(obj),
            name=meta.get("name"),
            namespace=meta.get("namespace"),
            field_manager=manager,
            force_conflicts=True,
            **extra,
        )
        result: dict[str, Any] = stored.to_dict()
        return result

    def sync(self, objects: Sequence[Mapping[str, Any]], *, experiment: str) -> SyncResult:
        """Apply what differs of ``objects`` (server-side), then prune the experiment's rest.

        As Argo CD does, the live objects are read first (one list per kind, by the
        ``fl-gitops.io/experiment`` label) and only an object whose fields differ from the
        live one is applied: on Kubernetes 1.20 even an unchanged apply is a write (its
        managedFields time moves), which would wake every watcher for nothing. Pruning
        deletes what carries the label but is no longer among ``objects``, for every kind
        applied and for ManifestWorks, whose set changes with the roster.
        """
        result = SyncResult()
        kinds: dict[tuple[str, str], Any] = {}
        served: list[Mapping[str, Any]] = []
        for obj in objects:
            api_version, kind = str(obj.get("apiVersion")), str(obj.get("kind"))
            resource = self._resource(api_version, kind)
            if resource is None:
                result.skipped[_ref(obj)] = f"{api_version} {kind} is not served by this API server"
                continue
            kinds[(api_version, kind)] = resource
            served.append(obj)
        work_kind = ("work.open-cluster-management.io/v1", "ManifestWork")
        kinds.setdefault(work_kind, self._resource(*work_kind))
        selector = f"{EXPERIMENT_LABEL}={experiment}"
        live: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        for (api_version, kind), resource in sorted(kinds.items()):
            listed = self._call(f"list {kind} ({selector})", resource.get, label_selector=selector)
            for item in listed.to_dict().get("items") or []:
                meta = item.get("metadata") or {}
                live[(api_version, kind, str(meta.get("namespace") or ""), str(meta["name"]))] = (
                    item
                )
        keep: set[tuple[str, str, str, str]] = set()
        for obj in served:
            meta = obj.get("metadata") or {}
            key = (
                str(obj["apiVersion"]),
                str(obj["kind"]),
                str(meta.get("namespace") or ""),
                str(meta["name"]),
            )
            keep.add(key)
            current = live.get(key)
            if current is not None and next(differences(obj, current), None) is None:
                result.applied.append(current)
                continue
            result.applied.append(self._apply(obj, manager=ARGOCD_MANAGER))
        for (api_version, kind, namespace, name), _item in sorted(live.items()):
            if (api_version, kind, namespace, name) in keep:
                continue
            self._call(
                f"delete {kind} {namespace}/{name}",
                kinds[(api_version, kind)].delete,
                name=name,
                namespace=namespace or None,
            )
        return result

    # -- the work agent ------------------------------------------------------------------------

    def report_job(
        self,
        cluster: str,
        work_name: str,
        *,
        job_name: str,
        succeeded: bool | None,
        result: Mapping[str, str] | None = None,
    ) -> None:
        """Write the work's status for its Job ``job_name`` through the status subresource.

        The status is computed from the work as the server holds it now, the result
        ConfigMap's feedback from ``result`` (what the Job wrote into it; no cluster runs
        here to hold the ConfigMap itself); a conflict (the work changed in between) reads
        it again, up to a bound.
        """
        group, version, plural = _WORKS
        for _ in range(_CONFLICT_RETRIES):
            work = self._call(
                f"get {plural} {cluster}/{work_name}",
                self._api.get_namespaced_custom_object,
                group,
                version,
                cluster,
                plural,
                work_name,
            )
            work_agent.write_job_report(
                work,
                job_name=job_name,
                succeeded=succeeded,
                now=_now(),
                where=cluster,
                result=result,
            )
            try:
                self._api.replace_namespaced_custom_object_status(
                    group, version, cluster, plural, work_name, work
                )
                return
            except self._k8s.ApiException as exc:
                if exc.status == 409:
                    continue
                what = f"update {plural} {cluster}/{work_name} status"
                raise translate(exc, f"hub {self._host}: {what}") from exc
        raise HubError(
            f"hub {self._host}: update {plural} {cluster}/{work_name} status: "
            f"still conflicting after {_CONFLICT_RETRIES} tries"
        )


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- the Job controller ------------------------------------------------------------------------


def index_ranges(indexes: Iterable[int]) -> str:
    """Indexes as the Job controller writes ``completedIndexes``: ``{0, 1, 2, 4}`` → ``0-2,4``."""
    parts: list[str] = []
    run: list[int] = []
    for index in sorted(set(indexes)):
        if run and index == run[-1] + 1:
            run.append(index)
            continue
        if run:
            parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [index]
    if run:
        parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(parts)


def _finished(job: Mapping[str, Any]) -> bool:
    status = job.get("status") or {}
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in status.get("conditions") or []
    )


def _spec_of(job: Mapping[str, Any]) -> ShardJobSpec:
    """The ``ShardJobSpec`` a Job on the server was made from, as far as running it needs
    (1.20 keeps completions, backoffLimit, the deadline and the container; it drops
    ``backoffLimitPerIndex``, so the per-index retries are read back from the shared
    budget the manifest gives such a hub)."""
    meta, spec = job["metadata"], job["spec"]
    shards = int(spec["completions"])
    pod = spec["template"]["spec"]
    container = next(c for c in pod["containers"] if c["name"] == SHARD_CONTAINER)
    per_index = spec.get("backoffLimitPerIndex")
    if per_index is None:
        per_index = int(spec.get("backoffLimit", 0)) // max(shards, 1)
    labels = meta.get("labels") or {}
    return ShardJobSpec(
        namespace=str(meta["namespace"]),
        name=str(meta["name"]),
        experiment=str(labels.get(EXPERIMENT_LABEL, "")),
        round=int(labels.get(ROUND_LABEL, 0)),
        shards=shards,
        image=str(container.get("image", "")),
        args=tuple(str(a) for a in container.get("args") or ()),
        service_account=str(pod.get("serviceAccountName", "")),
        active_deadline_seconds=int(spec.get("activeDeadlineSeconds", 3600)),
        backoff_limit_per_index=int(per_index),
        env=tuple(container.get("env") or ()),
    )


def _status_of(state: ShardJobState, started: str, now: str) -> dict[str, Any]:
    """The Job's status as the Job controller writes it for ``state``."""
    status: dict[str, Any] = {
        "startTime": started,
        "active": state.active,
        "succeeded": len(state.succeeded),
        "failed": len(state.failed_indexes),
        "completedIndexes": index_ranges(state.succeeded) or None,
        "failedIndexes": index_ranges(state.failed_indexes) if state.failed_indexes else None,
        "conditions": [],
    }
    if state.complete:
        status["completionTime"] = now
        status["conditions"] = [
            {"type": "Complete", "status": "True", "lastProbeTime": now, "lastTransitionTime": now}
        ]
    elif state.failed:
        reason, _, message = state.reason.partition(": ")
        status["conditions"] = [
            {
                "type": "Failed",
                "status": "True",
                "reason": reason or "Failed",
                "message": message,
                "lastProbeTime": now,
                "lastTransitionTime": now,
            }
        ]
    return status


# The Job controller's pod names: ``<job>-<index>-`` cut to leave room for 5 characters
# of this alphabet (Kubernetes' name generator: no vowels, no look-alikes).
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_MAX_GENERATED_BASE = 58
# The conditions of a pod whose containers all ended, as the kubelet writes them.
_ENDED_CONDITIONS = (
    ("Initialized", "True"),
    ("Ready", "False"),
    ("ContainersReady", "False"),
    ("PodScheduled", "True"),
)


def pod_name(job: str, uid: str, index: int) -> str:
    """The pod name of index ``index`` of Job ``job`` (uid ``uid``) as the Job controller
    makes it (``<job>-<index>-<5 characters>``), the suffix derived from the uid and the
    index rather than drawn at random, so a pass that made it is found again by name."""
    digest = hashlib.sha256(f"{uid}/{index}".encode()).digest()
    suffix = "".join(_SUFFIX_ALPHABET[b % len(_SUFFIX_ALPHABET)] for b in digest[:5])
    return f"{job}-{index}-"[:_MAX_GENERATED_BASE] + suffix


def _controller_uid(pod: Mapping[str, Any]) -> str | None:
    for owner in (pod.get("metadata") or {}).get("ownerReferences") or ():
        if owner.get("kind") == "Job" and owner.get("controller") is True:
            return str(owner.get("uid"))
    return None


def shard_pod(job: Mapping[str, Any], index: int) -> dict[str, Any]:
    """Index ``index``'s Pod as the Job controller makes it from Job ``job``: the pod
    template's labels and spec, the ``job-name`` and ``controller-uid`` labels, the
    completion-index annotation, and the Job as its controlling owner."""
    meta, template = job["metadata"], job["spec"]["template"]
    labels = dict((template.get("metadata") or {}).get("labels") or {})
    labels.update({"job-name": meta["name"], "controller-uid": meta["uid"]})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(meta["name"], meta["uid"], index),
            "namespace": meta["namespace"],
            "labels": labels,
            "annotations": {COMPLETION_INDEX_ANNOTATION: str(index)},
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": template["spec"],
    }


def ended_status(pod: Mapping[str, Any], message: str | None, now: str) -> dict[str, Any]:
    """The status the kubelet writes for a pod whose ``shard`` container exited 0, having
    written ``message`` to its termination-message path (None: an empty file)."""
    spec = pod.get("spec") or {}
    container = next(c for c in spec.get("containers") or () if c["name"] == SHARD_CONTAINER)
    terminated: dict[str, Any] = {
        "exitCode": 0,
        "reason": "Completed",
        "startedAt": now,
        "finishedAt": now,
    }
    if message:
        terminated["message"] = message
    conditions = [
        {"type": kind, "status": status, "lastProbeTime": None, "lastTransitionTime": now}
        for kind, status in _ENDED_CONDITIONS
    ]
    for condition in conditions[:3]:
        condition["reason"] = "PodCompleted"
    return {
        "phase": "Succeeded",
        "startTime": now,
        "conditions": conditions,
        "containerStatuses": [
            {
                "name": SHARD_CONTAINER,
                "image": container.get("image", ""),
                "imageID": "",
                "ready": False,
                "restartCount": 0,
                "started": False,
                "state": {"terminated": terminated},
            }
        ],
    }


class KubeJobController:
    """Kubernetes' Job controller, kubelet and garbage collector for the shards' Indexed
    Jobs, on a hub that runs none of them (a development hub is an API server and etcd,
    nothing else).

    Each ``advance`` reads the Job from the server and, while it is not finished, lets the
    local runner start, reap or retry its indexes (all N at once, each retried alone up to
    its retries, the Job failed at its deadline or on an input error). For each index that
    succeeded it makes the Pod the Job controller would have made (unless it is there) and
    writes, as the kubelet does, its ending through the pod's status subresource: phase
    Succeeded, the ``shard`` container terminated with exit code 0 and the termination
    message the shard wrote (``state.messages``; the kubelet is played here because a
    development hub runs none, and the reconcile pass reads that message through the API
    as it would a real kubelet's). Then it writes the Job's status through the status
    subresource. Idempotent: a pod already made, or already ended, is left as it is.

    Args:
        api_client: an administrator's ``ApiClient`` (the controller writes Job status).
        runner: the ``LocalHub`` whose workers run the indexes (its state dir keeps them
            across passes and a resumed simulation).
    """

    def __init__(self, api_client: Any, runner: LocalHub) -> None:
        from kubernetes import client as k8s

        self._k8s = k8s
        self._batch: Any = k8s.BatchV1Api(api_client)
        self._core: Any = k8s.CoreV1Api(api_client)
        self._runner = runner
        self._host = api_client.configuration.host

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (self._k8s.ApiException, OSError) as exc:
            raise translate(exc, f"hub {self._host}: {what}") from exc

    def _read_job(self, namespace: str, name: str) -> dict[str, Any] | None:
        what = f"get job {namespace}/{name}"
        try:
            answer = self._batch.read_namespaced_job(name, namespace, _preload_content=False)
        except self._k8s.ApiException as exc:
            if exc.status == 404:
                return None
            raise translate(exc, f"hub {self._host}: {what}") from exc
        job: dict[str, Any] = json.loads(answer.data)
        return job

    def _pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        answer = self._call(
            f"list pods in namespace {namespace} ({selector})",
            self._core.list_namespaced_pod,
            namespace,
            label_selector=selector,
            _preload_content=False,
        )
        pods: list[dict[str, Any]] = json.loads(answer.data).get("items") or []
        return pods

    def advance(self, namespace: str, name: str) -> None:
        """One look at Job ``namespace/name``: its indexes moved on, the pods of those that
        succeeded made and ended, its status written.

        Raises:
            HubError: the server could not be read or written, or a worker not started.
        """
        job = self._read_job(namespace, name)
        if job is None or _finished(job):
            return  # not created (yet), deleted, or over: nothing to run
        state = self._runner.shard_job(_spec_of(job))
        self._end_pods(job, state)
        started = (job.get("status") or {}).get("startTime") or _now()
        self._call(
            f"update job {namespace}/{name} status",
            self._batch.patch_namespaced_job_status,
            name,
            namespace,
            {"status": _status_of(state, started, _now())},
        )

    def _end_pods(self, job: Mapping[str, Any], state: ShardJobState) -> None:
        """The kubelet's part: a Pod for each succeeded index, its ending in its status."""
        meta = job["metadata"]
        namespace, uid = str(meta["namespace"]), str(meta["uid"])
        have: dict[int, dict[str, Any]] = {}
        for pod in self._pods(namespace, f"controller-uid={uid}"):
            index = ((pod.get("metadata") or {}).get("annotations") or {}).get(
                COMPLETION_INDEX_ANNOTATION
            )
            if _controller_uid(pod) == uid and isinstance(index, str) and index.isdigit():
                have.setdefault(int(index), pod)
        for index in sorted(state.succeeded):
            pod = have.get(index) or self._make_pod(shard_pod(job, index))
            if (pod.get("status") or {}).get("phase") == "Succeeded":
                continue
            pod_name_ = pod["metadata"]["name"]
            self._call(
                f"update pod {namespace}/{pod_name_} status",
                self._core.patch_namespaced_pod_status,
                pod_name_,
                namespace,
                {"status": ended_status(pod, state.messages.get(index), _now())},
            )

    def _make_pod(self, pod: Mapping[str, Any]) -> dict[str, Any]:
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        what = f"create pod {namespace}/{name}"
        try:
            answer = self._core.create_namespaced_pod(namespace, pod, _preload_content=False)
        except self._k8s.ApiException as exc:
            if exc.status != 409:
                raise translate(exc, f"hub {self._host}: {what}") from exc
            answer = self._call(
                f"get pod {namespace}/{name}",
                self._core.read_namespaced_pod,
                name,
                namespace,
                _preload_content=False,
            )
        made: dict[str, Any] = json.loads(answer.data)
        return made

    def forget(self, namespace: str, name: str) -> None:
        """The Job was deleted: its workers are stopped and its local state removed, and
        its pods deleted, as the garbage collector deletes the dependents of a Job deleted
        with background propagation (a Job of that name made since keeps its own)."""
        self._runner.delete_shard_job(namespace, name)
        live = self._read_job(namespace, name)
        live_uid = live["metadata"]["uid"] if live is not None else None
        for pod in self._pods(namespace, f"job-name={name}"):
            owner = _controller_uid(pod)
            if owner is None or owner == live_uid:
                continue
            pod_name_ = pod["metadata"]["name"]
            try:
                self._core.delete_namespaced_pod(pod_name_, namespace)
            except self._k8s.ApiException as exc:
                if exc.status != 404:
                    what = f"delete pod {namespace}/{pod_name_}"
                    raise translate(exc, f"hub {self._host}: {what}") from exc


class KubeShardHub:
    """The reconcile pass's hub in ``simulate --hub kubernetes``: the real
    ``KubernetesHub`` for every read and write, with the simulation's Job controller
    acting on the shards' Job just before the pass reads it.

    The controller runs the indexes itself, whatever the server's version, so the hub's
    Indexed Job gate is lowered: a 1.20 development hub holds the Job (without the fields
    it does not know) and the controller plays the rest.
    """

    def __init__(self, hub: KubernetesHub, controller: KubeJobController) -> None:
        hub.min_indexed_version = (1, 0)
        self._hub = hub
        self._controller = controller

    def decided_clusters(self, namespace: str, placement: str) -> list[str]:
        return self._hub.decided_clusters(namespace, placement)

    def job_statuses(
        self,
        *,
        work_name: str,
        job_name: str,
        clusters: Sequence[str],
        experiment: str | None = None,
    ) -> dict[str, ClusterStatus]:
        return self._hub.job_statuses(
            work_name=work_name, job_name=job_name, clusters=clusters, experiment=experiment
        )

    def wait_for_change(self, timeout: float) -> bool:
        return self._hub.wait_for_change(timeout)

    def shard_job(self, spec: ShardJobSpec, *, create: bool = True) -> ShardJobState:
        """See ``ShardRunner.shard_job``: the real call, the controller's step, a read."""
        state = self._hub.shard_job(spec, create=create)
        if not state.exists or state.complete or state.failed:
            return state
        self._controller.advance(spec.namespace, spec.name)
        return self._hub.shard_job(spec, create=False)

    def delete_shard_job(self, namespace: str, name: str) -> bool:
        """See ``ShardRunner.delete_shard_job``; the controller then stops its workers."""
        deleted = self._hub.delete_shard_job(namespace, name)
        self._controller.forget(namespace, name)
        return deleted
