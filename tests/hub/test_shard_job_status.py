"""How far a round's shards have got, read from their Indexed Job's status.

The statuses are the shapes Kubernetes' Job controller writes for an Indexed Job (1.29 and
newer: ``completedIndexes``, ``failedIndexes``, the ``FailureTarget`` condition before
``Failed``). The real API server these tests run against elsewhere is 1.20, which drops
``completedIndexes`` and ``failedIndexes`` from a Job's status (it has no Indexed Jobs) and
has no Job controller here, so the readings are tested on the documented shapes; the
fields 1.20 does keep are read back from the real server in tests/apiserver/test_shard_job.py.
"""

from __future__ import annotations

import copy

import pytest

from fl_gitops.hub import ShardJobSpec, ShardJobState
from fl_gitops.hub._jobstatus import is_same_job, parse_indexes, shard_job_state
from fl_gitops.render import SHARD_CONTAINER, shard_job_manifest

T = "2026-12-02T04:00:00Z"


def _job(**status: object) -> dict[str, object]:
    return {"apiVersion": "batch/v1", "kind": "Job", "status": status}


def _cond(kind: str, reason: str, message: str = "", status: str = "True") -> dict[str, str]:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastProbeTime": T,
        "lastTransitionTime": T,
    }


@pytest.mark.parametrize(
    ("text", "count", "expected"),
    [
        ("0-2,4", 6, {0, 1, 2, 4}),
        ("3", 4, {3}),
        ("", 4, set()),
        (None, 4, set()),
        ("0-1,x,7-99999999", 8, {0, 1, 7}),  # a garbled part does not hide the others
        ("2-9", 4, {2, 3}),  # beyond the Job's completions: not its indexes
        ("3-1", 4, set()),
        (42, 4, set()),
    ],
)
def test_completed_indexes_are_read_as_the_controller_writes_them(text, count, expected):
    assert parse_indexes(text, count) == frozenset(expected)


def test_a_running_job_has_its_shards_active_and_none_done():
    job = _job(active=3, ready=3, startTime=T, uncountedTerminatedPods={})

    assert shard_job_state(job, 3) == ShardJobState(exists=True, active=3)


def test_finished_shards_are_known_by_index_while_the_others_run():
    job = _job(active=2, succeeded=4, completedIndexes="0-2,4", startTime=T)

    assert shard_job_state(job, 6) == ShardJobState(
        exists=True, succeeded=frozenset({0, 1, 2, 4}), active=2
    )


def test_a_complete_job_has_every_index_done():
    job = _job(
        succeeded=4,
        completedIndexes="0-3",
        conditions=[_cond("SuccessCriteriaMet", "CompletionsReached"), _cond("Complete", "")],
    )

    assert shard_job_state(job, 4) == ShardJobState(
        exists=True, succeeded=frozenset(range(4)), complete=True
    )


def test_a_complete_job_on_a_hub_that_writes_no_indexes_has_every_index_done():
    job = _job(succeeded=3, conditions=[_cond("Complete", "")])

    assert shard_job_state(job, 3).succeeded == frozenset({0, 1, 2})


def test_a_shard_out_of_retries_fails_the_job_with_the_controllers_reason():
    job = _job(
        active=0,
        failed=3,
        succeeded=2,
        completedIndexes="0,2",
        failedIndexes="1",
        conditions=[
            _cond("FailureTarget", "MaxFailedIndexesExceeded", "Job has exceeded the ..."),
            _cond(
                "Failed",
                "MaxFailedIndexesExceeded",
                "Job has exceeded the specified maximum number of failed indexes",
            ),
        ],
    )

    assert shard_job_state(job, 3) == ShardJobState(
        exists=True,
        succeeded=frozenset({0, 2}),
        failed_indexes=frozenset({1}),
        failed=True,
        reason="MaxFailedIndexesExceeded: Job has exceeded the specified maximum number of "
        "failed indexes",
    )


def test_a_job_past_its_deadline_is_failed_as_soon_as_the_controller_decides_it():
    target = _cond("FailureTarget", "DeadlineExceeded", "Job was active longer than specified")
    state = shard_job_state(_job(active=2, conditions=[target]), 2)

    assert (state.failed, state.complete) == (True, False)
    assert state.reason == "DeadlineExceeded: Job was active longer than specified"


def test_a_condition_that_is_not_true_is_not_read_as_one():
    job = _job(active=1, conditions=[_cond("Failed", "X", status="False")])

    assert shard_job_state(job, 2) == ShardJobState(exists=True, active=1)


def test_a_failure_reason_is_trimmed_to_one_short_line():
    message = "token=s3cr3t " + "x" * 1000 + "\nsecond line"
    state = shard_job_state(_job(conditions=[_cond("Failed", "PodFailurePolicy", message)]), 2)

    assert state.reason.startswith("PodFailurePolicy: token=<redacted> xxx")
    assert len(state.reason) <= 220 and "\n" not in state.reason and state.reason.endswith("...")


# -- whose Job is it -----------------------------------------------------------------------

SPEC = ShardJobSpec(
    namespace="fl-system",
    name="exp-agg-r2-0123abcd",
    experiment="exp",
    round=2,
    shards=2,
    image="img:1",
    args=("aggregate", "--shard", "auto/2", "--inputs-digest", "sha256:0123abcd"),
    service_account="exp-aggregate",
    active_deadline_seconds=600,
    backoff_limit_per_index=1,
)
MANIFEST = shard_job_manifest(SPEC, server_version=(1, 30))


def _as_served(manifest: dict) -> dict:
    """The Job as the API server returns it: defaults filled, the controller's labels added."""
    served = copy.deepcopy(manifest)
    served["metadata"]["labels"]["batch.kubernetes.io/job-name"] = SPEC.name
    pod = served["spec"]["template"]
    pod["metadata"]["labels"]["controller-uid"] = "1234"
    pod["spec"]["containers"][0]["imagePullPolicy"] = "IfNotPresent"
    served["spec"].pop("podFailurePolicy")  # an older hub drops what it does not know
    return served


def test_the_job_made_from_the_spec_is_recognised_as_served():
    assert is_same_job(_as_served(MANIFEST), MANIFEST, SHARD_CONTAINER)


@pytest.mark.parametrize(
    "change",
    [
        lambda job: job["metadata"]["labels"].pop("fl-gitops.io/round"),
        lambda job: job["metadata"]["labels"].update({"fl-gitops.io/experiment": "other"}),
        lambda job: job["metadata"].pop("labels"),
        lambda job: job["spec"]["template"]["spec"]["containers"][0]["args"].append("--x"),
        lambda job: job["spec"]["template"]["spec"]["containers"][0].update(image="evil:1"),
        lambda job: job["spec"]["template"]["spec"]["containers"][0].update(name="main"),
        lambda job: job["spec"].pop("template"),
    ],
    ids=["round", "experiment", "no-labels", "args", "image", "container", "no-template"],
)
def test_a_job_with_other_labels_or_arguments_is_not_ours(change):
    other = _as_served(MANIFEST)
    change(other)

    assert not is_same_job(other, MANIFEST, SHARD_CONTAINER)
