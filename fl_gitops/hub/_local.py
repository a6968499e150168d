"""An OCM hub in memory (optionally kept in JSON files), for the simulation and tests.

``LocalHub`` plays three parts that are separate programs on a real hub: the placement
controller (``set_decisions``), the API server as Argo CD's apply sees it
(``apply_works``: a spec change bumps ``metadata.generation``; status is a subresource
and survives), and the work agent (``report_applied``, ``report_job``: status written in
the agent's shapes by ``fl_gitops.hub._agent``). The reconcile pass reads it through the
same ``Hub`` methods and the same ``interpret_work`` as a real hub.

With a directory, every change is written there (one JSON file per ManifestWork, each
replaced atomically by rename), so a simulation that is stopped resumes with the hub as
it was; ``batch()`` defers the writes to the end of a group of changes.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fl_gitops.hub._agent as _agent
from fl_gitops.contracts import API_VERSION
from fl_gitops.hub._status import ClusterStatus, interpret_work, missing_work
from fl_gitops.hub.errors import HubError, HubNotFound, trim_detail
from fl_gitops.labels import EXPERIMENT_LABEL
from fl_gitops.validate import check_dns1123_label, check_dns1123_subdomain

__all__ = ["STATE_KIND", "LocalHub"]

STATE_KIND = "LocalHubState"
_INDEX = "hub.json"
_WORK_API = "work.open-cluster-management.io/v1"
# metadata the API server owns: whatever an applied object says about them is ignored
_SERVER_FIELDS = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "managedFields",
    "selfLink",
)
_UID_NAMESPACE = uuid.UUID("5f0c1a52-8b7e-4d0e-9a7c-3b1f2f6c0d11")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class LocalHub:
    """A ``Hub`` kept in memory, with the writes a real hub's other parties would make.

    Args:
        path: a directory to load from (when it holds a hub) and save to after each
            change; None keeps everything in memory.
        clock: gives the time written into conditions and timestamps (UTC).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self._path = Path(path) if path is not None else None
        self._clock = clock
        self._lock = threading.RLock()
        self._batch_depth = 0
        self._dirty: set[tuple[str, ...]] = set()
        self._decisions: dict[tuple[str, str], list[str]] = {}
        self._works: dict[tuple[str, str], dict[str, Any]] = {}
        self._resource_version = 0
        if self._path is not None:
            self._load(self._path)

    # -- persistence ------------------------------------------------------------------
    # <path>/hub.json                      kind LocalHubState: the placement decisions
    # <path>/works/<namespace>/<name>.json one ManifestWork each, so that a status
    #                                      report rewrites one small file, not the hub

    def _load(self, path: Path) -> None:
        index = path / _INDEX
        try:
            if path.exists() and not path.is_dir():
                raise ValueError("not a directory")
            if not index.exists():
                if path.exists() and any(path.iterdir()):
                    raise ValueError(f"no {_INDEX} in a directory that is not empty")
                return
            state = json.loads(index.read_text("utf-8"))
            if not isinstance(state, dict) or state.get("kind") != STATE_KIND:
                raise ValueError(f"{_INDEX} is not a {STATE_KIND} document")
            for item in state.get("decisions", []):
                key = (str(item["namespace"]), str(item["placement"]))
                self._decisions[key] = [str(c) for c in item["clusters"]]
            for file in sorted((path / "works").glob("*/*.json")):
                work = json.loads(file.read_text("utf-8"))
                meta = work["metadata"]
                self._works[(str(meta["namespace"]), str(meta["name"]))] = work
                version = int(meta.get("resourceVersion", 0))
                self._resource_version = max(self._resource_version, version)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise HubError(f"local hub state {path}: cannot read it: {trim_detail(exc)}") from exc

    def _changed(self, key: tuple[str, ...]) -> None:
        self._dirty.add(key)
        if self._batch_depth == 0:
            self._save()

    def _save(self) -> None:
        dirty, self._dirty = self._dirty, set()
        if self._path is None:
            return
        try:
            index = self._path / _INDEX
            if ("decisions",) in dirty or not index.exists():
                decisions = [
                    {"namespace": ns, "placement": p, "clusters": clusters}
                    for (ns, p), clusters in sorted(self._decisions.items())
                ]
                _write_json(
                    index,
                    {"apiVersion": API_VERSION, "kind": STATE_KIND, "decisions": decisions},
                )
            for key in sorted(k for k in dirty if k[0] == "work"):
                _, namespace, name = key
                file = self._path / "works" / namespace / f"{name}.json"
                work = self._works.get((namespace, name))
                if work is None:
                    file.unlink(missing_ok=True)
                else:
                    _write_json(file, work)
        except OSError as exc:
            raise HubError(f"local hub state {self._path}: cannot write it: {exc}") from exc

    @contextlib.contextmanager
    def batch(self) -> Iterator[LocalHub]:
        """Group changes: files are written once, when the outermost batch ends."""
        with self._lock:
            self._batch_depth += 1
            try:
                yield self
            finally:
                self._batch_depth -= 1
                if self._batch_depth == 0 and self._dirty:
                    self._save()

    def _now(self) -> str:
        return self._clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def _next_version(self) -> str:
        self._resource_version += 1
        return str(self._resource_version)

    # -- the placement controller -----------------------------------------------------

    def set_decisions(self, namespace: str, placement: str, clusters: Iterable[str]) -> None:
        """Record the clusters ``placement`` in ``namespace`` decided (replacing the last)."""
        with self._lock:
            self._decisions[(namespace, placement)] = [str(c) for c in clusters]
            self._changed(("decisions",))

    # -- the API server, as an apply sees it --------------------------------------------

    def apply_works(self, works: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
        """Create or update ManifestWorks as rendered (what Argo CD's sync does).

        A new work starts at generation 1 with no status. An update replaces labels,
        annotations and spec; the generation goes up only when the spec changed, and
        the status stays as the agent last wrote it (so it is stale until the agent
        reports on the new generation).

        Returns:
            ``(cluster, name)`` of every work created or whose spec changed, in order.

        Raises:
            HubError: an object that is not a namespaced, named ManifestWork.
        """
        changed: list[tuple[str, str]] = []
        with self._lock, self.batch():
            for work in works:
                key = self._check_work(work)
                incoming = copy.deepcopy(dict(work))
                incoming.pop("status", None)
                meta = incoming.setdefault("metadata", {})
                for name in _SERVER_FIELDS:
                    meta.pop(name, None)
                old = self._works.get(key)
                if old is None:
                    meta.update(
                        uid=str(uuid.uuid5(_UID_NAMESPACE, "/".join(key))),
                        generation=1,
                        creationTimestamp=self._now(),
                        resourceVersion=self._next_version(),
                    )
                    self._works[key] = incoming
                    changed.append(key)
                    self._changed(("work", *key))
                    continue
                old_meta = old["metadata"]
                spec_changed = incoming.get("spec") != old.get("spec")
                for name in _SERVER_FIELDS:
                    if name in old_meta:
                        meta[name] = old_meta[name]
                if spec_changed:
                    meta["generation"] = int(old_meta.get("generation", 1)) + 1
                    changed.append(key)
                if "status" in old:
                    incoming["status"] = old["status"]
                if incoming != old:
                    meta["resourceVersion"] = self._next_version()
                    self._works[key] = incoming
                    self._changed(("work", *key))
        return changed

    @staticmethod
    def _check_work(work: Mapping[str, Any]) -> tuple[str, str]:
        meta = work.get("metadata") if isinstance(work, Mapping) else None
        name = meta.get("name") if isinstance(meta, Mapping) else None
        namespace = meta.get("namespace") if isinstance(meta, Mapping) else None
        if (
            not isinstance(work, Mapping)
            or work.get("apiVersion") != _WORK_API
            or work.get("kind") != "ManifestWork"
            or not isinstance(name, str)
            or not name
            or not isinstance(namespace, str)
            or not namespace
        ):
            what = f"{namespace}/{name}" if name else "an object"
            raise HubError(
                f"local hub: cannot apply {what}: expected a {_WORK_API} ManifestWork "
                "with metadata.name and metadata.namespace"
            )
        # the API server's name rules; they also keep a name inside the state directory
        problem = check_dns1123_label(namespace) or check_dns1123_subdomain(name)
        if problem:
            raise HubError(f"local hub: cannot apply {namespace}/{name}: {problem}")
        return namespace, name

    def sync_works(
        self, works: Iterable[Mapping[str, Any]], *, experiment: str
    ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """What an Argo CD sync with pruning does to one experiment's ManifestWorks.

        Applies ``works`` (see ``apply_works``), then deletes every work labelled
        ``fl-gitops.io/experiment=<experiment>`` that ``works`` no longer contains (a
        cluster that left the roster).

        Returns:
            ``(changed, pruned)``: ``(cluster, name)`` pairs, each list in order.
        """
        works = list(works)
        with self._lock, self.batch():
            changed = self.apply_works(works)
            keep = {self._check_work(w) for w in works}
            pruned = [
                key
                for key, work in sorted(self._works.items())
                if key not in keep and _labels(work).get(EXPERIMENT_LABEL) == experiment
            ]
            for cluster, name in pruned:
                self.delete_work(cluster, name)
        return changed, pruned

    def delete_work(self, cluster: str, name: str) -> bool:
        """Delete a ManifestWork (Argo CD's prune); False when there was none."""
        with self._lock:
            if self._works.pop((cluster, name), None) is None:
                return False
            self._changed(("work", cluster, name))
            return True

    def get_work(self, cluster: str, name: str) -> dict[str, Any]:
        """A copy of the ManifestWork ``name`` in namespace ``cluster``.

        Raises:
            HubNotFound: there is no such work.
        """
        with self._lock:
            return copy.deepcopy(self._work(cluster, name))

    def list_works(self, *, experiment: str | None = None) -> list[dict[str, Any]]:
        """Copies of every work (of one experiment, by its label), sorted by namespace/name."""
        with self._lock:
            return [
                copy.deepcopy(work)
                for key, work in sorted(self._works.items())
                if experiment is None or _labels(work).get(EXPERIMENT_LABEL) == experiment
            ]

    # -- the work agent -------------------------------------------------------------------

    def report_applied(self, cluster: str, work_name: str) -> None:
        """Write what the agent's apply step writes: every manifest applied, no feedback yet.

        See ``_agent.write_applied_report``: a work whose ``Complete`` condition is True
        for its current generation is not applied again, and nothing is written.

        Raises:
            HubNotFound: there is no such work.
        """
        with self._lock:
            work = self._work(cluster, work_name)
            if _agent.write_applied_report(work, now=self._now()):
                work["metadata"]["resourceVersion"] = self._next_version()
                self._changed(("work", cluster, work_name))

    def report_job(
        self,
        cluster: str,
        work_name: str,
        *,
        job_name: str,
        succeeded: bool | None,
        result: Mapping[str, str] | None = None,
    ) -> None:
        """Write the status the agent reports for the work's Job ``job_name``.

        See ``_agent.write_job_report``: every manifest applied and available, the Job's
        feedback and conditions from the work's own rules against a Job that completed
        (True), failed (False) or is still running (None), all for the current
        generation; the result ConfigMap's feedback from the ``data`` the Job wrote into
        it (``result``), as the agent reads the live object.

        Raises:
            HubNotFound: there is no such work, or its spec has no Job ``job_name``.
        """
        with self._lock:
            work = self._work(cluster, work_name)
            try:
                _agent.write_job_report(
                    work,
                    job_name=job_name,
                    succeeded=succeeded,
                    now=self._now(),
                    where=cluster,
                    result=result,
                )
            except HubNotFound as exc:
                raise HubNotFound(f"local hub: {exc}") from None
            work["metadata"]["resourceVersion"] = self._next_version()
            self._changed(("work", cluster, work_name))

    def _work(self, cluster: str, name: str) -> dict[str, Any]:
        work = self._works.get((cluster, name))
        if work is None:
            raise HubNotFound(f"local hub: no ManifestWork {name} in namespace {cluster}")
        return work

    # -- Hub --------------------------------------------------------------------------------

    def decided_clusters(self, namespace: str, placement: str) -> list[str]:
        """See ``Hub.decided_clusters``."""
        with self._lock:
            return sorted(set(self._decisions.get((namespace, placement), [])))

    def job_statuses(
        self,
        *,
        work_name: str,
        job_name: str,
        clusters: Sequence[str],
        experiment: str | None = None,
    ) -> dict[str, ClusterStatus]:
        """See ``Hub.job_statuses``; with ``experiment``, a work without that label is
        missing, as it is to ``KubernetesHub``'s list by label."""
        with self._lock:
            result: dict[str, ClusterStatus] = {}
            for cluster in clusters:
                work = self._works.get((cluster, work_name))
                if work is not None and (
                    experiment is None or _labels(work).get(EXPERIMENT_LABEL) == experiment
                ):
                    result[cluster] = interpret_work(work, job_name=job_name)
                else:
                    result[cluster] = missing_work(cluster, work_name)
            return result


def _write_json(path: Path, document: Any) -> None:
    """Write by rename, so a reader (or a crash) never sees half a file.

    Not ``tensors.write_atomic``: this is a simulation's own hub, rewritten at every status
    report, and a flush to disk per report would cost more than losing the last one does
    (a resumed run reads the hub again from Git and the agent's next report).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(document, sort_keys=True, separators=(",", ":")), "utf-8")
    os.replace(temporary, path)


def _labels(work: Mapping[str, Any]) -> Mapping[str, Any]:
    labels = work.get("metadata", {}).get("labels")
    return labels if isinstance(labels, Mapping) else {}
