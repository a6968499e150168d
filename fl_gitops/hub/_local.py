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

It is also a ``ShardRunner``: the local implementation of what the hub's Job controller
and kubelet do for a round's Indexed Job of aggregation shards (not a fake of OCM's
agents, as the rest is). Each index runs the Job's own command line (``fl-gitops
aggregate --inputs ... --shard auto/N``) in a detached local worker process with
``JOB_COMPLETION_INDEX`` set, all N at a time; the worker records its exit in the hub's
state directory (``shard-jobs/<namespace>/<name>/``), so that another process's LocalHub
over the same directory (a later reconcile pass) sees it. A failed index (an exit other
than 0, or a worker that died without one) is run again alone, up to the Job's
``backoff_limit_per_index``; exit 2 (an input error) fails the Job at once, as the Job's
pod failure policy does; the deadline is enforced on each look. Levels, not events: the
Job advances when ``shard_job`` looks at it, as a controller's resync would.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fl_gitops.hub._agent as _agent
from fl_gitops.contracts import API_VERSION
from fl_gitops.hub._protocol import (
    SHARD_MESSAGE_ENV,
    ShardJobSpec,
    ShardJobState,
    parse_shard_message,
)
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
_SHARD_JOBS = "shard-jobs"
_INDEX_ENV = "JOB_COMPLETION_INDEX"
# An input error (exit 2): running the shard again reads the same inputs (the Job's
# podFailurePolicy FailJob rule on a real hub).
_EXIT_INPUT = 2


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
        self._shard_root: Path | None = None
        self._workers: dict[int, subprocess.Popen[bytes]] = {}  # reaped when they end
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

    # -- the Job controller and kubelet, for the shards' Indexed Job ----------------------

    def shard_job(self, spec: ShardJobSpec, *, create: bool = True) -> ShardJobState:
        """See ``ShardRunner.shard_job``: the Job's state, its failed indexes run again
        alone (within their retries), created with all its N workers when it is new.

        Raises:
            HubError: the state directory cannot be written, or a worker not started.
        """
        problem = check_dns1123_label(spec.namespace) or check_dns1123_subdomain(spec.name)
        if problem:
            raise HubError(f"local hub: cannot run Job {spec.namespace}/{spec.name}: {problem}")
        where = self._shard_dir(spec.namespace, spec.name)
        try:
            if not where.exists() and not create:
                return ShardJobState(exists=False)
            where.mkdir(parents=True, exist_ok=True)
            with _locked(where):
                return self._advance(spec, where)
        except OSError as exc:
            raise HubError(f"local hub: Job {spec.namespace}/{spec.name}: {exc}") from exc

    def delete_shard_job(self, namespace: str, name: str) -> bool:
        """See ``ShardRunner.delete_shard_job``: its workers killed, its state forgotten."""
        where = self._shard_dir(namespace, name)
        if not (where / "job.json").exists():
            return False
        try:
            with _locked(where):
                self._stop_workers(where)
                shutil.rmtree(where)
        except OSError as exc:
            raise HubError(f"local hub: cannot delete Job {namespace}/{name}: {exc}") from exc
        return True

    def delete_all_shard_jobs(self) -> int:
        """Delete every shard Job this hub's directory holds, its workers killed: what a
        simulation stopped by Ctrl-C (or an error) does, so that no detached worker outlives
        it; a resumed run creates the round's Job again. Returns how many were deleted."""
        root = self._shard_jobs_root()
        deleted = 0
        for job in sorted(root.glob("*/*/job.json")) if root.is_dir() else ():
            namespace, name = job.parent.parent.name, job.parent.name
            deleted += self.delete_shard_job(namespace, name)
        return deleted

    def shard_workers(self, namespace: str, name: str) -> dict[int, int]:
        """The process id of each index's worker that is running now (for tests)."""
        out = {}
        for file in sorted(self._shard_dir(namespace, name).glob("index-*.json")):
            state = _read_json(file)
            if state and _alive(int(state["pid"]), str(state["start"])):
                out[int(file.name[len("index-") : -len(".json")])] = int(state["pid"])
        return out

    def _shard_dir(self, namespace: str, name: str) -> Path:
        return self._shard_jobs_root() / namespace / name

    def _shard_jobs_root(self) -> Path:
        if self._shard_root is None:
            if self._path is not None:
                if not (self._path / _INDEX).exists():
                    self._changed(("decisions",))  # the directory stays a hub's
                self._shard_root = self._path / _SHARD_JOBS
            else:
                self._shard_root = Path(tempfile.mkdtemp(prefix="fl-gitops-local-jobs-"))
        return self._shard_root

    def _advance(self, spec: ShardJobSpec, where: Path) -> ShardJobState:
        """One look at the Job: what each index did since the last, and what it does next."""
        self.close()  # the workers this hub started that ended are reaped, not left zombies
        job = _read_json(where / "job.json")
        if job is None:
            job = {"created": time.time(), "failed": False, "reason": "", "args": spec.args}
            _write_json(where / "job.json", job)
        succeeded: set[int] = set()
        failed: set[int] = set()
        messages: dict[int, str] = {}
        reason = str(job.get("reason", ""))
        active = 0
        for i in range(spec.shards):
            state = _read_json(where / f"index-{i}.json")
            if state is None:
                if not job["failed"]:
                    self._launch(spec, where, i, attempt=1, failures=0)
                    active += 1
                continue
            code = _exit_code(where, i, int(state["attempt"]))
            if code == 0:
                succeeded.add(i)
                message = _message(where, i, int(state["attempt"]))
                if message is not None:
                    messages[i] = message
                continue
            if code is None and _alive(int(state["pid"]), str(state["start"])):
                active += 1
                continue
            if job["failed"]:
                failed.add(i)
                continue
            failures = int(state["failures"]) + 1
            if code == _EXIT_INPUT:
                failed.add(i)
                reason = reason or (
                    f"PodFailurePolicy: shard index {i} exited {_EXIT_INPUT} (an input error; "
                    "a retry would read the same inputs)"
                )
            elif failures > spec.backoff_limit_per_index:
                failed.add(i)
                reason = reason or (
                    f"FailedIndexes: shard index {i} failed {failures} times "
                    f"(backoffLimitPerIndex {spec.backoff_limit_per_index})"
                )
            else:
                self._launch(spec, where, i, attempt=int(state["attempt"]) + 1, failures=failures)
                active += 1
        complete = len(succeeded) == spec.shards
        if not complete and not reason:
            elapsed = time.time() - float(job["created"])
            if elapsed > spec.active_deadline_seconds:
                reason = (
                    "DeadlineExceeded: the Job was active longer than its "
                    f"activeDeadlineSeconds ({spec.active_deadline_seconds})"
                )
        if reason and not complete and not job["failed"]:
            job.update(failed=True, reason=reason)
            _write_json(where / "job.json", job)
            self._stop_workers(where)
            active = 0
        is_failed = bool(job["failed"]) and not complete
        return ShardJobState(
            exists=True,
            succeeded=frozenset(succeeded),
            failed_indexes=frozenset(failed),
            active=0 if is_failed else active,
            complete=complete,
            failed=is_failed,
            reason=reason if is_failed else "",
            messages=messages,
        )

    def _launch(
        self, spec: ShardJobSpec, where: Path, index: int, *, attempt: int, failures: int
    ) -> None:
        """Start index ``index``'s worker, detached: it outlives this pass."""
        # This process's environment (the store's options file, PATH), then the Job's own
        # variables but HOME (a pod's read-only root wants /tmp; here the user's stays).
        env = dict(os.environ)
        env.update(
            {
                str(e["name"]): str(e["value"])
                for e in spec.env
                if "value" in e and e["name"] != "HOME"
            }
        )
        env[_INDEX_ENV] = str(index)
        # Where the shard writes its ending message, read back as the kubelet reads a
        # pod's termination message into its status.
        env[SHARD_MESSAGE_ENV] = str(where / f"index-{index}.attempt-{attempt}.message")
        argv = [sys.executable, "-c", _WORKER, str(where), str(index), str(attempt), *spec.args]
        log = where / f"index-{index}.attempt-{attempt}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=env, start_new_session=True, close_fds=True,
            )  # fmt: skip
        self._workers[proc.pid] = proc
        state: dict[str, Any] = {"attempt": attempt, "failures": failures, "pid": proc.pid}
        state["start"] = _start_time(proc.pid)
        _write_json(where / f"index-{index}.json", state)

    def _stop_workers(self, where: Path) -> None:
        for file in sorted(where.glob("index-*.json")):
            state = _read_json(file)
            if state and _alive(int(state["pid"]), str(state["start"])):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(int(state["pid"]), signal.SIGKILL)
                self._reap(int(state["pid"]))

    def _reap(self, pid: int) -> None:
        proc = self._workers.pop(pid, None)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)

    def close(self) -> None:
        """Reap the workers this hub started that have ended (running ones go on)."""
        for pid, proc in list(self._workers.items()):
            if proc.poll() is not None:
                del self._workers[pid]

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


# A shard's worker: the Job's command line in this interpreter, its exit recorded (by
# rename: never half a file) for whichever pass looks next. Killed, it records nothing,
# and the hub sees a dead process with no exit: a failed attempt.
_WORKER = """
import os, sys
where, index, attempt, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
code = 1
try:
    from fl_gitops.cli import main
    code = main(args)
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else 1
finally:
    path = os.path.join(where, f"index-{index}.attempt-{attempt}.exit")
    with open(path + ".tmp", "w") as f:
        f.write(str(code))
    os.replace(path + ".tmp", path)
sys.exit(code)
"""


@contextlib.contextmanager
def _locked(where: Path) -> Iterator[None]:
    """One look at a Job at a time, across processes (two passes racing)."""
    with open(where / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise HubError(f"local hub state {path}: cannot read it: {trim_detail(exc)}") from exc
    return doc if isinstance(doc, dict) else None


def _message(where: Path, index: int, attempt: int) -> str | None:
    """An attempt's ending message, as a pod's termination message is read: at most 4096
    bytes, kept only when it is a decision's digest (``parse_shard_message``)."""
    try:
        with open(where / f"index-{index}.attempt-{attempt}.message", "rb") as f:
            raw = f.read(4097)
    except FileNotFoundError:
        return None
    return parse_shard_message(raw.decode("utf-8", "replace"))


def _exit_code(where: Path, index: int, attempt: int) -> int | None:
    try:
        return int((where / f"index-{index}.attempt-{attempt}.exit").read_text().strip())
    except FileNotFoundError:
        return None
    except ValueError:
        return 1


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _start_time(pid: int) -> str:
    """When the process started (in clock ticks since boot): with its pid, names it even
    after the pid is reused."""
    fields = _stat(pid)
    return fields[19] if fields is not None and len(fields) > 19 else ""


def _alive(pid: int, start: str) -> bool:
    """Whether the worker ``pid`` that started at ``start`` is still running (a zombie is
    not: it ended, and only its parent has not reaped it yet)."""
    fields = _stat(pid)
    if fields is None:
        if os.path.exists("/proc/self/stat"):
            return False
        try:  # no /proc: the pid alone
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return fields[0] not in ("Z", "X") and (not start or fields[19] == start)


def _labels(work: Mapping[str, Any]) -> Mapping[str, Any]:
    labels = work.get("metadata", {}).get("labels")
    return labels if isinstance(labels, Mapping) else {}
