"""One set of ManifestWork objects that both readers of a work's status are tested on.

Two programs read a ManifestWork's status: the reconcile job, through ``interpret_work``
(a ``JobState`` it decides the round on), and Argo CD, through the Lua health check
(``fl_gitops/render/health/manifestwork.lua``, what a person sees). If they drift apart,
Argo CD shows a round as Healthy that the reconcile job waits on, or the reverse. So
each case here names the state and the health it must give, and
``tests/render/test_health_lua.py`` feeds every case to both. ``ARGO_HEALTH`` is the
agreement: a Job's result maps to one health; ``Unknown`` is Progressing while the
status is only not there yet (stale, not reported, being deleted) and Degraded when
something is broken (not applied, feedback that cannot be read).

The objects have the rendered shape (the manifestConfigs of ``manifestwork.yaml.j2``,
the Namespace, ConfigMap and Job) and the work agent's status shapes; some statuses are
written by ``LocalHub``'s agent itself. Every object validates against the CRD.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fl_gitops.hub import JobState, LocalHub

__all__ = ["ARGO_HEALTH", "CASES", "JOB", "Case"]

JOB = "fl-digits-fedavg-r3"
PREVIOUS_JOB = "fl-digits-fedavg-r2"
NEXT_JOB = "fl-digits-fedavg-r4"
WORK = "fl-digits-fedavg"
CLUSTER = "cluster-007"
NAMESPACE = "fl-gitops"
T0 = "2026-03-01T10:00:00Z"

#: The Argo CD health each interpret_work state may be shown as.
ARGO_HEALTH: dict[JobState, frozenset[str]] = {
    JobState.SUCCEEDED: frozenset({"Healthy"}),
    JobState.FAILED: frozenset({"Degraded"}),
    JobState.RUNNING: frozenset({"Progressing"}),
    JobState.PENDING: frozenset({"Progressing"}),
    JobState.UNKNOWN: frozenset({"Progressing", "Degraded"}),
}


@dataclass(frozen=True)
class Case:
    """A work, and what interpret_work (for ``JOB``) and the Lua check must make of it."""

    name: str
    work: dict[str, Any]
    state: JobState
    health: str
    job_name: str = JOB  # the round's Job the reconcile job asks about (the spec's)


def _job(name: str = JOB, backoff_limit: int | None = 0) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "template": {
            "metadata": {"labels": {"fl-gitops.io/round": "3"}},
            "spec": {
                "restartPolicy": "Never",
                "containers": [{"name": "client", "image": "ghcr.io/example/fl-gitops:0.1.0"}],
            },
        }
    }
    if backoff_limit is not None:
        spec["backoffLimit"] = backoff_limit
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": spec,
    }


def _ssa(group: str, resource: str, name: str, namespace: str | None) -> dict[str, Any]:
    ident = {"group": group, "resource": resource, "name": name}
    if namespace is not None:
        ident["namespace"] = namespace
    return {"resourceIdentifier": ident, "updateStrategy": {"type": "ServerSideApply"}}


def base_work(*, backoff_limit: int | None = 0, generation: int = 2) -> dict[str, Any]:
    """A rendered round-3 ManifestWork without status (the manifestConfigs as rendered)."""
    job_config = _ssa("batch", "jobs", JOB, NAMESPACE)
    job_config["conditionRules"] = [{"type": "WellKnownConditions", "condition": "Complete"}]
    job_config["feedbackRules"] = [
        {"type": "WellKnownStatus"},
        {
            "type": "JSONPaths",
            "jsonPaths": [
                {"name": "failed", "path": ".status.failed"},
                {"name": "succeeded", "path": ".status.succeeded"},
                {"name": "JobFailed", "path": '.status.conditions[?(@.type=="Failed")].status'},
            ],
        },
    ]
    return {
        "apiVersion": "work.open-cluster-management.io/v1",
        "kind": "ManifestWork",
        "metadata": {
            "name": WORK,
            "namespace": CLUSTER,
            "generation": generation,
            "labels": {"fl-gitops.io/experiment": "digits-fedavg", "fl-gitops.io/round": "3"},
        },
        "spec": {
            "manifestConfigs": [
                job_config,
                _ssa("", "namespaces", NAMESPACE, None),
                _ssa("", "configmaps", JOB, NAMESPACE),
            ],
            "workload": {
                "manifests": [
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {"name": JOB, "namespace": NAMESPACE},
                        "data": {"round.json": "{}\n"},
                    },
                    _job(backoff_limit=backoff_limit),
                ]
            },
        },
    }


def condition(
    type_: str, status: str, reason: str, message: str, generation: int | None = 2
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": T0,
    }
    if generation is not None:
        out["observedGeneration"] = generation
    return out


APPLIED = condition(
    "Applied", "True", "AppliedManifestWorkComplete", "Apply manifest work complete"
)
NOT_APPLIED = condition(
    "Applied", "False", "AppliedManifestWorkFailed", "Failed to apply manifest work"
)
AVAILABLE = condition("Available", "True", "ResourcesAvailable", "All resources are available")
ENTRY_APPLIED = condition("Applied", "True", "AppliedManifestComplete", "Apply manifest complete")
ENTRY_AVAILABLE = condition("Available", "True", "ResourceAvailable", "Resource is available")
SYNCED = condition("StatusFeedbackSynced", "True", "StatusFeedbackSynced", "")
FINISHED = condition("Complete", "True", "ConditionRuleEvaluated", "Job is finished")
NOT_FINISHED = condition("Complete", "False", "ConditionRuleEvaluated", "Job is not finished")


def integer(name: str, value: int) -> dict[str, Any]:
    return {"name": name, "fieldValue": {"type": "Integer", "integer": value}}


def string(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "fieldValue": {"type": "String", "string": value}}


def job_entry(
    values: Sequence[dict[str, Any]] = (),
    conditions: list[dict[str, Any]] | None = None,
    name: str = JOB,
) -> dict[str, Any]:
    """The Job's ``resourceStatus.manifests`` entry; default conditions: applied, synced."""
    return {
        "resourceMeta": {
            "ordinal": 2,
            "group": "batch",
            "version": "v1",
            "kind": "Job",
            "resource": "jobs",
            "name": name,
            "namespace": NAMESPACE,
        },
        "conditions": (
            [ENTRY_APPLIED, ENTRY_AVAILABLE, SYNCED] if conditions is None else conditions
        ),
        "statusFeedback": {"values": list(values)} if values else {},
    }


def with_status(
    conditions: list[dict[str, Any]],
    entries: list[dict[str, Any]] | None = None,
    **work_args: Any,
) -> dict[str, Any]:
    work = base_work(**work_args)
    work["status"] = {"conditions": copy.deepcopy(conditions)}
    if entries is not None:
        work["status"]["resourceStatus"] = {"manifests": copy.deepcopy(entries)}
    return work


SUCCESS = [string("JobComplete", "True"), integer("JobSucceeded", 1), integer("succeeded", 1)]
FAILURE = [integer("failed", 1), string("JobFailed", "True")]
DONE = [
    APPLIED,
    AVAILABLE,
    condition("Complete", "True", "ConditionRulesAggregated", "Job is finished"),
]
ONGOING = [
    APPLIED,
    AVAILABLE,
    condition("Complete", "False", "ConditionRulesAggregated", "Job is not finished"),
]


class _Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def _local(report: str, work: dict[str, Any] | None = None) -> dict[str, Any]:
    """The base work as LocalHub's agent leaves it after ``report``."""
    hub = LocalHub(clock=_Clock())
    work = work or base_work()
    hub.apply_works([work])
    if report == "applied":
        hub.report_applied(CLUSTER, WORK)
    else:
        succeeded = {"running": None, "succeeded": True, "failed": False}[report]
        hub.report_job(CLUSTER, WORK, job_name=JOB, succeeded=succeeded)
    return hub.get_work(CLUSTER, WORK)


def _next_round_not_seen_yet() -> dict[str, Any]:
    """Round 3's status after round 4's spec is applied, before the agent saw it."""
    done = _local("succeeded")
    later = copy.deepcopy(done)
    later["metadata"]["generation"] = 2
    for named in (
        later["spec"]["workload"]["manifests"][1]["metadata"],
        later["spec"]["workload"]["manifests"][2]["metadata"],
        later["spec"]["manifestConfigs"][0]["resourceIdentifier"],
        later["spec"]["manifestConfigs"][2]["resourceIdentifier"],
    ):
        named["name"] = NEXT_JOB
    return later


def _unreadable_feedback() -> dict[str, Any]:
    work = base_work()
    work["spec"]["manifestConfigs"][0]["feedbackRules"][1]["jsonPaths"].append(
        {"name": "everything", "path": ".status"}
    )
    return _local("running", work)


def _deleting() -> dict[str, Any]:
    work = with_status(
        DONE, [job_entry(SUCCESS, [ENTRY_APPLIED, ENTRY_AVAILABLE, SYNCED, FINISHED])]
    )
    work["metadata"]["deletionTimestamp"] = "2026-03-01T11:00:00Z"
    return work


def _cases() -> list[Case]:
    unknown, pending, running = JobState.UNKNOWN, JobState.PENDING, JobState.RUNNING
    succeeded, failed = JobState.SUCCEEDED, JobState.FAILED
    prog, healthy, degraded = "Progressing", "Healthy", "Degraded"
    finished_entry = [ENTRY_APPLIED, ENTRY_AVAILABLE, SYNCED, FINISHED]
    running_entry = [ENTRY_APPLIED, ENTRY_AVAILABLE, SYNCED, NOT_FINISHED]
    old = [condition(c["type"], c["status"], c["reason"], c["message"], 1) for c in DONE]
    not_synced = condition(
        "StatusFeedbackSynced",
        "False",
        "StatusFeedbackSyncFailed",
        "Sync status feedback failed with error boom",
    )
    entry_not_applied = condition(
        "Applied", "False", "AppliedManifestFailed", 'jobs.batch "x" is forbidden'
    )
    return [
        # -- no status about the current spec yet: Unknown, Progressing
        Case("no status", base_work(), unknown, prog),
        Case("no conditions", with_status([]), unknown, prog),
        Case(
            "still applying",
            with_status([condition("Progressing", "True", "Applying", "Applying manifests")]),
            unknown,
            prog,
        ),
        Case("being deleted, though its Job succeeded", _deleting(), unknown, prog),
        Case(
            "status of an older generation, saying succeeded",
            with_status(old, [job_entry(SUCCESS, finished_entry)]),
            unknown,
            prog,
        ),
        Case(
            "an observedGeneration newer than the generation",
            with_status(
                [condition(c["type"], c["status"], c["reason"], c["message"], 3) for c in DONE],
                [job_entry(SUCCESS, finished_entry)],
            ),
            unknown,
            prog,
        ),
        Case(
            "Applied without an observedGeneration",
            with_status(
                [condition("Applied", "True", "AppliedManifestWorkComplete", "done", None)],
                [job_entry(SUCCESS)],
            ),
            unknown,
            prog,
        ),
        Case(
            "an older generation's failure to apply",
            with_status([condition("Applied", "False", "AppliedManifestWorkFailed", "Failed", 1)]),
            unknown,
            prog,
        ),
        Case(
            "only the previous round's Job, done",
            with_status(DONE, [job_entry(SUCCESS, finished_entry, name=PREVIOUS_JOB)]),
            unknown,
            prog,
        ),
        Case(
            "round 4's spec, not seen by the agent yet",
            _next_round_not_seen_yet(),
            unknown,
            prog,
            job_name=NEXT_JOB,
        ),
        # -- something is broken: Unknown, Degraded
        Case("not applied", with_status([NOT_APPLIED]), unknown, degraded),
        Case(
            "not applied, the Job's entry neither",
            with_status(
                [NOT_APPLIED], [job_entry(conditions=[entry_not_applied, ENTRY_AVAILABLE])]
            ),
            unknown,
            degraded,
        ),
        Case(
            "the Job's entry not applied",
            with_status(
                [APPLIED, AVAILABLE], [job_entry(conditions=[entry_not_applied, ENTRY_AVAILABLE])]
            ),
            unknown,
            degraded,
        ),
        Case(
            "status feedback that failed",
            with_status(
                ONGOING, [job_entry(conditions=[ENTRY_APPLIED, ENTRY_AVAILABLE, not_synced])]
            ),
            unknown,
            degraded,
        ),
        Case(
            "status feedback that failed, for a finished Job",
            with_status(
                DONE,
                [job_entry(conditions=[ENTRY_APPLIED, ENTRY_AVAILABLE, not_synced, FINISHED])],
            ),
            unknown,
            degraded,
        ),
        Case(
            "local agent: a feedback rule it cannot read", _unreadable_feedback(), unknown, degraded
        ),
        # -- applied, no result: Pending or Running, Progressing
        Case("applied, no entry for the Job yet", with_status([APPLIED, AVAILABLE]), pending, prog),
        Case(
            "the Job applied, its status not read yet",
            with_status([APPLIED], [job_entry(conditions=[ENTRY_APPLIED])]),
            pending,
            prog,
        ),
        Case("local agent: applied", _local("applied"), pending, prog),
        Case("running", with_status(ONGOING, [job_entry(conditions=running_entry)]), running, prog),
        Case("local agent: running", _local("running"), running, prog),
        Case(
            "a failed pod within backoffLimit 2",
            with_status(
                ONGOING, [job_entry([integer("failed", 1)], running_entry)], backoff_limit=2
            ),
            running,
            prog,
        ),
        Case(
            "6 failed pods, the default backoffLimit",
            with_status(ONGOING, [job_entry([integer("failed", 6)])], backoff_limit=None),
            running,
            prog,
        ),
        Case(
            "JobComplete=False",
            with_status(ONGOING, [job_entry([string("JobComplete", "False")])]),
            running,
            prog,
        ),
        Case(
            "a Complete condition of an older generation on the entry",
            with_status(
                ONGOING,
                [
                    job_entry(
                        conditions=[
                            ENTRY_APPLIED,
                            ENTRY_AVAILABLE,
                            SYNCED,
                            condition("Complete", "True", "ConditionRuleEvaluated", "done", 1),
                        ]
                    )
                ],
                backoff_limit=3,
            ),
            running,
            prog,
        ),
        # -- a result: Succeeded / Healthy, Failed / Degraded
        Case(
            "succeeded", with_status(DONE, [job_entry(SUCCESS, finished_entry)]), succeeded, healthy
        ),
        Case("local agent: succeeded", _local("succeeded"), succeeded, healthy),
        Case(
            "JobComplete alone",
            with_status(ONGOING, [job_entry([string("JobComplete", "True")])]),
            succeeded,
            healthy,
        ),
        Case(
            "the succeeded count before the Complete condition",
            with_status(
                ONGOING, [job_entry([integer("JobSucceeded", 1), integer("succeeded", 1)])]
            ),
            succeeded,
            healthy,
        ),
        Case(
            "success after a retry",
            with_status(
                DONE,
                [job_entry([string("JobComplete", "True"), integer("failed", 1)], finished_entry)],
                backoff_limit=2,
            ),
            succeeded,
            healthy,
        ),
        Case(
            "the current Job succeeded, the previous one failed",
            with_status(
                DONE,
                [
                    job_entry(FAILURE, finished_entry, name=PREVIOUS_JOB),
                    job_entry(SUCCESS, finished_entry),
                ],
            ),
            succeeded,
            healthy,
        ),
        Case(
            "succeeded, though the work is not applied now",
            with_status([NOT_APPLIED, AVAILABLE], [job_entry(SUCCESS, finished_entry)]),
            succeeded,
            healthy,
        ),
        Case("failed", with_status(DONE, [job_entry(FAILURE, finished_entry)]), failed, degraded),
        Case("local agent: failed", _local("failed"), failed, degraded),
        Case(
            "one failed pod, backoffLimit 0",
            with_status(ONGOING, [job_entry([integer("failed", 1)])]),
            failed,
            degraded,
        ),
        Case(
            "7 failed pods, the default backoffLimit",
            with_status(ONGOING, [job_entry([integer("failed", 7)])], backoff_limit=None),
            failed,
            degraded,
        ),
        Case(
            "JobFailed within the backoffLimit",
            with_status(
                DONE, [job_entry([string("JobFailed", "True")], finished_entry)], backoff_limit=3
            ),
            failed,
            degraded,
        ),
        Case(
            "JobFailed beside a succeeded count",
            with_status(DONE, [job_entry([integer("succeeded", 1), string("JobFailed", "True")])]),
            failed,
            degraded,
        ),
        Case(
            "failed and succeeded counts, backoffLimit 0",
            with_status(ONGOING, [job_entry([integer("failed", 1), integer("succeeded", 1)])]),
            failed,
            degraded,
        ),
        Case(
            "finished without succeeding (the Complete rule only)",
            with_status(DONE, [job_entry(conditions=finished_entry)], backoff_limit=3),
            failed,
            degraded,
        ),
    ]


CASES: tuple[Case, ...] = tuple(_cases())
