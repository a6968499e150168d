"""interpret_work and summarize: what a ManifestWork's status means for this round."""

from __future__ import annotations

import pytest

from fl_gitops.hub import ClusterStatus, JobState, RoundProgress, interpret_work, summarize

from .conftest import (
    FAILED,
    RUNNING,
    SUCCEEDED,
    assert_valid,
    integer,
    make_work,
    string,
)
from .manifestwork_cases import CASES

JOB = "fl-digits-fedavg-r3"


def test_fixtures_match_the_manifestwork_crd():
    for work in (
        make_work("c1", values=SUCCEEDED),
        make_work("c2", values=FAILED),
        make_work("c3", values=RUNNING),
        make_work("c4", values=None),
        make_work("c5", values=RUNNING, feedback_synced=None),
        make_work("c6", values=RUNNING, feedback_synced=False),
        make_work("c7", values=None, applied=False),
        make_work("c8", status=False),
    ):
        assert_valid(work)


def test_completed_job_is_succeeded_with_the_values_it_read():
    status = interpret_work(make_work("cluster-001", values=SUCCEEDED), job_name=JOB)
    assert status == ClusterStatus(
        "cluster-001", JobState.SUCCEEDED, "JobComplete=True, JobSucceeded=1, succeeded=1", JOB
    )


def test_failed_pod_is_failed():
    status = interpret_work(make_work("cluster-001", values=FAILED), job_name=JOB)
    assert status == ClusterStatus("cluster-001", JobState.FAILED, "JobFailed=True, failed=1", JOB)


@pytest.mark.parametrize(
    ("values", "state"),
    [
        ([string("JobComplete", "True")], JobState.SUCCEEDED),
        ([integer("JobSucceeded", 1)], JobState.SUCCEEDED),
        ([integer("succeeded", 1)], JobState.SUCCEEDED),
        ([integer("failed", 1)], JobState.FAILED),
        ([string("JobFailed", "True")], JobState.FAILED),
        # the Failed condition decides over a count read a moment earlier
        ([integer("succeeded", 1), string("JobFailed", "True")], JobState.FAILED),
        ([integer("failed", 1), string("JobComplete", "True")], JobState.SUCCEEDED),
        # with backoffLimit 0 one failed pod fails the Job
        ([integer("failed", 1), integer("succeeded", 1)], JobState.FAILED),
        ([string("JobComplete", "False")], JobState.RUNNING),
        ([string("JobFailed", "False")], JobState.RUNNING),
        ([integer("failed", 0), integer("succeeded", 0)], JobState.RUNNING),
    ],
)
def test_each_feedback_value_alone_decides_the_result(values, state):
    work = make_work("cluster-001", values=values)
    assert_valid(work)
    assert interpret_work(work, job_name=JOB).state is state


def test_running_job_without_feedback_values_is_running():
    status = interpret_work(make_work("cluster-001", values=RUNNING), job_name=JOB)
    assert status == ClusterStatus("cluster-001", JobState.RUNNING, "no result yet", JOB)


def test_running_reason_shows_the_values_read_so_far():
    work = make_work("cluster-001", values=[string("JobComplete", "False")])
    assert interpret_work(work, job_name=JOB).reason == "no result yet (JobComplete=False)"


def test_work_applied_without_a_job_entry_is_pending():
    status = interpret_work(make_work("cluster-001", values=None), job_name=JOB)
    assert status == ClusterStatus(
        "cluster-001", JobState.PENDING, f"no status for job {JOB} yet", None
    )


def test_job_applied_before_its_status_is_read_is_pending():
    status = interpret_work(
        make_work("cluster-001", values=RUNNING, feedback_synced=None), job_name=JOB
    )
    assert status == ClusterStatus(
        "cluster-001", JobState.PENDING, f"job {JOB} applied, no status feedback yet", JOB
    )


def test_status_of_the_previous_generation_is_unknown_even_when_it_says_done():
    work = make_work("cluster-001", generation=5, observed=4, values=SUCCEEDED)
    status = interpret_work(work, job_name=JOB)
    assert status == ClusterStatus(
        "cluster-001", JobState.UNKNOWN, "observedGeneration 4 < generation 5", JOB
    )


def test_status_of_the_previous_rounds_job_is_unknown_even_when_it_says_done():
    work = make_work("cluster-001", job="fl-digits-fedavg-r2", values=SUCCEEDED)
    status = interpret_work(work, job_name=JOB)
    assert status == ClusterStatus(
        "cluster-001",
        JobState.UNKNOWN,
        f"status is for job fl-digits-fedavg-r2, expected {JOB}",
        "fl-digits-fedavg-r2",
    )


def test_a_condition_without_observed_generation_cannot_be_trusted():
    status = interpret_work(make_work("cluster-001", observed=None, values=SUCCEEDED), job_name=JOB)
    assert status.state is JobState.UNKNOWN
    assert status.reason == (
        "condition Applied has no observedGeneration: cannot tell whether it is about generation 3"
    )


def test_only_the_available_condition_being_stale_is_enough_to_be_unknown():
    work = make_work("cluster-001", values=SUCCEEDED)
    work["status"]["conditions"][1]["observedGeneration"] = 2
    status = interpret_work(work, job_name=JOB)
    assert (status.state, status.reason) == (
        JobState.UNKNOWN,
        "observedGeneration 2 < generation 3",
    )


def test_work_the_agent_never_reported_on_is_unknown():
    status = interpret_work(make_work("cluster-001", status=False), job_name=JOB)
    assert status == ClusterStatus(
        "cluster-001",
        JobState.UNKNOWN,
        "the work agent has not reported on ManifestWork fl-digits-fedavg yet",
        None,
    )


def test_work_that_failed_to_apply_is_unknown_with_the_agents_reason():
    status = interpret_work(make_work("cluster-001", values=None, applied=False), job_name=JOB)
    assert status == ClusterStatus(
        "cluster-001",
        JobState.UNKNOWN,
        "not applied: Applied=False (AppliedManifestWorkFailed: Failed to apply manifest work)",
        None,
    )


def test_job_that_could_not_be_applied_is_unknown():
    work = make_work("cluster-001", values=RUNNING)
    job_entry = work["status"]["resourceStatus"]["manifests"][1]
    job_entry["conditions"][0].update(
        status="False", reason="AppliedManifestFailed", message='jobs.batch "x" is forbidden'
    )
    assert_valid(work)
    status = interpret_work(work, job_name=JOB)
    assert status.state is JobState.UNKNOWN
    assert status.reason == (
        f'job {JOB} not applied: Applied=False (AppliedManifestFailed: jobs.batch "x" is forbidden)'
    )


def test_feedback_that_failed_to_sync_is_unknown():
    status = interpret_work(
        make_work("cluster-001", values=RUNNING, feedback_synced=False), job_name=JOB
    )
    assert status == ClusterStatus(
        "cluster-001",
        JobState.UNKNOWN,
        f"status feedback for job {JOB} failed: StatusFeedbackSynced=False "
        "(StatusFeedbackSyncFailed: Sync status feedback failed with error boom)",
        JOB,
    )


def test_work_being_deleted_is_unknown():
    work = make_work("cluster-001", values=SUCCEEDED)
    work["metadata"]["deletionTimestamp"] = "2026-11-01T11:00:00Z"
    status = interpret_work(work, job_name=JOB)
    assert (status.state, status.reason) == (
        JobState.UNKNOWN,
        "ManifestWork fl-digits-fedavg is being deleted",
    )


def test_long_condition_messages_are_trimmed_and_tokens_redacted():
    work = make_work("cluster-001", values=None, applied=False)
    work["status"]["conditions"][0]["message"] = "Bearer abc.def.ghi " + "x" * 5000
    reason = interpret_work(work, job_name=JOB).reason
    assert "abc.def" not in reason
    assert reason.startswith("not applied: Applied=False (AppliedManifestWorkFailed: Bearer <re")
    assert reason.endswith("...)")
    assert len(reason) == len("not applied: Applied=False ()") + 300


def test_malformed_feedback_values_are_ignored_not_fatal():
    work = make_work("cluster-001", values=RUNNING)
    work["status"]["resourceStatus"]["manifests"][1]["statusFeedback"] = {
        "values": [
            {"name": "failed", "fieldValue": {"type": "Integer", "integer": "1"}},
            {"name": "succeeded", "fieldValue": {"type": "Integer", "integer": True}},
            {"name": "JobComplete", "fieldValue": {"type": "Boolean", "boolean": True}},
            "junk",
        ]
    }
    status = interpret_work(work, job_name=JOB)
    assert (status.state, status.reason) == (JobState.RUNNING, "no result yet (JobComplete=True)")


def test_summarize_groups_and_sorts_clusters_by_state():
    statuses = {
        "c3": ClusterStatus("c3", JobState.SUCCEEDED, "", JOB),
        "c1": ClusterStatus("c1", JobState.SUCCEEDED, "", JOB),
        "c2": ClusterStatus("c2", JobState.FAILED, "", JOB),
        "c5": ClusterStatus("c5", JobState.RUNNING, "", JOB),
        "c4": ClusterStatus("c4", JobState.PENDING, "", None),
        "c7": ClusterStatus("c7", JobState.UNKNOWN, "", None),
        "c6": ClusterStatus("c6", JobState.UNKNOWN, "", None),
    }
    progress = summarize(statuses)
    assert progress == RoundProgress(
        succeeded=("c1", "c3"),
        failed=("c2",),
        running=("c5",),
        pending=("c4",),
        unknown=("c6", "c7"),
    )
    assert progress.counts == {
        "succeeded": 2,
        "failed": 1,
        "running": 1,
        "pending": 1,
        "unknown": 2,
    }
    assert (progress.total, progress.finished) == (7, 3)
    assert str(progress) == "2 succeeded, 1 failed, 1 running, 1 pending, 2 unknown"
    assert summarize(statuses.values()) == progress
    assert summarize([]) == RoundProgress()


def test_job_state_prints_as_its_value():
    assert str(JobState.SUCCEEDED) == "Succeeded"
    assert JobState("Failed") is JobState.FAILED


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_shared_cases_are_read_as_their_state(case):
    # tests/render/test_health_lua.py holds Argo CD's health check to the same cases
    assert_valid(case.work)
    status = interpret_work(case.work, job_name=case.job_name)
    assert (status.cluster, status.state) == ("cluster-007", case.state)
    assert status.reason


def test_counts_are_read_against_the_jobs_own_backoff_limit():
    work = make_work("cluster-001", values=[integer("failed", 1)])
    job = work["spec"]["workload"]["manifests"][1]
    job["spec"]["backoffLimit"] = 2
    assert interpret_work(work, job_name=JOB) == ClusterStatus(
        "cluster-001", JobState.RUNNING, "no result yet (failed=1)", JOB
    )
    work["status"]["resourceStatus"]["manifests"][1]["statusFeedback"]["values"] = [
        integer("failed", 3)
    ]
    assert interpret_work(work, job_name=JOB).state is JobState.FAILED
    del job["spec"]["backoffLimit"]  # Kubernetes' default: 6
    assert interpret_work(work, job_name=JOB).state is JobState.RUNNING


def test_a_job_the_condition_rules_call_finished_without_success_is_failed():
    work = make_work("cluster-001", values=RUNNING)
    work["status"]["resourceStatus"]["manifests"][1]["conditions"].append(
        {
            "type": "Complete",
            "status": "True",
            "reason": "ConditionRuleEvaluated",
            "message": "Job is finished",
            "lastTransitionTime": "2026-11-01T10:00:00Z",
            "observedGeneration": 3,
        }
    )
    assert_valid(work)
    assert interpret_work(work, job_name=JOB) == ClusterStatus(
        "cluster-001",
        JobState.FAILED,
        f"job {JOB} finished without succeeding: "
        "Complete=True (ConditionRuleEvaluated: Job is finished)",
        JOB,
    )


def test_a_stale_work_level_complete_condition_makes_the_status_unknown():
    work = make_work("cluster-001", values=SUCCEEDED)
    work["status"]["conditions"].append(
        {
            "type": "Complete",
            "status": "True",
            "reason": "ConditionRulesAggregated",
            "message": "Job is finished",
            "lastTransitionTime": "2026-11-01T10:00:00Z",
            "observedGeneration": 2,
        }
    )
    status = interpret_work(work, job_name=JOB)
    assert (status.state, status.reason) == (
        JobState.UNKNOWN,
        "observedGeneration 2 < generation 3",
    )
