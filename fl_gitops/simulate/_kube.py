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
the server itself (``KubernetesHub.shard_job``); a development hub has no Job controller
and no kubelet to run it, so ``KubeJobController`` plays them: it runs the Job's indexes
as local workers (``LocalHub``'s, the same ``fl-gitops aggregate --shard auto/N`` argv and
``JOB_COMPLETION_INDEX``) and writes the Job's status through the status subresource, as
the Job controller would. ``KubeShardHub`` is the pass's hub then: the real
``KubernetesHub``, with that controller acting on a Job just before the pass reads it.
"""

from __future__ import annotations

import contextlib
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
from fl_gitops.labels import EXPERIMENT_LABEL, ROUND_LABEL
from fl_gitops.placement import PlacementResult, decision_pages
from fl_gitops.render import SHARD_CONTAINER
from fl_gitops.simulate._agent import SyncResult

__all__ = ["ARGOCD_MANAGER", "KubeJobController", "KubePlayers", "KubeShardHub"]

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


class KubeJobController:
    """Kubernetes' Job controller and kubelet for the shards' Indexed Jobs, on a hub
    that runs neither (a development hub is an API server and etcd, nothing else).

    Each ``advance`` reads the Job from the server and, while it is not finished, lets the
    local runner start, reap or retry its indexes (all N at once, each retried alone up to
    its retries, the Job failed at its deadline or on an input error), then writes what
    they did into the Job's status through the status subresource.

    Args:
        api_client: an administrator's ``ApiClient`` (the controller writes Job status).
        runner: the ``LocalHub`` whose workers run the indexes (its state dir keeps them
            across passes and a resumed simulation).
    """

    def __init__(self, api_client: Any, runner: LocalHub) -> None:
        from kubernetes import client as k8s

        self._k8s = k8s
        self._batch: Any = k8s.BatchV1Api(api_client)
        self._runner = runner
        self._host = api_client.configuration.host

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (self._k8s.ApiException, OSError) as exc:
            raise translate(exc, f"hub {self._host}: {what}") from exc

    def advance(self, namespace: str, name: str) -> None:
        """One look at Job ``namespace/name``: its indexes moved on, its status written.

        Raises:
            HubError: the server could not be read or written, or a worker not started.
        """
        what = f"get job {namespace}/{name}"
        try:
            answer = self._batch.read_namespaced_job(name, namespace, _preload_content=False)
        except self._k8s.ApiException as exc:
            if exc.status == 404:
                return  # not created (yet), or deleted: nothing to run
            raise translate(exc, f"hub {self._host}: {what}") from exc
        job = json.loads(answer.data)
        if _finished(job):
            return
        state = self._runner.shard_job(_spec_of(job))
        started = (job.get("status") or {}).get("startTime") or _now()
        self._call(
            f"update job {namespace}/{name} status",
            self._batch.patch_namespaced_job_status,
            name,
            namespace,
            {"status": _status_of(state, started, _now())},
        )

    def forget(self, namespace: str, name: str) -> None:
        """The Job was deleted: its workers are stopped (as the garbage collector deletes
        its pods) and its local state removed."""
        self._runner.delete_shard_job(namespace, name)


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
