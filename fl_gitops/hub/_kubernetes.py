"""The real hub: PlacementDecisions and ManifestWorks read through the Kubernetes API.

The reconcile job runs on the OCM hub with a ServiceAccount that may only read (see
docs/hub.md for the RBAC). This module is the boundary where the official ``kubernetes``
client's errors (``ApiException``, urllib3 transport errors) become ``HubError``
subclasses with short, redacted messages; nothing above it sees a client exception.

Reading many clusters costs one paged, cluster-wide list by the experiment's label
instead of one GET per cluster namespace.

The one write is the sharded round's Indexed Job (``shard_job``): ephemeral compute the
reconcile pass creates, finds again by its name on every later pass, and deletes after
the merge (docs/architecture.md, "The shards' Job"). Once that Job is complete its pods
are read too, for the ending message each shard left in its pod's status (written by the
kubelet, not by whoever can write to the store), which the merge checks the shards'
files against.
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from fl_gitops.hub._jobstatus import is_same_job, shard_job_state, shard_messages
from fl_gitops.hub._protocol import ShardJobSpec, ShardJobState
from fl_gitops.hub._status import ClusterStatus, interpret_work, missing_work
from fl_gitops.hub.errors import (
    HubConfigError,
    HubConflict,
    HubError,
    HubForbidden,
    HubNotFound,
    HubUnavailable,
    trim_detail,
)
from fl_gitops.labels import EXPERIMENT_LABEL
from fl_gitops.placement import PLACEMENT_LABEL
from fl_gitops.render import (
    INDEXED_JOBS,
    SHARD_CONTAINER,
    shard_job_manifest,
)
from fl_gitops.validate import check_label_value

__all__ = [
    "EXPERIMENT_LABEL",
    "PLACEMENT_DECISIONS",
    "RETRIES",
    "WORKS",
    "KubernetesHub",
    "translate",
]

# (group, version, plural) of the two OCM resources the hub reads.
PLACEMENT_DECISIONS = ("cluster.open-cluster-management.io", "v1beta1", "placementdecisions")
WORKS = ("work.open-cluster-management.io", "v1", "manifestworks")
# The label Kubernetes' Job controller gives every pod of a Job (1.20 and on; 1.27 adds
# ``batch.kubernetes.io/job-name`` beside it): the Job's name.
JOB_NAME_LABEL = "job-name"
# The label every rendered ManifestWork carries (fl_gitops.render sets it).
# from_config's retry policy: a dropped connection or a read error is retried twice,
# quickly; an HTTP error status is not retried and Retry-After is not slept through, so a
# pass never blocks for as long as a server asks: HubUnavailable carries the delay.
RETRIES = urllib3.Retry(
    total=2, backoff_factor=0.2, status_forcelist=(), respect_retry_after_header=False
)

_VERSION_PART = re.compile(r"\d{1,4}")
_OBJECT_REPR = re.compile(r"<[^<>]* object at 0x[0-9a-fA-F]+>:?\s*")
_ERRNO = re.compile(r"\[Errno -?\d+\] [^'\")\]]+")


def _server_message(exc: k8s.ApiException) -> str:
    """The ``message`` of the Status the API server sent, or a trimmed body."""
    body = exc.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not body:
        return ""
    try:
        status = json.loads(body)
    except ValueError:
        return trim_detail(body)
    if isinstance(status, Mapping) and isinstance(status.get("message"), str):
        return trim_detail(status["message"])
    return trim_detail(body)


def _retry_after(exc: k8s.ApiException) -> float | None:
    headers = exc.headers or {}
    try:
        value = headers.get("Retry-After")
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _transport_cause(exc: BaseException) -> str:
    """A short cause for a transport error: "connection refused", "timed out", ..."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        item = todo.pop()
        if item is None or any(item is s for s in seen):
            continue
        seen.append(item)
        todo += [getattr(item, "reason", None), item.__cause__, item.__context__]
    for item in seen:
        if isinstance(item, ConnectionRefusedError) or "Connection refused" in str(item):
            return "connection refused"
    for item in seen:
        if isinstance(item, TimeoutError | urllib3.exceptions.TimeoutError):
            return "timed out"
    text = _OBJECT_REPR.sub("", str(exc))
    match = _ERRNO.search(text)
    return trim_detail(match.group(0) if match else f"{type(exc).__name__}: {text}", 120)


def translate(exc: BaseException, what: str) -> HubError:
    """The ``HubError`` for a client exception raised while doing ``what``.

    Args:
        exc: an ``ApiException`` or a urllib3 error from the kubernetes client.
        what: the operation, e.g. ``hub https://hub:6443: get manifestwork ns/name``.

    Returns:
        HubForbidden (401, 403), HubNotFound (404), HubConflict (409), HubUnavailable
        (429, 5xx, transport errors; ``delay`` from Retry-After), HubError otherwise.
    """
    if isinstance(exc, k8s.ApiException):
        status = int(exc.status or 0)
        if status == 0:  # the client's own failure, such as a TLS error
            return HubError(f"{what}: {trim_detail(exc.reason)}")
        message = _server_message(exc)
        text = f"{what}: {status} {trim_detail(exc.reason, 60) or 'error'}"
        text += f": {message}" if message else ""
        if status == 401:
            return HubForbidden(f"{text} (the hub rejected the credentials)")
        if status == 403:
            return HubForbidden(text)
        if status == 404:
            return HubNotFound(text)
        if status == 409:
            return HubConflict(text)
        if status == 429 or status >= 500:
            return HubUnavailable(text, delay=_retry_after(exc))
        return HubError(text)
    if isinstance(exc, urllib3.exceptions.HTTPError | OSError):
        return HubUnavailable(f"{what}: cannot reach the API server: {_transport_cause(exc)}")
    return HubError(f"{what}: {type(exc).__name__}: {trim_detail(exc)}")


@dataclass(frozen=True)
class _Read:
    """One list the hub answered from, and the snapshot it saw: what a watch resumes."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    label_selector: str
    resource_version: str


def _selector(key: str, value: str) -> str:
    """``key=value``, refusing a value that would change the selector's meaning."""
    error = check_label_value(value) if value else "an empty value selects nothing useful"
    if error:
        raise HubConfigError(f"label selector {key}: {error}")
    return f"{key}={value}"


class KubernetesHub:
    """A ``Hub`` reading PlacementDecisions and ManifestWorks from an OCM hub's API server.

    Args:
        api_client: a configured ``kubernetes.client.ApiClient`` (tests point one at a
            local server; ``from_config`` builds one from a kubeconfig or the pod).
        page_size: ``limit`` of each list call; the ``continue`` token fetches the rest.
        request_timeout: seconds for each request before it counts as unavailable.
        min_indexed_version: the oldest Kubernetes (major, minor) that runs the shards'
            Indexed Job; 1.22, where Indexed Jobs are beta and on by default. Tests
            against an older API server lower it (there is no Job controller there
            anyway, only the API).
    """

    def __init__(
        self,
        api_client: k8s.ApiClient,
        *,
        page_size: int = 500,
        request_timeout: float = 30.0,
        min_indexed_version: tuple[int, int] = INDEXED_JOBS,
    ) -> None:
        if page_size < 1:
            raise ValueError(f"page_size must be at least 1, got {page_size}")
        self._api = k8s.CustomObjectsApi(api_client)
        self._batch = k8s.BatchV1Api(api_client)
        self._core = k8s.CoreV1Api(api_client)
        self._version_api = k8s.VersionApi(api_client)
        self.min_indexed_version = tuple(min_indexed_version)
        self._server_version: tuple[int, int] | None = None
        self._page_size = int(page_size)
        self._timeout = request_timeout
        self._host = trim_detail(api_client.configuration.host, 120)
        # what the last answers were read from, by description: wait_for_change watches these
        self._reads: dict[str, _Read] = {}

    @classmethod
    def from_config(
        cls,
        kubeconfig: str | os.PathLike[str] | None = None,
        context: str | None = None,
        **options: Any,
    ) -> KubernetesHub:
        """Connect as the pod's ServiceAccount, or as a kubeconfig user.

        With neither argument and ``KUBERNETES_SERVICE_HOST`` set (inside a pod), the
        in-cluster config is used; otherwise the kubeconfig (``$KUBECONFIG`` or
        ``~/.kube/config`` when ``kubeconfig`` is None) and its ``context``.

        Raises:
            HubConfigError: no usable configuration (names the file or context).
        """
        return cls(cls.api_client_from_config(kubeconfig, context), **options)

    @staticmethod
    def api_client_from_config(
        kubeconfig: str | os.PathLike[str] | None = None, context: str | None = None
    ) -> k8s.ApiClient:
        """The configured ``ApiClient`` that ``from_config`` connects with.

        Raises:
            HubConfigError: no usable configuration (names the file or context).
        """
        configuration = k8s.Configuration()
        in_cluster = (
            kubeconfig is None
            and context is None
            and bool(os.environ.get("KUBERNETES_SERVICE_HOST"))
        )
        if in_cluster:
            where = "the pod's ServiceAccount (in-cluster config)"
        else:
            where = os.fspath(kubeconfig) if kubeconfig is not None else "the default kubeconfig"
            where += f", context {context}" if context else ""
        try:
            if in_cluster:
                k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            else:
                k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=os.fspath(kubeconfig) if kubeconfig is not None else None,
                    context=context,
                    client_configuration=configuration,
                    persist_config=False,
                )
        except (k8s_config.ConfigException, OSError, ValueError, TypeError) as exc:
            raise HubConfigError(
                f"cannot configure the hub client from {where}: {trim_detail(exc)}"
            ) from exc
        configuration.retries = RETRIES
        return k8s.ApiClient(configuration)

    # -- calls ------------------------------------------------------------------------

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, _request_timeout=self._timeout, **kwargs)
        except (k8s.ApiException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise translate(exc, f"hub {self._host}: {what}") from exc

    def _list(
        self,
        what: str,
        fn: Callable[..., Any],
        *args: Any,
        label_selector: str,
        watched: bool = True,
    ) -> Iterator[Mapping[str, Any]]:
        """Every item of a paged list; an expired ``continue`` token restarts it once.

        ``watched``: ``wait_for_change`` resumes this list from its snapshot (the works, the
        decisions). A list read once for a finished thing (a Job's pods) is not watched.
        ``fn`` is either a custom-objects call (plain dicts) or a typed one, read as JSON.
        """
        # Forget the older answer's snapshot until this list completes: after a failed
        # list, a change since that answer must not wake wait_for_change at once, every
        # time, while the hub keeps failing (the caller retries at its interval).
        self._reads.pop(what, None)
        call = self._call if watched else self._json
        restarted = False
        token: str | None = None
        seen_tokens: set[str] = set()
        snapshot: _Read | None = None
        while True:
            kwargs: dict[str, Any] = {"label_selector": label_selector, "limit": self._page_size}
            if token:
                kwargs["_continue"] = token
            try:
                page = call(what, fn, *args, **kwargs)
            except HubError as exc:
                cause = exc.__cause__
                expired = isinstance(cause, k8s.ApiException) and cause.status == 410
                if expired and token and not restarted:
                    # The snapshot behind the token is gone: list again from the start.
                    restarted, token, seen_tokens = True, None, set()
                    continue
                raise
            if not isinstance(page, Mapping):
                raise HubError(f"hub {self._host}: {what}: the answer is not a list object")
            items = page.get("items") or []
            for item in items if isinstance(items, list) else ():
                if isinstance(item, Mapping):
                    yield item
            meta = page.get("metadata")
            if token is None and isinstance(meta, Mapping) and meta.get("resourceVersion"):
                # every page of a list shares the first page's snapshot
                snapshot = _Read(fn, args, label_selector, str(meta["resourceVersion"]))
            token = meta.get("continue") if isinstance(meta, Mapping) else None
            if not token:
                if snapshot is not None and watched:
                    self._reads[what] = snapshot
                return
            if token in seen_tokens:
                raise HubError(f"hub {self._host}: {what}: the server repeated a continue token")
            seen_tokens.add(token)

    # -- watching -----------------------------------------------------------------------

    def wait_for_change(self, timeout: float) -> bool:
        """Block until something the last answers were read from changes, or ``timeout``.

        Watches every list this hub answered from (the ManifestWorks of an experiment,
        the PlacementDecisions of a placement) from the snapshot it read, so a change made
        between that read and this call wakes it at once, and one made while waiting wakes
        it within the watch's latency instead of at the next poll. Without a list to resume
        (nothing read yet, or works read one by one) it sleeps ``timeout``.

        Returns:
            True when a watch event (or an expired snapshot) says a pass is due; False
            when the time ran out, or a watch failed (the caller's next pass will say why).
        """
        from kubernetes import watch

        reads = list(self._reads.values())
        if not reads:
            time.sleep(timeout)
            return False
        woke: queue.Queue[bool] = queue.Queue()
        watchers = [watch.Watch() for _ in reads]  # type: ignore[no-untyped-call]
        seconds = max(1, int(timeout + 0.999))

        def follow(watcher: Any, read: _Read) -> None:
            try:
                for _event in watcher.stream(
                    read.fn,
                    *read.args,
                    label_selector=read.label_selector,
                    resource_version=read.resource_version,
                    timeout_seconds=seconds,
                    _request_timeout=seconds + self._timeout,
                ):
                    woke.put(True)
                    return
            except k8s.ApiException as exc:
                woke.put(exc.status == 410)  # the snapshot is gone: a fresh pass re-reads
                return
            except (urllib3.exceptions.HTTPError, OSError, ValueError):
                woke.put(False)
                return
            woke.put(False)  # the server ended the watch at its timeout

        for watcher, read in zip(watchers, reads, strict=True):
            threading.Thread(target=follow, args=(watcher, read), daemon=True).start()
        deadline = time.monotonic() + timeout
        pending = len(reads)
        try:
            while pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                try:
                    if woke.get(timeout=left):
                        return True
                except queue.Empty:
                    return False
                pending -= 1
            left = deadline - time.monotonic()
            if left > 0:
                time.sleep(left)  # every watch failed: do not turn into a busy loop
            return False
        finally:
            for watcher in watchers:
                watcher.stop()  # type: ignore[no-untyped-call]

    # -- Hub ----------------------------------------------------------------------------

    def decided_clusters(self, namespace: str, placement: str) -> list[str]:
        """See ``Hub.decided_clusters``."""
        selector = _selector(PLACEMENT_LABEL, placement)
        group, version, plural = PLACEMENT_DECISIONS
        what = f"list {plural} in namespace {namespace} (labelSelector {selector})"
        clusters: set[str] = set()
        for decision in self._list(
            what,
            self._api.list_namespaced_custom_object,
            group,
            version,
            namespace,
            plural,
            label_selector=selector,
        ):
            status = decision.get("status")
            decisions = status.get("decisions") if isinstance(status, Mapping) else None
            for entry in decisions if isinstance(decisions, list) else ():
                name = entry.get("clusterName") if isinstance(entry, Mapping) else None
                if isinstance(name, str) and name:
                    clusters.add(name)
        return sorted(clusters)

    def job_statuses(
        self,
        *,
        work_name: str,
        job_name: str,
        clusters: Sequence[str],
        experiment: str | None = None,
    ) -> dict[str, ClusterStatus]:
        """See ``Hub.job_statuses``.

        With ``experiment``, one paged list of ManifestWorks in all namespaces by the
        ``fl-gitops.io/experiment`` label; without it, one GET per cluster namespace.
        """
        works = (
            self._works_by_label(work_name, experiment, clusters)
            if experiment is not None
            else self._works_by_get(work_name, clusters)
        )
        return {
            cluster: (
                interpret_work(works[cluster], job_name=job_name)
                if cluster in works
                else missing_work(cluster, work_name)
            )
            for cluster in clusters
        }

    def _works_by_label(
        self, work_name: str, experiment: str, clusters: Sequence[str]
    ) -> dict[str, Mapping[str, Any]]:
        selector = _selector(EXPERIMENT_LABEL, experiment)
        group, version, plural = WORKS
        wanted = set(clusters)
        found: dict[str, Mapping[str, Any]] = {}
        for work in self._list(
            f"list {plural} in all namespaces (labelSelector {selector})",
            self._api.list_cluster_custom_object,
            group,
            version,
            plural,
            label_selector=selector,
        ):
            meta = work.get("metadata")
            if not isinstance(meta, Mapping) or meta.get("name") != work_name:
                continue
            namespace = meta.get("namespace")
            if isinstance(namespace, str) and namespace in wanted:
                found[namespace] = work
        return found

    def _works_by_get(
        self, work_name: str, clusters: Sequence[str]
    ) -> dict[str, Mapping[str, Any]]:
        group, version, plural = WORKS
        found: dict[str, Mapping[str, Any]] = {}
        for cluster in clusters:
            what = f"get {plural} {cluster}/{work_name}"
            try:
                work = self._call(
                    what,
                    self._api.get_namespaced_custom_object,
                    group,
                    version,
                    cluster,
                    plural,
                    work_name,
                )
            except HubNotFound as exc:
                if _object_not_found(exc.__cause__, work_name):
                    continue  # no such work: reported as UNKNOWN, not an error
                raise
            if isinstance(work, Mapping):
                found[cluster] = work
        return found

    # -- ShardRunner ----------------------------------------------------------------------

    def server_version(self) -> tuple[int, int]:
        """The hub's Kubernetes (major, minor), read from ``/version`` once per hub object.

        A minor such as ``27+`` (as managed offerings write it) counts as 27.

        Raises:
            HubError: a subclass saying why the hub could not answer, or an answer that
                names no version.
        """
        if self._server_version is None:
            answer = self._json("get /version", self._version_api.get_code)
            parts = [answer.get("major"), answer.get("minor")]
            matches = [_VERSION_PART.match(p) if isinstance(p, str) else None for p in parts]
            if matches[0] is None or matches[1] is None:
                raise HubError(f"hub {self._host}: /version names no Kubernetes version")
            self._server_version = (int(matches[0].group()), int(matches[1].group()))
        return self._server_version

    def _check_indexed(self) -> tuple[int, int]:
        version = self.server_version()
        if version < self.min_indexed_version:
            need = ".".join(str(part) for part in self.min_indexed_version)
            raise HubConfigError(
                f"spec.aggregation.shards > 1 needs Kubernetes {need} or newer for Indexed "
                f"Jobs; this hub serves {version[0]}.{version[1]}"
            )
        return version

    def shard_job(self, spec: ShardJobSpec, *, create: bool = True) -> ShardJobState:
        """See ``ShardRunner.shard_job``.

        The Job is read by its name; absent and ``create``, it is created from
        ``shard_job_manifest`` (a 409 means another pass created it meanwhile: it is read
        again). A Job of that name whose labels or shard arguments are not this spec's is
        refused, never adopted. Once the Job is complete, its pods are listed for their
        ending messages (``ShardJobState.messages``, read by ``shard_messages``).

        Raises:
            HubConfigError: the hub is older than ``min_indexed_version``.
            HubConflict: a Job of this name exists that was not made for this spec.
            HubError: a subclass saying why the hub could not answer.
        """
        version = self._check_indexed()
        manifest = shard_job_manifest(spec, server_version=version)
        where = f"{spec.namespace}/{spec.name}"
        job = self._get_job(spec.namespace, spec.name)
        if job is None:
            if not create:
                return ShardJobState(exists=False)
            try:
                job = self._json(
                    f"create job {where}",
                    self._batch.create_namespaced_job,
                    spec.namespace,
                    manifest,
                )
            except HubConflict:
                job = self._get_job(spec.namespace, spec.name)
                if job is None:  # created and deleted between the two calls
                    raise
        if not is_same_job(job, manifest, SHARD_CONTAINER):
            raise HubConflict(
                f"hub {self._host}: job {where} exists but was not made for round "
                f"{spec.round}'s {spec.shards} shards of experiment {spec.experiment} (its "
                "labels or the shard container's image, command or arguments differ); "
                "fl-gitops neither adopts nor replaces it: delete it or find what made it"
            )
        state = shard_job_state(job, spec.shards)
        if not state.complete:
            return state
        pods = list(self._job_pods(spec.namespace, spec.name))
        messages = shard_messages(job, pods, spec.shards, SHARD_CONTAINER)
        return dataclasses.replace(state, messages=messages)

    def _job_pods(self, namespace: str, name: str) -> Iterator[Mapping[str, Any]]:
        """The pods labelled as Job ``name``'s, as the server holds them (paged); whose
        they really are is ``shard_messages``'s check (their controller's uid)."""
        selector = _selector(JOB_NAME_LABEL, name)
        return self._list(
            f"list pods in namespace {namespace} (labelSelector {selector})",
            self._core.list_namespaced_pod,
            namespace,
            label_selector=selector,
            watched=False,
        )

    def delete_shard_job(self, namespace: str, name: str) -> bool:
        """See ``ShardRunner.delete_shard_job``: background propagation, so the Job goes
        at once and the garbage collector removes its pods after it."""
        what = f"delete job {namespace}/{name}"
        try:
            self._json(
                what,
                self._batch.delete_namespaced_job,
                name,
                namespace,
                body={"propagationPolicy": "Background"},
            )
        except HubNotFound as exc:
            if _object_not_found(exc.__cause__, name):
                return False
            raise
        return True

    def _get_job(self, namespace: str, name: str) -> Mapping[str, Any] | None:
        try:
            job = self._json(
                f"get job {namespace}/{name}", self._batch.read_namespaced_job, name, namespace
            )
        except HubNotFound as exc:
            if _object_not_found(exc.__cause__, name):
                return None
            raise
        return job

    def _json(
        self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Mapping[str, Any]:
        """The JSON object a call answers, as the server sent it (camelCase, with fields
        this client's models may not know), through ``_call``'s error translation."""
        response = self._call(what, fn, *args, _preload_content=False, **kwargs)
        try:
            answer = json.loads(response.data)
        except (ValueError, AttributeError, TypeError) as exc:
            raise HubError(f"hub {self._host}: {what}: the answer is not JSON") from exc
        if not isinstance(answer, Mapping):
            raise HubError(f"hub {self._host}: {what}: the answer is not an object")
        return answer


def _object_not_found(exc: BaseException | None, name: str) -> bool:
    """True when a 404 says the named object is missing (not its API or resource type)."""
    if not isinstance(exc, k8s.ApiException) or exc.status != 404 or not exc.body:
        return False
    body = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else exc.body
    try:
        status = json.loads(body)
    except ValueError:
        return False
    details = status.get("details") if isinstance(status, Mapping) else None
    return isinstance(details, Mapping) and details.get("name") == name
