"""What one ManifestWork says about this round's Job, as a pure function.

Both hubs read a ManifestWork object and hand it to ``interpret_work``, so the Kubernetes
hub and the local hub can never disagree about what a status means. The function is
strict about time: a status counts only when the work agent has seen the current spec
(the work's conditions carry ``observedGeneration == metadata.generation``) and the
feedback is about the Job named for this round. Anything else is ``UNKNOWN`` with a
reason, so the previous round's "done" is never read as this round's.

The feedback names are those the rendered ManifestWork asks for: ``WellKnownStatus`` on a
batch/v1 Job gives ``JobComplete`` (the Complete condition's status, "True" only on
success) and ``JobSucceeded`` (``.status.succeeded``); the JSONPaths rules add ``failed``,
``succeeded`` and ``JobFailed`` (the Failed condition's status). The work agent leaves out
a value whose path finds nothing, so a zero count and a missing condition are absent.
The Job's ``conditionRules`` (``WellKnownConditions``, ``Complete``) make the agent write
a ``Complete`` condition on the Job's entry, True once the Job finished either way: with
no feedback value saying it succeeded, that is a failure.

Argo CD's health check for ManifestWork (``fl_gitops/render/health/manifestwork.lua``)
reads the same fields in the same order; ``tests/hub/manifestwork_cases.py`` holds the
objects both are tested on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from fl_gitops.hub.errors import trim_detail
from fl_gitops.reports import HubReport, ReportError, parse_report, result_name

__all__ = [
    "ClusterStatus",
    "JobState",
    "RoundProgress",
    "feedback_values",
    "interpret_work",
    "job_state",
    "missing_work",
    "read_report",
    "summarize",
]


class JobState(StrEnum):
    """Where one cluster's Job stands, as far as the hub can tell."""

    PENDING = "Pending"  # the work agent applied the current spec; no feedback for the Job yet
    RUNNING = "Running"  # current feedback for the Job, without a result
    SUCCEEDED = "Succeeded"  # the Job completed
    FAILED = "Failed"  # the Job failed (backoffLimit 0: one failed pod fails it)
    UNKNOWN = "Unknown"  # no current status: no work, a stale status, or one we cannot read


@dataclass(frozen=True)
class ClusterStatus:
    """One cluster's state for this round, and why.

    ``reason`` is for people ("observedGeneration 4 < generation 5", "failed=1");
    ``job`` is the Job the status was about (None when there was no Job status at all).
    For a SUCCEEDED Job, ``report`` is what the Job reported through the hub (its result
    ConfigMap, read back by the work agent's feedback), or None with ``report_problem``
    saying why there is none: the reconcile pass accepts the cluster's update only when it
    matches a report.
    """

    cluster: str
    state: JobState
    reason: str
    job: str | None
    report: HubReport | None = None
    report_problem: str = field(default="", compare=False)


def missing_work(cluster: str, work_name: str) -> ClusterStatus:
    """The status of a cluster whose namespace holds no ManifestWork ``work_name``."""
    return ClusterStatus(
        cluster, JobState.UNKNOWN, f"no ManifestWork {work_name} in namespace {cluster}", None
    )


def _conditions(raw: object) -> dict[str, Mapping[str, Any]]:
    """Conditions by type (a list-map keyed by type; a malformed entry is skipped)."""
    by_type: dict[str, Mapping[str, Any]] = {}
    if isinstance(raw, list):
        for item in raw:
            if isinstance(item, Mapping) and isinstance(item.get("type"), str):
                by_type.setdefault(item["type"], item)
    return by_type


def _describe(condition: Mapping[str, Any]) -> str:
    """``Applied=False (AppliedManifestWorkFailed: message)``, trimmed."""
    text = f"{condition.get('type')}={condition.get('status')}"
    detail = ": ".join(
        part
        for part in (trim_detail(condition.get("reason")), trim_detail(condition.get("message")))
        if part
    )
    return f"{text} ({trim_detail(detail)})" if detail else text


def feedback_values(entry: Mapping[str, Any]) -> dict[str, int | str | bool]:
    """The status feedback values of one ``resourceStatus.manifests`` entry, by name.

    Integer, String and Boolean values are returned as Python values, JsonRaw as its
    string; a malformed value is left out.
    """
    values: dict[str, int | str | bool] = {}
    feedback = entry.get("statusFeedback")
    raw = feedback.get("values") if isinstance(feedback, Mapping) else None
    if not isinstance(raw, list):
        return values
    for item in raw:
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            continue
        field_value = item.get("fieldValue")
        if not isinstance(field_value, Mapping):
            continue
        kind = field_value.get("type")
        key = {"Integer": "integer", "String": "string", "Boolean": "boolean"}.get(
            str(kind), "jsonRaw"
        )
        value: object = field_value.get(key)
        if kind == "Integer" and isinstance(value, int) and not isinstance(value, bool):
            values[item["name"]] = int(value)
        elif kind == "Boolean" and isinstance(value, bool):
            values[item["name"]] = bool(value)
        elif kind in ("String", "JsonRaw") and isinstance(value, str):
            values[item["name"]] = str(value)
    return values


def _count(values: Mapping[str, int | str | bool], *names: str) -> int:
    counts = [v for n in names if isinstance(v := values.get(n), int) and not isinstance(v, bool)]
    return max(counts, default=0)


# What Kubernetes assumes when a Job leaves them out.
_DEFAULT_BACKOFF_LIMIT = 6
_DEFAULT_COMPLETIONS = 1


def _job_limits(work: Mapping[str, Any], job_name: str) -> tuple[int, int]:
    """``(backoffLimit, completions)`` of the spec's batch/v1 Job ``job_name``.

    A count means something only against these: ``failed`` is a failure once it passes
    ``backoffLimit`` (the rendered Jobs have 0, so one failed pod fails them) and
    ``succeeded`` a success once it reaches ``completions``. Kubernetes' defaults (6
    and 1) stand in for a field the spec leaves out.
    """
    spec = work.get("spec")
    workload = spec.get("workload") if isinstance(spec, Mapping) else None
    manifests = workload.get("manifests") if isinstance(workload, Mapping) else None
    for manifest in manifests if isinstance(manifests, list) else ():
        if not isinstance(manifest, Mapping) or manifest.get("kind") != "Job":
            continue
        meta = manifest.get("metadata")
        if manifest.get("apiVersion") != "batch/v1" or not isinstance(meta, Mapping):
            continue
        if meta.get("name") != job_name:
            continue
        job_spec = manifest.get("spec")
        job_spec = job_spec if isinstance(job_spec, Mapping) else {}
        backoff = _int_or(job_spec.get("backoffLimit"), _DEFAULT_BACKOFF_LIMIT)
        return backoff, _int_or(job_spec.get("completions"), _DEFAULT_COMPLETIONS)
    return _DEFAULT_BACKOFF_LIMIT, _DEFAULT_COMPLETIONS


def _int_or(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _result(
    values: Mapping[str, int | str | bool], *, backoff_limit: int, completions: int
) -> JobState | None:
    """SUCCEEDED, FAILED, or None while the Job has no result.

    The Job's terminal conditions decide first; the counts are the fallback, since the
    agent can report them before the controller writes the condition. A failure count
    past ``backoffLimit`` decides before a success count (with ``backoffLimit: 0``, one
    failed pod fails the Job whatever else was read).
    """
    if values.get("JobComplete") == "True":
        return JobState.SUCCEEDED
    if values.get("JobFailed") == "True":
        return JobState.FAILED
    if _count(values, "failed") > backoff_limit:
        return JobState.FAILED
    if _count(values, "succeeded", "JobSucceeded") >= completions:
        return JobState.SUCCEEDED
    return None


def _values_text(values: Mapping[str, int | str | bool]) -> str:
    return ", ".join(f"{name}={trim_detail(values[name], 40)}" for name in sorted(values))


def _job_entries(status: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    resource_status = status.get("resourceStatus")
    manifests = resource_status.get("manifests") if isinstance(resource_status, Mapping) else None
    entries: list[Mapping[str, Any]] = []
    for entry in manifests if isinstance(manifests, list) else ():
        if not isinstance(entry, Mapping):
            continue
        meta = entry.get("resourceMeta")
        if (
            isinstance(meta, Mapping)
            and meta.get("kind") == "Job"
            and meta.get("group", "batch") == "batch"
            and isinstance(meta.get("name"), str)
        ):
            entries.append(entry)
    return entries


def _result_entry(status: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    resource_status = status.get("resourceStatus")
    manifests = resource_status.get("manifests") if isinstance(resource_status, Mapping) else None
    for entry in manifests if isinstance(manifests, list) else ():
        meta = entry.get("resourceMeta") if isinstance(entry, Mapping) else None
        if (
            isinstance(meta, Mapping)
            and meta.get("kind") == "ConfigMap"
            and meta.get("group", "") == ""
            and meta.get("name") == name
        ):
            found: Mapping[str, Any] = entry
            return found
    return None


def read_report(work: Mapping[str, Any], *, job_name: str) -> tuple[HubReport | None, str]:
    """What the Job ``job_name`` reported through its result ConfigMap's feedback.

    Returns:
        ``(report, "")``, or ``(None, why)``: no status entry for the result ConfigMap,
        or a value missing or outside the contract (``parse_report`` says which value,
        never what it was: it comes from the cluster).
    """
    name = result_name(job_name)
    status = work.get("status")
    entry = _result_entry(status if isinstance(status, Mapping) else {}, name)
    if entry is None:
        return None, f"no status for the result ConfigMap {name}"
    try:
        return parse_report(feedback_values(entry)), ""
    except ReportError as exc:
        return None, f"result ConfigMap {name}: {exc}"


def interpret_work(work: Mapping[str, Any], *, job_name: str) -> ClusterStatus:
    """Read one ManifestWork's status for the Job ``job_name``, and a succeeded Job's report.

    The state is :func:`job_state`'s; a SUCCEEDED status also carries what the Job
    reported through its result ConfigMap (:func:`read_report`), or why there is no
    report. The report never changes the state: a Job that succeeded and reported
    nothing valid is still done, and its update is rejected for it.
    """
    status = job_state(work, job_name=job_name)
    if status.state is not JobState.SUCCEEDED:
        return status
    report, problem = read_report(work, job_name=job_name)
    return replace(status, report=report, report_problem=problem)


def job_state(work: Mapping[str, Any], *, job_name: str) -> ClusterStatus:
    """Read one ManifestWork's status for the Job ``job_name`` (its state only).

    Args:
        work: a ManifestWork object as the API server returns it (metadata, spec, status).
        job_name: the Job of the round being waited for (``fl-<exp>-r<N>``).

    Returns:
        The cluster's status; the cluster is the work's namespace. In order:
        UNKNOWN while the work is being deleted, has no status from the work agent, or
        its status is for an older generation of the spec or for another Job;
        SUCCEEDED or FAILED when the Job's feedback has a result (counts against the
        Job's ``backoffLimit`` and ``completions``); UNKNOWN when the work or the Job
        could not be applied, or feedback could not be read; FAILED when the Job's
        ``Complete`` condition (from its condition rules) says it finished anyway;
        RUNNING when the agent read the Job and found no result; PENDING otherwise
        (applied, no feedback).
    """
    meta = work.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    cluster = str(meta.get("namespace") or "")
    name = str(meta.get("name") or "")
    status = work.get("status")
    status = status if isinstance(status, Mapping) else {}

    jobs = _job_entries(status)
    entry = next((e for e in jobs if e["resourceMeta"]["name"] == job_name), None)
    seen_job: str | None = job_name if entry is not None else None
    if entry is None and jobs:
        seen_job = str(jobs[0]["resourceMeta"]["name"])

    def unknown(reason: str) -> ClusterStatus:
        return ClusterStatus(cluster, JobState.UNKNOWN, reason, seen_job)

    if meta.get("deletionTimestamp"):
        return unknown(f"ManifestWork {name} is being deleted")
    conditions = _conditions(status.get("conditions"))
    applied = conditions.get("Applied")
    if applied is None:
        return unknown(f"the work agent has not reported on ManifestWork {name} yet")

    generation = meta.get("generation")
    if not isinstance(generation, int) or isinstance(generation, bool):
        return unknown(f"ManifestWork {name} has no metadata.generation")
    for kind in ("Applied", "Available", "Complete"):
        condition = conditions.get(kind)
        if condition is None:
            continue
        observed = condition.get("observedGeneration")
        if not isinstance(observed, int) or isinstance(observed, bool):
            return unknown(
                f"condition {kind} has no observedGeneration: cannot tell whether it is "
                f"about generation {generation}"
            )
        if observed != generation:
            sign = "<" if observed < generation else ">"
            return unknown(f"observedGeneration {observed} {sign} generation {generation}")

    if entry is None:
        if seen_job is not None:
            return unknown(f"status is for job {seen_job}, expected {job_name}")
        if applied.get("status") != "True":
            return unknown(f"not applied: {_describe(applied)}")
        return ClusterStatus(cluster, JobState.PENDING, f"no status for job {job_name} yet", None)

    values = feedback_values(entry)
    backoff_limit, completions = _job_limits(work, job_name)
    result = _result(values, backoff_limit=backoff_limit, completions=completions)
    if result is not None:
        return ClusterStatus(cluster, result, _values_text(values), job_name)
    if applied.get("status") != "True":
        return unknown(f"not applied: {_describe(applied)}")
    job_conditions = _conditions(entry.get("conditions"))
    job_applied = job_conditions.get("Applied")
    if job_applied is not None and job_applied.get("status") != "True":
        return unknown(f"job {job_name} not applied: {_describe(job_applied)}")
    synced = job_conditions.get("StatusFeedbackSynced")
    if synced is None:
        return ClusterStatus(
            cluster, JobState.PENDING, f"job {job_name} applied, no status feedback yet", job_name
        )
    if synced.get("status") != "True":
        return unknown(f"status feedback for job {job_name} failed: {_describe(synced)}")
    complete = job_conditions.get("Complete")
    if (
        complete is not None
        and complete.get("status") == "True"
        and complete.get("observedGeneration", generation) == generation
    ):
        # the conditionRules Complete: finished, and no feedback value says it succeeded
        return ClusterStatus(
            cluster,
            JobState.FAILED,
            f"job {job_name} finished without succeeding: {_describe(complete)}"
            + (f" ({_values_text(values)})" if values else ""),
            job_name,
        )
    reason = "no result yet"
    if values:
        reason += f" ({_values_text(values)})"
    return ClusterStatus(cluster, JobState.RUNNING, reason, job_name)


_GROUPS = ("succeeded", "failed", "running", "pending", "unknown")


@dataclass(frozen=True)
class RoundProgress:
    """A round's clusters grouped by state; each tuple is sorted by cluster name."""

    succeeded: tuple[str, ...] = ()
    failed: tuple[str, ...] = ()
    running: tuple[str, ...] = ()
    pending: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()

    @property
    def total(self) -> int:
        """How many clusters were summarized."""
        return sum(len(getattr(self, name)) for name in _GROUPS)

    @property
    def finished(self) -> int:
        """Clusters whose Job has a result (succeeded or failed)."""
        return len(self.succeeded) + len(self.failed)

    @property
    def counts(self) -> dict[str, int]:
        """``{"succeeded": n, "failed": n, "running": n, "pending": n, "unknown": n}``."""
        return {name: len(getattr(self, name)) for name in _GROUPS}

    def __str__(self) -> str:
        return ", ".join(f"{n} {name}" for name, n in self.counts.items())


def summarize(statuses: Mapping[str, ClusterStatus] | Iterable[ClusterStatus]) -> RoundProgress:
    """Group statuses by state (a ``job_statuses`` result or any iterable of statuses).

    Returns:
        A ``RoundProgress`` whose name lists are sorted.
    """
    items = statuses.values() if isinstance(statuses, Mapping) else statuses
    groups: dict[JobState, list[str]] = {state: [] for state in JobState}
    for status in items:
        groups[status.state].append(status.cluster)
    return RoundProgress(
        succeeded=tuple(sorted(groups[JobState.SUCCEEDED])),
        failed=tuple(sorted(groups[JobState.FAILED])),
        running=tuple(sorted(groups[JobState.RUNNING])),
        pending=tuple(sorted(groups[JobState.PENDING])),
        unknown=tuple(sorted(groups[JobState.UNKNOWN])),
    )
