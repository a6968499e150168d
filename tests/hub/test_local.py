"""LocalHub: the API server's generation rules, the work agent's status, the state file."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta

import pytest

from fl_gitops.hub import (
    ClusterStatus,
    HubError,
    HubNotFound,
    JobState,
    KubernetesHub,
    LocalHub,
    summarize,
)

from .conftest import WORKS_PATH, assert_valid

EXP = "digits-fedavg"
WORK = "fl-digits-fedavg"
R1 = "fl-digits-fedavg-r1"
R2 = "fl-digits-fedavg-r2"


class Clock:
    """A clock that moves one minute each time it is read."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


@pytest.fixture
def round1(render_round):
    return render_round(1)


@pytest.fixture
def hub(round1):
    hub = LocalHub(clock=Clock())
    hub.apply_works(round1)
    return hub


def _clusters(works):
    return [w["metadata"]["namespace"] for w in works]


def _statuses(hub, job, clusters):
    return hub.job_statuses(work_name=WORK, job_name=job, clusters=clusters, experiment=EXP)


def test_new_works_start_at_generation_one_and_are_unknown_until_the_agent_reports(round1):
    hub = LocalHub(clock=Clock())
    changed = hub.apply_works(round1)
    clusters = _clusters(round1)
    assert changed == [(c, WORK) for c in clusters]
    work = hub.get_work(clusters[0], WORK)
    assert work["metadata"]["generation"] == 1
    assert "status" not in work
    assert_valid(work)
    status = _statuses(hub, R1, clusters)[clusters[0]]
    assert status == ClusterStatus(
        clusters[0],
        JobState.UNKNOWN,
        "the work agent has not reported on ManifestWork fl-digits-fedavg yet",
        None,
    )


def test_agent_reports_move_a_job_from_pending_to_running_to_a_result(hub, round1):
    a, b, c, d = _clusters(round1)[:4]
    hub.report_applied(a, WORK)
    hub.report_applied(b, WORK)
    hub.report_job(b, WORK, job_name=R1, succeeded=None)
    hub.report_job(c, WORK, job_name=R1, succeeded=True)
    hub.report_job(d, WORK, job_name=R1, succeeded=False)

    statuses = _statuses(hub, R1, [a, b, c, d])
    assert statuses == {
        a: ClusterStatus(a, JobState.PENDING, f"job {R1} applied, no status feedback yet", R1),
        b: ClusterStatus(b, JobState.RUNNING, "no result yet", R1),
        c: ClusterStatus(
            c, JobState.SUCCEEDED, "JobComplete=True, JobSucceeded=1, succeeded=1", R1
        ),
        d: ClusterStatus(d, JobState.FAILED, "JobFailed=True, failed=1", R1),
    }
    for cluster in (a, b, c, d):
        assert_valid(hub.get_work(cluster, WORK))


def test_feedback_is_written_in_the_agents_shapes(hub, round1):
    cluster = _clusters(round1)[0]
    hub.report_job(cluster, WORK, job_name=R1, succeeded=True)
    status = hub.get_work(cluster, WORK)["status"]
    assert [(c["type"], c["status"], c["observedGeneration"]) for c in status["conditions"]] == [
        ("Applied", "True", 1),
        ("Available", "True", 1),
        ("Complete", "True", 1),
    ]
    # the work-level Complete aggregates the Job's own (OCM: ConditionRulesAggregated,
    # with the one manifest condition's message)
    assert {k: status["conditions"][2][k] for k in ("reason", "message")} == {
        "reason": "ConditionRulesAggregated",
        "message": "Job is finished",
    }
    manifests = status["resourceStatus"]["manifests"]
    assert [(m["resourceMeta"]["kind"], m["resourceMeta"]["ordinal"]) for m in manifests] == [
        ("Namespace", 0),
        ("ConfigMap", 1),
        ("Job", 2),
        ("ConfigMap", 3),  # the result ConfigMap, the ServiceAccount and the Role that
        ("ServiceAccount", 4),  # let the Job write it, and its binding
        ("Role", 5),
        ("RoleBinding", 6),
    ]
    job = manifests[2]
    assert job["resourceMeta"] == {
        "ordinal": 2,
        "group": "batch",
        "version": "v1",
        "kind": "Job",
        "resource": "jobs",
        "name": R1,
        "namespace": "fl-gitops",
    }
    assert job["statusFeedback"] == {
        "values": [
            {"name": "JobComplete", "fieldValue": {"type": "String", "string": "True"}},
            {"name": "JobSucceeded", "fieldValue": {"type": "Integer", "integer": 1}},
            {"name": "succeeded", "fieldValue": {"type": "Integer", "integer": 1}},
        ]
    }
    assert [(c["type"], c["reason"]) for c in job["conditions"]] == [
        ("Applied", "AppliedManifestComplete"),
        ("Available", "ResourceAvailable"),
        ("StatusFeedbackSynced", "StatusFeedbackSynced"),
        ("Complete", "ConditionRuleEvaluated"),
    ]
    complete = job["conditions"][3]
    assert (complete["status"], complete["message"], complete["observedGeneration"]) == (
        "True",
        "Job is finished",
        1,
    )
    namespace = manifests[0]
    assert "namespace" not in namespace["resourceMeta"]
    assert namespace["statusFeedback"] == {}
    assert namespace["conditions"][2]["reason"] == "NoStatusFeedbackSynced"


def test_a_failed_job_gives_only_the_values_its_paths_find(hub, round1):
    cluster = _clusters(round1)[0]
    hub.report_job(cluster, WORK, job_name=R1, succeeded=False)
    job = hub.get_work(cluster, WORK)["status"]["resourceStatus"]["manifests"][2]
    # no Complete condition and no succeeded count: the agent leaves both out
    assert job["statusFeedback"]["values"] == [
        {"name": "failed", "fieldValue": {"type": "Integer", "integer": 1}},
        {"name": "JobFailed", "fieldValue": {"type": "String", "string": "True"}},
    ]


def test_reapplying_the_same_works_changes_nothing(hub, round1):
    cluster = _clusters(round1)[0]
    hub.report_job(cluster, WORK, job_name=R1, succeeded=True)
    before = hub.get_work(cluster, WORK)
    assert hub.apply_works(copy.deepcopy(round1)) == []
    assert hub.get_work(cluster, WORK) == before


def test_a_label_change_keeps_the_generation_and_the_status(hub, round1):
    cluster = _clusters(round1)[0]
    hub.report_job(cluster, WORK, job_name=R1, succeeded=True)
    before = hub.get_work(cluster, WORK)
    relabelled = copy.deepcopy(round1[0])
    relabelled["metadata"]["labels"]["team"] = "another-team"
    assert hub.apply_works([relabelled]) == []
    after = hub.get_work(cluster, WORK)
    assert after["metadata"]["generation"] == 1
    assert int(after["metadata"]["resourceVersion"]) > int(before["metadata"]["resourceVersion"])
    assert after["status"] == before["status"]
    assert _statuses(hub, R1, [cluster])[cluster].state is JobState.SUCCEEDED


def test_next_rounds_spec_makes_last_rounds_done_stale_until_the_agent_reports(
    hub, round1, render_round
):
    clusters = _clusters(round1)
    with hub.batch():
        for cluster in clusters:
            hub.report_job(cluster, WORK, job_name=R1, succeeded=True)
    assert summarize(_statuses(hub, R1, clusters)).succeeded == tuple(clusters)

    round2 = render_round(2)
    assert hub.apply_works(round2) == [(c, WORK) for c in clusters]
    first = clusters[0]
    assert hub.get_work(first, WORK)["metadata"]["generation"] == 2
    # the old status still says "done", but for generation 1 and for the round-1 Job
    assert _statuses(hub, R2, clusters)[first] == ClusterStatus(
        first, JobState.UNKNOWN, "observedGeneration 1 < generation 2", R1
    )
    assert summarize(_statuses(hub, R2, clusters)).unknown == tuple(clusters)

    hub.report_job(first, WORK, job_name=R2, succeeded=None)
    assert _statuses(hub, R2, [first])[first].state is JobState.RUNNING
    job_names = [
        m["resourceMeta"]["name"]
        for m in hub.get_work(first, WORK)["status"]["resourceStatus"]["manifests"]
        if m["resourceMeta"]["kind"] == "Job"
    ]
    assert job_names == [R2]  # the agent's list follows the spec: round 1's Job is gone


def test_transition_times_move_only_when_a_condition_changes(hub, round1):
    cluster = _clusters(round1)[0]
    hub.report_job(cluster, WORK, job_name=R1, succeeded=None)
    first = hub.get_work(cluster, WORK)["status"]
    hub.report_job(cluster, WORK, job_name=R1, succeeded=True)
    second = hub.get_work(cluster, WORK)["status"]
    # Applied and Available did not change; Complete did, from False to True
    assert first["conditions"][:2] == second["conditions"][:2]
    assert first["conditions"][0]["lastTransitionTime"] == "2026-11-01T10:11:00Z"
    assert [(c["status"], c["lastTransitionTime"]) for c in first["conditions"][2:]] == [
        ("False", "2026-11-01T10:11:00Z")
    ]
    assert [(c["status"], c["lastTransitionTime"]) for c in second["conditions"][2:]] == [
        ("True", "2026-11-01T10:12:00Z")
    ]


def test_reporting_a_job_the_spec_does_not_have_is_refused(hub, round1):
    cluster = _clusters(round1)[0]
    with pytest.raises(HubNotFound) as caught:
        hub.report_job(cluster, WORK, job_name=R2, succeeded=True)
    assert str(caught.value) == (
        f"local hub: ManifestWork {cluster}/{WORK} has no Job {R2} in its spec (it has {R1})"
    )


def test_a_missing_work_is_not_found(hub):
    with pytest.raises(HubNotFound) as caught:
        hub.get_work("cluster-404", WORK)
    assert str(caught.value) == f"local hub: no ManifestWork {WORK} in namespace cluster-404"
    with pytest.raises(HubNotFound):
        hub.report_job("cluster-404", WORK, job_name=R1, succeeded=True)
    assert _statuses(hub, R1, ["cluster-404"])["cluster-404"] == ClusterStatus(
        "cluster-404",
        JobState.UNKNOWN,
        f"no ManifestWork {WORK} in namespace cluster-404",
        None,
    )


def test_only_manifestworks_can_be_applied():
    with pytest.raises(HubError) as caught:
        LocalHub().apply_works([{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}])
    assert str(caught.value) == (
        "local hub: cannot apply an object: expected a work.open-cluster-management.io/v1 "
        "ManifestWork with metadata.name and metadata.namespace"
    )


def test_deleted_work_is_missing(hub, round1):
    cluster = _clusters(round1)[0]
    assert hub.delete_work(cluster, WORK) is True
    assert hub.delete_work(cluster, WORK) is False
    assert _statuses(hub, R1, [cluster])[cluster].reason.startswith("no ManifestWork")


def test_a_sync_prunes_the_experiments_works_that_left_the_tree(hub, round1, render_round):
    clusters = _clusters(round1)
    other = copy.deepcopy(round1[0])
    other["metadata"]["labels"]["fl-gitops.io/experiment"] = "another-exp"
    other["metadata"]["name"] = "fl-another-exp"
    hub.apply_works([other])
    round2 = render_round(2)[1:]  # the first cluster left the roster
    changed, pruned = hub.sync_works(round2, experiment=EXP)
    assert changed == [(c, WORK) for c in clusters[1:]]
    assert pruned == [(clusters[0], WORK)]
    assert hub.get_work(clusters[0], "fl-another-exp")["metadata"]["generation"] == 1
    assert hub.sync_works(round2, experiment=EXP) == ([], [])


def test_with_an_experiment_a_work_without_its_label_is_missing(hub, round1):
    work = copy.deepcopy(round1[0])
    cluster = work["metadata"]["namespace"]
    del work["metadata"]["labels"]["fl-gitops.io/experiment"]
    hub.apply_works([work])
    hub.report_job(cluster, WORK, job_name=R1, succeeded=True)
    assert _statuses(hub, R1, [cluster])[cluster].state is JobState.UNKNOWN
    unlabelled = hub.job_statuses(work_name=WORK, job_name=R1, clusters=[cluster])
    assert unlabelled[cluster].state is JobState.SUCCEEDED
    assert hub.list_works(experiment=EXP) == [
        w for w in hub.list_works() if w["metadata"]["namespace"] != cluster
    ]


def test_decisions_are_merged_sorted_and_empty_when_unknown():
    hub = LocalHub()
    hub.set_decisions("fl-system", EXP, ["c3", "c1", "c2", "c1"])
    assert hub.decided_clusters("fl-system", EXP) == ["c1", "c2", "c3"]
    assert hub.decided_clusters("fl-system", "other") == []
    assert hub.decided_clusters("elsewhere", EXP) == []


def test_a_feedback_rule_the_agent_cannot_evaluate_makes_the_job_unknown(hub, round1):
    work = copy.deepcopy(round1[0])
    cluster = work["metadata"]["namespace"]
    work["spec"]["manifestConfigs"][0]["feedbackRules"][1]["jsonPaths"].append(
        {"name": "everything", "path": ".status"}
    )
    hub.apply_works([work])
    hub.report_job(cluster, WORK, job_name=R1, succeeded=None)
    status = _statuses(hub, R1, [cluster])[cluster]
    assert status == ClusterStatus(
        cluster,
        JobState.UNKNOWN,
        f"status feedback for job {R1} failed: StatusFeedbackSynced=False "
        "(StatusFeedbackSyncFailed: Sync status feedback failed with error everything: the "
        "value is a dict, not a scalar)",
        R1,
    )
    assert_valid(hub.get_work(cluster, WORK))


def test_without_the_failed_rules_a_failed_job_looks_like_a_running_one(hub, round1):
    # why the renderer adds JSONPaths: WellKnownStatus alone never reports a failure
    work = copy.deepcopy(round1[0])
    cluster = work["metadata"]["namespace"]
    work["spec"]["manifestConfigs"][0]["feedbackRules"] = [{"type": "WellKnownStatus"}]
    del work["spec"]["manifestConfigs"][0]["conditionRules"]
    hub.apply_works([work])
    hub.report_job(cluster, WORK, job_name=R1, succeeded=False)
    assert _statuses(hub, R1, [cluster])[cluster].state is JobState.RUNNING


def test_the_complete_condition_rule_alone_tells_a_failed_job_from_a_running_one(hub, round1):
    work = copy.deepcopy(round1[0])
    cluster = work["metadata"]["namespace"]
    work["spec"]["manifestConfigs"][0]["feedbackRules"] = [{"type": "WellKnownStatus"}]
    hub.apply_works([work])
    hub.report_job(cluster, WORK, job_name=R1, succeeded=None)
    assert _statuses(hub, R1, [cluster])[cluster].state is JobState.RUNNING
    hub.report_job(cluster, WORK, job_name=R1, succeeded=False)
    assert _statuses(hub, R1, [cluster])[cluster] == ClusterStatus(
        cluster,
        JobState.FAILED,
        f"job {R1} finished without succeeding: "
        "Complete=True (ConditionRuleEvaluated: Job is finished)",
        R1,
    )


def test_a_running_job_is_not_complete_and_neither_is_its_work(hub, round1):
    cluster = _clusters(round1)[0]
    hub.report_job(cluster, WORK, job_name=R1, succeeded=None)
    status = hub.get_work(cluster, WORK)["status"]
    job = status["resourceStatus"]["manifests"][2]
    assert [(c["type"], c["status"], c["message"]) for c in job["conditions"][3:]] == [
        ("Complete", "False", "Job is not finished")
    ]
    assert [(c["type"], c["status"], c["reason"], c["message"]) for c in status["conditions"]] == [
        ("Applied", "True", "AppliedManifestWorkComplete", "Apply manifest work complete"),
        ("Available", "True", "ResourcesAvailable", "All resources are available"),
        ("Complete", "False", "ConditionRulesAggregated", "Job is not finished"),
    ]
    # the Namespace and the ConfigMap have no condition rules, so no Complete condition
    for entry in status["resourceStatus"]["manifests"][:2]:
        assert "Complete" not in [c["type"] for c in entry["conditions"]]


def test_a_completed_work_is_not_applied_again_until_the_next_rounds_spec(
    hub, round1, render_round
):
    cluster = _clusters(round1)[0]
    hub.report_job(cluster, WORK, job_name=R1, succeeded=True)
    before = hub.get_work(cluster, WORK)
    hub.report_applied(cluster, WORK)
    assert hub.get_work(cluster, WORK) == before  # the agent skips a completed work

    hub.apply_works([w for w in render_round(2) if w["metadata"]["namespace"] == cluster])
    hub.report_applied(cluster, WORK)
    status = hub.get_work(cluster, WORK)["status"]
    # last round's Complete (generation 1) is gone from the work and from the entries
    assert [(c["type"], c["observedGeneration"]) for c in status["conditions"]] == [
        ("Applied", 2),
        ("Available", 1),
    ]
    assert all(
        c["type"] != "Complete"
        for m in status["resourceStatus"]["manifests"]
        for c in m["conditions"]
    )
    assert _statuses(hub, R2, [cluster])[cluster].reason == "observedGeneration 1 < generation 2"
    hub.report_job(cluster, WORK, job_name=R2, succeeded=None)
    assert _statuses(hub, R2, [cluster])[cluster].state is JobState.RUNNING


def test_condition_rules_the_local_agent_cannot_evaluate_say_so(hub, round1):
    work = copy.deepcopy(round1[0])
    cluster = work["metadata"]["namespace"]
    work["spec"]["manifestConfigs"][0]["conditionRules"] = [
        {"type": "CEL", "condition": "Ready", "celExpressions": ["true"]},
        {"type": "WellKnownConditions", "condition": "Ready"},  # none for a Job: no condition
    ]
    hub.apply_works([work])
    hub.report_job(cluster, WORK, job_name=R1, succeeded=True)
    status = hub.get_work(cluster, WORK)["status"]
    job = status["resourceStatus"]["manifests"][2]
    assert [(c["type"], c["status"], c["reason"], c["message"]) for c in job["conditions"][3:]] == [
        (
            "Ready",
            "Unknown",
            "ConditionRuleInternalError",
            "the local work agent does not evaluate CEL expressions",
        )
    ]
    assert [(c["type"], c["status"]) for c in status["conditions"]] == [
        ("Applied", "True"),
        ("Available", "True"),
        ("Ready", "Unknown"),
    ]
    assert_valid(hub.get_work(cluster, WORK))


def test_manifest_configs_match_with_wildcards_and_merge_like_the_agents(hub, round1):
    work = copy.deepcopy(round1[0])
    cluster = work["metadata"]["namespace"]
    job_config = work["spec"]["manifestConfigs"][0]
    rules = job_config.pop("feedbackRules")
    # the conditions from one entry (a wildcard), the feedback from the next
    job_config["resourceIdentifier"]["name"] = "fl-*-r1"
    work["spec"]["manifestConfigs"].append(
        {
            "resourceIdentifier": {
                "group": "batch",
                "resource": "jobs",
                "name": R1,
                "namespace": "*",
            },
            "feedbackRules": rules,
            "conditionRules": [{"type": "CEL", "condition": "Ignored", "celExpressions": ["1"]}],
        }
    )
    hub.apply_works([work])
    hub.report_job(cluster, WORK, job_name=R1, succeeded=False)
    job = hub.get_work(cluster, WORK)["status"]["resourceStatus"]["manifests"][2]
    assert [c["type"] for c in job["conditions"]] == [
        "Applied",
        "Available",
        "StatusFeedbackSynced",
        "Complete",
    ]
    assert [v["name"] for v in job["statusFeedback"]["values"]] == ["failed", "JobFailed"]


# -- the state file ------------------------------------------------------------------------


def test_a_file_backed_hub_resumes_where_it_stopped(tmp_path, round1):
    path = tmp_path / "hub"
    clusters = _clusters(round1)
    hub = LocalHub(path, clock=Clock())
    hub.set_decisions("fl-system", EXP, clusters)
    hub.apply_works(round1)
    hub.report_job(clusters[0], WORK, job_name=R1, succeeded=True)
    hub.report_job(clusters[1], WORK, job_name=R1, succeeded=False)
    hub.delete_work(clusters[2], WORK)

    again = LocalHub(path, clock=Clock())
    assert again.decided_clusters("fl-system", EXP) == sorted(clusters)
    assert _statuses(again, R1, clusters) == _statuses(hub, R1, clusters)
    assert again.list_works() == hub.list_works()
    # resource versions keep counting up after a restart
    again.report_job(clusters[3], WORK, job_name=R1, succeeded=True)
    versions = [int(w["metadata"]["resourceVersion"]) for w in again.list_works()]
    assert len(set(versions)) == len(versions)
    state = json.loads((path / "hub.json").read_text())
    assert (state["apiVersion"], state["kind"]) == ("fl-gitops.io/v1alpha1", "LocalHubState")
    files = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
    assert files == ["hub.json"] + [
        f"works/{c}/{WORK}.json" for c in sorted(clusters) if c != clusters[2]
    ]


def test_a_status_report_rewrites_only_that_clusters_file(tmp_path, round1):
    path = tmp_path / "hub"
    clusters = _clusters(round1)
    hub = LocalHub(path, clock=Clock())
    hub.apply_works(round1)
    before = {p: p.read_bytes() for p in path.rglob("*.json")}
    hub.report_job(clusters[0], WORK, job_name=R1, succeeded=True)
    changed = [p for p, data in before.items() if p.read_bytes() != data]
    assert changed == [path / "works" / clusters[0] / f"{WORK}.json"]


def test_a_batch_writes_its_files_at_the_end(tmp_path, round1):
    path = tmp_path / "hub"
    hub = LocalHub(path, clock=Clock())
    hub.apply_works(round1)
    before = {p: p.read_bytes() for p in path.rglob("*.json")}
    with hub.batch():
        for cluster in _clusters(round1):
            hub.report_job(cluster, WORK, job_name=R1, succeeded=True)
        assert {p: p.read_bytes() for p in path.rglob("*.json")} == before
    after = {p: p.read_bytes() for p in path.rglob("*.json")}
    assert sum(after[p] != before[p] for p in before) == len(round1)
    assert LocalHub(path).list_works() == hub.list_works()


def test_an_unreadable_state_directory_is_a_hub_error(tmp_path):
    path = tmp_path / "hub"
    path.mkdir()
    (path / "hub.json").write_text('{"kind": "Something"}')
    with pytest.raises(HubError) as caught:
        LocalHub(path)
    assert str(caught.value) == (
        f"local hub state {path}: cannot read it: hub.json is not a LocalHubState document"
    )
    (path / "hub.json").unlink()
    (path / "notes.txt").write_text("mine")
    with pytest.raises(HubError) as caught:
        LocalHub(path)
    assert str(caught.value) == (
        f"local hub state {path}: cannot read it: no hub.json in a directory that is not empty"
    )


def test_a_name_cannot_leave_the_state_directory(tmp_path, round1):
    work = copy.deepcopy(round1[0])
    work["metadata"]["name"] = "../../escape"
    with pytest.raises(HubError) as caught:
        LocalHub(tmp_path / "hub").apply_works([work])
    assert str(caught.value).startswith(
        f"local hub: cannot apply {work['metadata']['namespace']}/../../escape: "
    )
    assert not (tmp_path / "escape.json").exists()


# -- the same answers as the Kubernetes hub --------------------------------------------------


def test_kubernetes_hub_reads_local_hub_works_the_same_way(api_server, api_client, round1):
    hub = LocalHub(clock=Clock())
    hub.apply_works(round1)
    clusters = _clusters(round1)
    hub.report_applied(clusters[0], WORK)
    hub.report_job(clusters[1], WORK, job_name=R1, succeeded=None)
    hub.report_job(clusters[2], WORK, job_name=R1, succeeded=True)
    hub.report_job(clusters[3], WORK, job_name=R1, succeeded=False)
    hub.delete_work(clusters[4], WORK)
    api_server.add_list(WORKS_PATH, hub.list_works())

    kubernetes = KubernetesHub(api_client)
    for job in (R1, R2):
        assert kubernetes.job_statuses(
            work_name=WORK, job_name=job, clusters=clusters, experiment=EXP
        ) == _statuses(hub, job, clusters)
    assert summarize(_statuses(hub, R1, clusters)).counts == {
        "succeeded": 1,
        "failed": 1,
        "running": 1,
        "pending": 1,
        "unknown": len(clusters) - 4,
    }
