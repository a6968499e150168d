"""The result ConfigMap's feedback: what a succeeded Job reported through the hub.

Rendered works on a ``LocalHub``: the agent evaluates the work's own JSONPaths rules over
the ConfigMap's data as the Job left it, and ``interpret_work`` parses it strictly, saying
which value was wrong and never what it was.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fl_gitops.hub import JobState, LocalHub, interpret_work
from fl_gitops.reports import HubReport, report_data

from .conftest import assert_valid

EXP = "digits-fedavg"
WORK = "fl-digits-fedavg"
R1 = "fl-digits-fedavg-r1"
RESULT = f"{R1}-result"
DIGEST = "sha256:" + "ab" * 32
EVIL = "EVIL-BYTES-\u202e-from-the-cluster"

BAD_DIGEST = "digest: expected blake3-blocks:, blake3: or sha256: and 64 lowercase hex"


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


@pytest.fixture
def hub(render_round):
    hub = LocalHub(clock=Clock())
    hub.apply_works(render_round(1))
    return hub


def _cluster(hub: LocalHub) -> str:
    return hub.list_works(experiment=EXP)[0]["metadata"]["namespace"]


def _status(hub: LocalHub, cluster: str):
    return hub.job_statuses(work_name=WORK, job_name=R1, clusters=[cluster], experiment=EXP)[
        cluster
    ]


def test_a_succeeded_job_carries_the_report_its_result_configmap_gave(hub):
    cluster = _cluster(hub)
    data = report_data(DIGEST, 250, {"train_accuracy": 0.875, "train_loss": 0.25})
    hub.report_job(cluster, WORK, job_name=R1, succeeded=True, result=data)
    status = _status(hub, cluster)
    assert status.state is JobState.SUCCEEDED
    assert status.report == HubReport(DIGEST, 250, {"train_accuracy": 0.875, "train_loss": 0.25})
    assert status.report_problem == ""
    work = hub.get_work(cluster, WORK)
    assert_valid(work)
    (entry,) = [
        m
        for m in work["status"]["resourceStatus"]["manifests"]
        if m["resourceMeta"]["name"] == RESULT
    ]
    # scalar String feedback, one per key, in the rule's order: no feature gate needed
    assert entry["statusFeedback"]["values"] == [
        {"name": key, "fieldValue": {"type": "String", "string": data[key]}}
        for key in ("digest", "numExamples", "metrics")
    ]


def test_a_succeeded_job_that_reported_nothing_has_no_report_and_says_why(hub):
    cluster = _cluster(hub)
    hub.report_job(cluster, WORK, job_name=R1, succeeded=True)
    status = _status(hub, cluster)
    assert (status.state, status.report) == (JobState.SUCCEEDED, None)
    assert status.report_problem == f"result ConfigMap {RESULT}: digest: not reported"


def test_a_job_without_a_result_yet_is_not_asked_for_a_report(hub):
    cluster = _cluster(hub)
    hub.report_job(cluster, WORK, job_name=R1, succeeded=None)
    status = _status(hub, cluster)
    assert (status.state, status.report, status.report_problem) == (JobState.RUNNING, None, "")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"digest": EVIL}, BAD_DIGEST),
        ({"digest": "sha256:" + "AB" * 32}, BAD_DIGEST),
        ({"numExamples": EVIL}, "numExamples: expected an integer from 0 to 2^53 - 1"),
        ({"numExamples": str(2**53)}, "numExamples: expected an integer from 0 to 2^53 - 1"),
        ({"numExamples": "-1"}, "numExamples: expected an integer from 0 to 2^53 - 1"),
        ({"metrics": EVIL}, "metrics: not a JSON object"),
        ({"metrics": '{"loss": NaN}'}, "metrics: not a JSON object"),
        ({"metrics": '{"loss": 1e300}'}, "metrics.loss: expected a finite number within ±1e15"),
        ({"metrics": '{"' + EVIL + '": 1}'}, "metrics: a metric name is not [a-z][a-z0-9_]{0,31}"),
        ({"metrics": '{"loss": "' + EVIL + '"}'}, "metrics.loss: expected a number"),
    ],
)
def test_a_bad_report_is_no_report_naming_the_value_never_its_bytes(hub, change, problem):
    cluster = _cluster(hub)
    data = {**report_data(DIGEST, 10, {"loss": 0.5}), **change}
    hub.report_job(cluster, WORK, job_name=R1, succeeded=True, result=data)
    status = _status(hub, cluster)
    assert (status.state, status.report) == (JobState.SUCCEEDED, None)
    assert status.report_problem == f"result ConfigMap {RESULT}: {problem}"
    assert "EVIL" not in status.report_problem + status.reason


def test_a_report_for_another_rounds_job_is_not_this_rounds(hub):
    cluster = _cluster(hub)
    hub.report_job(cluster, WORK, job_name=R1, succeeded=True, result=report_data(DIGEST, 10, {}))
    work = hub.get_work(cluster, WORK)
    # read as round 1's retry (attempt 2): its Job and its result ConfigMap are not these
    status = interpret_work(work, job_name=f"{R1}-a2")
    assert status.state is JobState.UNKNOWN
    assert status.report is None


def test_kubernetes_hub_reads_the_same_reports(api_server, api_client, hub):
    from fl_gitops.hub import KubernetesHub

    from .conftest import WORKS_PATH

    clusters = [w["metadata"]["namespace"] for w in hub.list_works(experiment=EXP)][:3]
    good = report_data(DIGEST, 7, {"train_loss": 0.125})
    hub.report_job(clusters[0], WORK, job_name=R1, succeeded=True, result=good)
    hub.report_job(clusters[1], WORK, job_name=R1, succeeded=True)
    hub.report_job(clusters[2], WORK, job_name=R1, succeeded=True, result={**good, "digest": ""})
    api_server.add_list(WORKS_PATH, hub.list_works())
    statuses = KubernetesHub(api_client).job_statuses(
        work_name=WORK, job_name=R1, clusters=clusters, experiment=EXP
    )
    local = hub.job_statuses(work_name=WORK, job_name=R1, clusters=clusters, experiment=EXP)
    assert statuses == local
    assert [(s.report, s.report_problem) for s in statuses.values()] == [
        (HubReport(DIGEST, 7, {"train_loss": 0.125}), ""),
        (None, f"result ConfigMap {RESULT}: digest: not reported"),
        (None, f"result ConfigMap {RESULT}: {BAD_DIGEST}"),
    ]
