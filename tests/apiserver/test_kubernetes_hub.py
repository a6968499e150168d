"""KubernetesHub against a real API server: paging, an expired continue token, status, watch.

The works are the stock experiment's rendered ManifestWorks, and their status is written
the way the work agent writes it (``KubePlayers.report_job``: the agent's shapes, through
the status subresource). Each group of tests labels its works with an experiment name of
its own, so the counts do not depend on what other tests left on the shared server.
"""

from __future__ import annotations

import base64
import copy
import json
import statistics
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from fl_gitops.cli import main as cli_main
from fl_gitops.devhub import ApiServer
from fl_gitops.hub import (
    ClusterStatus,
    HubConflict,
    HubError,
    JobState,
    KubernetesHub,
    summarize,
    translate,
)
from fl_gitops.hub.errors import trim_detail
from fl_gitops.labels import EXPERIMENT_LABEL
from fl_gitops.placement import DecisionGroup, PlacementResult
from fl_gitops.simulate._kube import KubePlayers

REPO = Path(__file__).resolve().parents[2]
BLUEPRINT = REPO / "blueprints" / "digits-fedavg.yaml"
INVENTORY = REPO / "examples" / "config-repo" / "inventory" / "managedclusters.yaml"
WORKS = ("work.open-cluster-management.io", "v1", "manifestworks")
DECISIONS = ("cluster.open-cluster-management.io", "v1beta1", "placementdecisions")
WORK = "fl-digits-fedavg"
JOB_1 = "fl-digits-fedavg-r1"
JOB_2 = "fl-digits-fedavg-r2"
EXPIRED = (
    "The provided continue parameter is too old to display a consistent list result. You can "
    "start a new list without the continue parameter, or use the continue token in this "
    "response to retrieve the remainder of the results. Continuing with the provided token "
    "results in an inconsistent list - objects that were created, modified, or deleted "
    "between the time the first chunk was returned and now may show up in the list."
)
SUCCEEDED = "JobComplete=True, JobSucceeded=1, succeeded=1"
FAILED = "JobFailed=True, failed=1"
NOT_REPORTED = f"the work agent has not reported on ManifestWork {WORK} yet"


# -- the world ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[int, dict[str, Any]]:
    """One rendered ManifestWork of the stock experiment, for rounds 1 and 2."""
    works = {}
    for round_ in (1, 2):
        out = tmp_path_factory.mktemp(f"round-{round_}")
        args = ["render", str(BLUEPRINT), "--inventory", str(INVENTORY), "--out", str(out)]
        assert cli_main([*args, "--round", str(round_)]) == 0
        first = sorted((out / "experiments" / "digits-fedavg" / "works").glob("*.yaml"))[0]
        works[round_] = yaml.safe_load(first.read_text())
    return works


def work_for(template: Mapping[str, Any], cluster: str, experiment: str) -> dict[str, Any]:
    """The rendered work, placed in ``cluster``'s namespace and labelled for ``experiment``."""
    work = copy.deepcopy(dict(template))
    work["metadata"]["namespace"] = cluster
    work["metadata"]["labels"][EXPERIMENT_LABEL] = experiment
    return work


@dataclass
class Fleet:
    """Clusters with a namespace and a work each, on the real server."""

    experiment: str
    clusters: list[str]
    admin: Any
    players: KubePlayers

    def work(self, cluster: str) -> dict[str, Any]:
        group, version, plural = WORKS
        api = _custom(self.admin)
        found: dict[str, Any] = api.get_namespaced_custom_object(
            group, version, cluster, plural, WORK
        )
        return found

    def report(self, cluster: str, succeeded: bool | None, job: str = JOB_1) -> None:
        self.players.report_job(cluster, WORK, job_name=job, succeeded=succeeded)


def _custom(client: Any) -> Any:
    from kubernetes import client as k8s

    return k8s.CustomObjectsApi(client)


def _in_parallel(fn: Callable[[Any], Any], items: list[Any]) -> None:
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(fn, items))


def make_fleet(
    admin: Any, template: Mapping[str, Any], n: int, *, experiment: str | None = None
) -> Fleet:
    """``n`` cluster namespaces, each with the rendered work labelled ``experiment``."""
    from kubernetes import client as k8s

    experiment = experiment or f"hub-{uuid.uuid4().hex[:8]}"
    prefix = f"w{uuid.uuid4().hex[:6]}"
    clusters = [f"{prefix}-{i:03d}" for i in range(n)]
    core = k8s.CoreV1Api(admin)
    group, version, plural = WORKS
    custom = _custom(admin)

    def create(cluster: str) -> None:
        core.create_namespace({"metadata": {"name": cluster}})
        custom.create_namespaced_custom_object(
            group, version, cluster, plural, work_for(template, cluster, experiment)
        )

    _in_parallel(create, clusters)
    return Fleet(experiment, clusters, admin, KubePlayers(admin, KubernetesHub(admin)))


def delete_fleet(fleet: Fleet) -> None:
    from kubernetes import client as k8s

    core = k8s.CoreV1Api(fleet.admin)
    _in_parallel(core.delete_namespace, fleet.clusters)


@pytest.fixture(scope="module")
def module_admin(apiserver: ApiServer) -> Iterator[Any]:
    with apiserver.api_client() as client:
        yield client


# The 300-work fleet's outcomes, by index: the agent reports every fourth Job succeeded,
# failed or still running, and has not reported on the rest.
def _outcome(index: int) -> bool | str | None:
    return (True, False, None, "unreported")[index % 4]


@pytest.fixture(scope="module")
def big(module_admin: Any, rendered: dict[int, dict[str, Any]]) -> Iterator[Fleet]:
    """300 clusters, each with its work; statuses per ``_outcome``; 30 other experiment works."""
    fleet = make_fleet(module_admin, rendered[1], 300)
    reported = [
        (c, _outcome(i)) for i, c in enumerate(fleet.clusters) if _outcome(i) != "unreported"
    ]
    _in_parallel(lambda pair: fleet.report(pair[0], pair[1]), reported)
    # another experiment's works in the same namespaces, all failed: never counted
    other = copy.deepcopy(rendered[1])
    other["metadata"]["name"] = "fl-other"
    group, version, plural = WORKS
    custom = _custom(module_admin)

    def other_work(cluster: str) -> None:
        custom.create_namespaced_custom_object(
            group, version, cluster, plural, work_for(other, cluster, f"{fleet.experiment}-x")
        )
        fleet.players.report_job(cluster, "fl-other", job_name=JOB_1, succeeded=False)

    _in_parallel(other_work, fleet.clusters[:30])
    yield fleet
    delete_fleet(fleet)


def expected_status(index: int, cluster: str) -> ClusterStatus:
    outcome = _outcome(index)
    if outcome is True:
        return ClusterStatus(cluster, JobState.SUCCEEDED, SUCCEEDED, JOB_1)
    if outcome is False:
        return ClusterStatus(cluster, JobState.FAILED, FAILED, JOB_1)
    if outcome is None:
        return ClusterStatus(cluster, JobState.RUNNING, "no result yet", JOB_1)
    return ClusterStatus(cluster, JobState.UNKNOWN, NOT_REPORTED, None)


class CountingList:
    """Wraps a hub's list call: records each call's ``continue`` token and its outcome."""

    def __init__(self, fn: Callable[..., Any], between: Callable[[], None] | None = None):
        self.fn = fn
        self.between = between  # run after each first page (no continue token) came back
        self.calls: list[tuple[bool, int, str]] = []  # (had a token, limit, result)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from kubernetes import client as k8s

        token = bool(kwargs.get("_continue"))
        try:
            page = self.fn(*args, **kwargs)
        except k8s.ApiException as exc:
            self.calls.append((token, kwargs["limit"], f"{exc.status} {exc.reason}"))
            raise
        self.calls.append((token, kwargs["limit"], f"{len(page['items'])} items"))
        if not token and self.between is not None:
            self.between()
        return page


# -- PlacementDecisions ----------------------------------------------------------------


def placement_result(namespace: str, placement: str, clusters: list[str]) -> PlacementResult:
    """What the placement controller decided: one group, in ``clusters``' order."""
    return PlacementResult(
        placement_name=placement,
        namespace=namespace,
        decided=tuple(sorted(clusters)),
        groups=(DecisionGroup(0, "", tuple(clusters)),),
        feasible=tuple(sorted(clusters)),
        ranked=tuple(clusters),
        scores={},
        prioritizers=(),
        available=tuple(sorted(clusters)),
        excluded={},
        unscheduled=0,
        reason="AllDecisionsScheduled",
    )


def test_decided_clusters_merges_250_decisions_from_three_placement_decisions(
    admin: Any, namespace: str
) -> None:
    players = KubePlayers(admin, KubernetesHub(admin))
    # decision order is not name order (the controller sorts by score with sortBy: Score)
    clusters = [f"cluster-{(i * 7919) % 250:03d}" for i in range(250)]
    assert len(set(clusters)) == 250
    players.place(
        placement_result(namespace, "digits", clusters), namespace=namespace, placement="digits"
    )
    players.place(
        placement_result(namespace, "other", ["zz-1", "zz-2"]),
        namespace=namespace,
        placement="other",
    )
    group, version, plural = DECISIONS
    stored = _custom(admin).list_namespaced_custom_object(group, version, namespace, plural)
    assert sorted(
        (d["metadata"]["name"], len(d["status"]["decisions"])) for d in stored["items"]
    ) == [
        ("digits-decision-1", 100),
        ("digits-decision-2", 100),
        ("digits-decision-3", 50),
        ("other-decision-1", 2),
    ]

    hub = KubernetesHub(admin, page_size=2)
    counting = CountingList(hub._api.list_namespaced_custom_object)
    hub._api.list_namespaced_custom_object = counting
    assert hub.decided_clusters(namespace, "digits") == sorted(clusters)
    # three objects at two a page; the other placement's decisions are not listed
    assert counting.calls == [(False, 2, "2 items"), (True, 2, "1 items")]
    assert hub.decided_clusters(namespace, "other") == ["zz-1", "zz-2"]
    assert hub.decided_clusters(namespace, "nothing-placed-yet") == []


# -- ManifestWorks, paged --------------------------------------------------------------


def test_job_statuses_reads_300_works_in_pages_of_100(big: Fleet) -> None:
    hub = KubernetesHub(big.admin, page_size=100)
    counting = CountingList(hub._api.list_cluster_custom_object)
    hub._api.list_cluster_custom_object = counting

    statuses = hub.job_statuses(
        work_name=WORK, job_name=JOB_1, clusters=big.clusters, experiment=big.experiment
    )

    assert counting.calls == [
        (False, 100, "100 items"),
        (True, 100, "100 items"),
        (True, 100, "100 items"),
    ]
    assert statuses == {c: expected_status(i, c) for i, c in enumerate(big.clusters)}
    assert list(statuses) == big.clusters
    assert summarize(statuses).counts == {
        "succeeded": 75,
        "failed": 75,
        "running": 75,
        "pending": 0,
        "unknown": 75,
    }


def test_works_of_another_experiment_and_outside_the_roster_are_not_counted(big: Fleet) -> None:
    hub = KubernetesHub(big.admin, page_size=100)
    # the roster is the first half; the other experiment's failed works share namespaces
    roster = big.clusters[:150]
    statuses = hub.job_statuses(
        work_name=WORK, job_name=JOB_1, clusters=roster, experiment=big.experiment
    )
    assert statuses == {c: expected_status(i, c) for i, c in enumerate(roster)}
    # the other experiment reads its own: all 30 failed, the rest of the roster has no work
    others = hub.job_statuses(
        work_name="fl-other",
        job_name=JOB_1,
        clusters=big.clusters[:40],
        experiment=f"{big.experiment}-x",
    )
    assert [s.state for s in others.values()] == [JobState.FAILED] * 30 + [JobState.UNKNOWN] * 10
    assert others[big.clusters[35]].reason == (
        f"no ManifestWork fl-other in namespace {big.clusters[35]}"
    )
    # without the label, one GET per cluster gives the same answers
    assert hub.job_statuses(work_name=WORK, job_name=JOB_1, clusters=roster[:12]) == {
        c: statuses[c] for c in roster[:12]
    }


def _etcd(apiserver: ApiServer, path: str, body: Mapping[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{apiserver.etcd_url}{path}", data=json.dumps(body).encode(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        result: dict[str, Any] = json.loads(answer.read())
        return result


def compact_etcd(apiserver: ApiServer) -> int:
    """Compact etcd's history up to its current revision; returns that revision."""
    key = base64.b64encode(b"\0").decode()
    revision = int(_etcd(apiserver, "/v3/kv/range", {"key": key})["header"]["revision"])
    _etcd(apiserver, "/v3/kv/compaction", {"revision": str(revision), "physical": True})
    return revision


def _touch(admin: Any) -> None:
    """Any write, so that a compaction at the current revision drops the list's snapshot."""
    from kubernetes import client as k8s

    k8s.CoreV1Api(admin).patch_namespace(
        "default", {"metadata": {"annotations": {"fl-gitops.test/touched": uuid.uuid4().hex}}}
    )


def test_an_expired_continue_token_restarts_the_list_once(big: Fleet, apiserver: ApiServer) -> None:
    compactions: list[int] = []

    def expire_the_snapshot() -> None:
        if not compactions:  # only the first list's snapshot
            _touch(big.admin)
            compactions.append(compact_etcd(apiserver))

    hub = KubernetesHub(big.admin, page_size=100)
    counting = CountingList(hub._api.list_cluster_custom_object, expire_the_snapshot)
    hub._api.list_cluster_custom_object = counting

    statuses = hub.job_statuses(
        work_name=WORK, job_name=JOB_1, clusters=big.clusters, experiment=big.experiment
    )

    assert len(compactions) == 1
    assert counting.calls == [
        (False, 100, "100 items"),
        (True, 100, "410 Gone"),  # the real server's answer to a compacted snapshot
        (False, 100, "100 items"),  # listed again from the start, once
        (True, 100, "100 items"),
        (True, 100, "100 items"),
    ]
    assert statuses == {c: expected_status(i, c) for i, c in enumerate(big.clusters)}


def test_a_token_that_expires_again_after_the_restart_is_an_error_naming_the_call(
    big: Fleet, apiserver: ApiServer
) -> None:
    def expire_the_snapshot() -> None:
        _touch(big.admin)
        compact_etcd(apiserver)

    hub = KubernetesHub(big.admin, page_size=100)
    counting = CountingList(hub._api.list_cluster_custom_object, expire_the_snapshot)
    hub._api.list_cluster_custom_object = counting

    with pytest.raises(HubError) as caught:
        hub.job_statuses(
            work_name=WORK, job_name=JOB_1, clusters=big.clusters, experiment=big.experiment
        )

    assert type(caught.value) is HubError
    selector = f"{EXPERIMENT_LABEL}={big.experiment}"
    assert str(caught.value) == (
        f"hub {apiserver.host}: list manifestworks in all namespaces (labelSelector "
        f"{selector}): 410 Gone: {trim_detail(EXPIRED)}"
    )
    assert [result for _, _, result in counting.calls] == [
        "100 items",
        "410 Gone",
        "100 items",
        "410 Gone",
    ]


# -- status as the work agent writes it ------------------------------------------------


@pytest.fixture
def small(admin: Any, rendered: dict[int, dict[str, Any]]) -> Iterator[Fleet]:
    """Three clusters with the round-1 work each, nothing reported yet."""
    fleet = make_fleet(admin, rendered[1], 3)
    yield fleet
    delete_fleet(fleet)


def _statuses(hub: KubernetesHub, fleet: Fleet, job: str = JOB_1) -> dict[str, tuple[str, str]]:
    answers = hub.job_statuses(
        work_name=WORK, job_name=job, clusters=fleet.clusters, experiment=fleet.experiment
    )
    return {c: (s.state.value, s.reason) for c, s in answers.items()}


def test_status_written_through_the_subresource_reads_as_the_agent_meant_it(
    small: Fleet, rendered: dict[int, dict[str, Any]]
) -> None:
    a, b, c = small.clusters
    hub = KubernetesHub(small.admin)
    assert _statuses(hub, small) == {x: ("Unknown", NOT_REPORTED) for x in small.clusters}

    small.report(a, True)
    small.report(b, False)
    small.report(c, None)
    assert _statuses(hub, small) == {
        a: ("Succeeded", SUCCEEDED),
        b: ("Failed", FAILED),
        c: ("Running", "no result yet"),
    }
    stored = small.work(a)
    assert stored["metadata"]["generation"] == 1  # a status write is not a spec change
    assert {x["type"]: x["observedGeneration"] for x in stored["status"]["conditions"]} == {
        "Applied": 1,
        "Available": 1,
        "Complete": 1,
    }

    # Argo CD applies round 2: the server bumps the generation; the old status is stale
    small.players.sync(
        [work_for(rendered[2], x, small.experiment) for x in small.clusters],
        experiment=small.experiment,
    )
    assert small.work(a)["metadata"]["generation"] == 2
    stale = ("Unknown", "observedGeneration 1 < generation 2")
    assert _statuses(hub, small, JOB_2) == {x: stale for x in small.clusters}
    small.report(a, True, JOB_2)
    assert _statuses(hub, small, JOB_2) == {a: ("Succeeded", SUCCEEDED), b: stale, c: stale}


def test_replacing_status_with_a_stale_resource_version_is_a_hub_conflict(
    small: Fleet, apiserver: ApiServer
) -> None:
    from kubernetes import client as k8s

    cluster = small.clusters[0]
    before = small.work(cluster)
    small.report(cluster, None)  # the agent writes first: the resourceVersion moves on
    before["status"] = {"conditions": []}
    group, version, plural = WORKS
    what = f"hub {apiserver.host}: update {plural} {cluster}/{WORK} status"
    with pytest.raises(k8s.ApiException) as caught:
        _custom(small.admin).replace_namespaced_custom_object_status(
            group, version, cluster, plural, WORK, before
        )
    assert caught.value.status == 409
    error = translate(caught.value, what)
    assert isinstance(error, HubConflict)
    assert str(error) == (
        f"{what}: 409 Conflict: Operation cannot be fulfilled on "
        f'manifestworks.work.open-cluster-management.io "{WORK}": the object has been '
        "modified; please apply your changes to the latest version and try again"
    )
    assert small.work(cluster)["status"]["conditions"]  # the agent's write stands


# -- watching --------------------------------------------------------------------------


def _patch_later(fleet: Fleet, cluster: str, delay: float, times: dict[str, float]) -> Any:
    def run() -> None:
        time.sleep(delay)
        times["patching"] = time.monotonic()
        fleet.report(cluster, True)
        times["patched"] = time.monotonic()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_wait_for_change_wakes_within_seconds_when_a_works_status_changes(
    small: Fleet, capsys: pytest.CaptureFixture[str]
) -> None:
    hub = KubernetesHub(small.admin)
    from_start, writes = [], []
    for attempt in range(3):
        _statuses(hub, small)  # the read the watch resumes from
        times: dict[str, float] = {}
        start = time.monotonic()
        thread = _patch_later(small, small.clusters[attempt], 1.0, times)
        woke = hub.wait_for_change(timeout=60)
        end = time.monotonic()
        thread.join()
        assert woke is True
        assert end >= times["patching"]  # not before the write began
        assert end - start < 15  # a watch, not the 60 s timeout
        from_start.append(end - times["patching"])
        writes.append(times["patched"] - times["patching"])
    with capsys.disabled():
        print(
            f"\nwait_for_change woke {statistics.median(from_start) * 1000:.0f} ms after the "
            f"agent's status write began (median of 3, max {max(from_start) * 1000:.0f} ms; "
            f"the write, a GET and a status replace, took "
            f"{statistics.median(writes) * 1000:.0f} ms)"
        )
    assert _statuses(hub, small) == {c: ("Succeeded", SUCCEEDED) for c in small.clusters}


def test_wait_for_change_returns_false_at_its_timeout_when_nothing_it_read_changes(
    small: Fleet, admin: Any, rendered: dict[int, dict[str, Any]]
) -> None:
    hub = KubernetesHub(small.admin)
    _statuses(hub, small)
    # another experiment's work changing, in the same namespace, is not ours
    other = make_fleet(admin, rendered[1], 1)
    times: dict[str, float] = {}
    try:
        thread = _patch_later(other, other.clusters[0], 0.5, times)
        start = time.monotonic()
        woke = hub.wait_for_change(timeout=2)
        elapsed = time.monotonic() - start
        thread.join()
    finally:
        delete_fleet(other)
    assert woke is False
    assert "patched" in times
    assert 1.5 <= elapsed < 10


def test_a_change_between_the_read_and_the_wait_wakes_it_at_once(small: Fleet) -> None:
    hub = KubernetesHub(small.admin)
    _statuses(hub, small)
    small.report(small.clusters[0], False)  # before the wait begins
    start = time.monotonic()
    assert hub.wait_for_change(timeout=60) is True
    assert time.monotonic() - start < 15
    # read again: the watch now starts after that write, and times out
    _statuses(hub, small)
    assert hub.wait_for_change(timeout=1) is False


def test_after_a_failed_list_the_wait_sleeps_its_timeout_instead_of_waking_at_once(
    small: Fleet, apiserver: ApiServer
) -> None:
    # `reconcile --watch` says "pass failed, retrying in <interval>": a list that failed
    # must not leave the snapshot of an older answer to wake the wait at once (a change
    # since that answer would, every time, and the loop would spin against a failing hub)
    hub = KubernetesHub(small.admin, page_size=1)
    _statuses(hub, small)
    small.report(small.clusters[0], True)  # a change after that answer

    def expire_the_snapshot() -> None:
        _touch(small.admin)
        compact_etcd(apiserver)

    hub._api.list_cluster_custom_object = CountingList(
        hub._api.list_cluster_custom_object, expire_the_snapshot
    )
    with pytest.raises(HubError, match="410 Gone"):
        _statuses(hub, small)
    start = time.monotonic()
    assert hub.wait_for_change(timeout=2) is False
    assert time.monotonic() - start >= 1.5
