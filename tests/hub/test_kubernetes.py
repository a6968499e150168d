"""KubernetesHub through the real kubernetes client, against a fake API server on loopback."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml
from kubernetes import client as k8s

from fl_gitops.errors import HubError, InputError
from fl_gitops.hub import (
    ClusterStatus,
    HubConfigError,
    HubConflict,
    HubForbidden,
    HubNotFound,
    HubUnavailable,
    JobState,
    KubernetesHub,
)

from .conftest import (
    DECISIONS_PATH,
    EXPERIMENT,
    FAILED,
    PLACEMENT_LABEL,
    RUNNING,
    SUCCEEDED,
    WORK,
    WORKS_PATH,
    Request,
    assert_valid,
    make_decision,
    make_work,
    status_body,
)

JOB = "fl-digits-fedavg-r3"
SELECTOR = f"{PLACEMENT_LABEL}={EXPERIMENT}"
WORKS_SELECTOR = f"fl-gitops.io/experiment={EXPERIMENT}"


def _clusters(first: int, last: int) -> list[str]:
    return [f"cluster-{i:03d}" for i in range(first, last + 1)]


def _query(request: Request) -> dict[str, str]:
    return request.query


# -- PlacementDecisions --------------------------------------------------------------------


def test_decided_clusters_merges_every_page_of_every_decision(api_server, api_client):
    # 250 clusters in OCM's pages of 100, written out of order, one repeated across pages,
    # and a decision of another placement that the label selector must leave out.
    pages = [
        make_decision("digits-fedavg-decision-1", _clusters(101, 200)),
        make_decision("digits-fedavg-decision-2", list(reversed(_clusters(1, 100)))),
        make_decision("digits-fedavg-decision-3", [*_clusters(201, 250), "cluster-150"]),
        make_decision("other-decision-1", ["cluster-999"], placement="other"),
    ]
    for page in pages:
        assert_valid(page)
    api_server.add_list(DECISIONS_PATH, pages)

    hub = KubernetesHub(api_client, page_size=2)
    clusters = hub.decided_clusters("fl-system", EXPERIMENT)

    assert clusters == _clusters(1, 250)
    assert [(r.method, r.path) for r in api_server.requests] == [("GET", DECISIONS_PATH)] * 2
    first, second = (r.query for r in api_server.requests)
    assert first == {"labelSelector": SELECTOR, "limit": "2"}
    assert second["labelSelector"] == SELECTOR
    assert second["limit"] == "2"
    assert second["continue"]  # the server's token, sent back as given


def test_decided_clusters_reads_every_list_page_until_no_continue_token(api_server, api_client):
    pages = [make_decision(f"digits-fedavg-decision-{i}", [f"c{i}"]) for i in range(1, 6)]
    api_server.add_list(DECISIONS_PATH, pages)
    hub = KubernetesHub(api_client, page_size=2)
    assert hub.decided_clusters("fl-system", EXPERIMENT) == ["c1", "c2", "c3", "c4", "c5"]
    assert len(api_server.requests) == 3
    assert "continue" not in api_server.requests[0].query
    tokens = [r.query["continue"] for r in api_server.requests[1:]]
    assert len(set(tokens)) == 2


def test_no_placement_decisions_is_an_empty_roster(api_server, api_client):
    api_server.add_list(DECISIONS_PATH, [])
    assert KubernetesHub(api_client).decided_clusters("fl-system", EXPERIMENT) == []
    assert api_server.requests[0].query == {"labelSelector": SELECTOR, "limit": "500"}


def test_an_expired_continue_token_restarts_the_list_once(api_server, api_client):
    api_server.add_list(
        DECISIONS_PATH, [make_decision(f"digits-fedavg-decision-{i}", [f"c{i}"]) for i in (1, 2, 3)]
    )
    expired = {"done": False}

    def expire_first_continue(request):
        if "continue" in request.query and not expired["done"]:
            expired["done"] = True
            return (
                410,
                status_body(410, "Expired", "The provided continue parameter is too old"),
                {},
            )
        return None

    api_server.overrides[DECISIONS_PATH] = expire_first_continue
    hub = KubernetesHub(api_client, page_size=2)
    assert hub.decided_clusters("fl-system", EXPERIMENT) == ["c1", "c2", "c3"]
    assert ["continue" in r.query for r in api_server.requests] == [False, True, False, True]


def test_a_placement_name_cannot_inject_a_selector(api_server, api_client):
    hub = KubernetesHub(api_client)
    with pytest.raises(HubConfigError) as caught:
        hub.decided_clusters("fl-system", "x,evil=1")
    assert str(caught.value) == (
        f'label selector {PLACEMENT_LABEL}: "x,evil=1" is not a valid label value: use '
        "letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
    )
    assert isinstance(caught.value, InputError)
    assert api_server.requests == []


# -- ManifestWorks -------------------------------------------------------------------------


def _round_works() -> dict[str, dict]:
    works = {
        "cluster-001": make_work("cluster-001", values=SUCCEEDED),
        "cluster-002": make_work("cluster-002", values=FAILED),
        "cluster-003": make_work("cluster-003", values=RUNNING),
        "cluster-004": make_work("cluster-004", values=None),
        "cluster-005": make_work("cluster-005", generation=4, observed=3, values=SUCCEEDED),
        "cluster-006": make_work("cluster-006", job="fl-digits-fedavg-r2", values=SUCCEEDED),
        "cluster-007": make_work("cluster-007", status=False),
    }
    for work in works.values():
        assert_valid(work)
    return works


EXPECTED = {
    "cluster-001": ClusterStatus(
        "cluster-001", JobState.SUCCEEDED, "JobComplete=True, JobSucceeded=1, succeeded=1", JOB
    ),
    "cluster-002": ClusterStatus("cluster-002", JobState.FAILED, "JobFailed=True, failed=1", JOB),
    "cluster-003": ClusterStatus("cluster-003", JobState.RUNNING, "no result yet", JOB),
    "cluster-004": ClusterStatus(
        "cluster-004", JobState.PENDING, f"no status for job {JOB} yet", None
    ),
    "cluster-005": ClusterStatus(
        "cluster-005", JobState.UNKNOWN, "observedGeneration 3 < generation 4", JOB
    ),
    "cluster-006": ClusterStatus(
        "cluster-006",
        JobState.UNKNOWN,
        f"status is for job fl-digits-fedavg-r2, expected {JOB}",
        "fl-digits-fedavg-r2",
    ),
    "cluster-007": ClusterStatus(
        "cluster-007",
        JobState.UNKNOWN,
        "the work agent has not reported on ManifestWork fl-digits-fedavg yet",
        None,
    ),
    "cluster-008": ClusterStatus(
        "cluster-008",
        JobState.UNKNOWN,
        "no ManifestWork fl-digits-fedavg in namespace cluster-008",
        None,
    ),
}


def test_job_statuses_lists_every_work_by_the_experiment_label(api_server, api_client):
    works = _round_works()
    others = [
        make_work("cluster-001", experiment="other-exp", values=FAILED),  # another experiment
        make_work("cluster-099", values=FAILED),  # a cluster no longer in the roster
    ]
    api_server.add_list(WORKS_PATH, [*works.values(), *others])

    hub = KubernetesHub(api_client, page_size=3)
    statuses = hub.job_statuses(
        work_name=WORK, job_name=JOB, clusters=_clusters(1, 8), experiment=EXPERIMENT
    )

    assert statuses == EXPECTED
    assert list(statuses) == _clusters(1, 8)  # in roster order
    # one list call, paged: 8 matching works at 3 per page
    assert [r.path for r in api_server.requests] == [WORKS_PATH] * 3
    assert [r.query.get("labelSelector") for r in api_server.requests] == [WORKS_SELECTOR] * 3
    assert [r.query.get("limit") for r in api_server.requests] == ["3"] * 3


def test_job_statuses_without_the_experiment_gets_each_clusters_work(api_server, api_client):
    for cluster, work in _round_works().items():
        api_server.add_object(
            f"/apis/work.open-cluster-management.io/v1/namespaces/{cluster}/manifestworks/{WORK}",
            work,
        )
    hub = KubernetesHub(api_client)
    statuses = hub.job_statuses(work_name=WORK, job_name=JOB, clusters=_clusters(1, 8))

    assert statuses == EXPECTED
    assert [(r.method, r.path, r.query) for r in api_server.requests] == [
        (
            "GET",
            f"/apis/work.open-cluster-management.io/v1/namespaces/{c}/manifestworks/{WORK}",
            {},
        )
        for c in _clusters(1, 8)
    ]


def test_the_client_sends_its_bearer_token(api_server, api_client):
    api_server.add_list(WORKS_PATH, [])
    KubernetesHub(api_client).job_statuses(
        work_name=WORK, job_name=JOB, clusters=["c1"], experiment=EXPERIMENT
    )
    assert api_server.requests[0].headers["authorization"] == "Bearer s3cr3t-token-value"


# -- errors --------------------------------------------------------------------------------


def test_forbidden_list_is_hub_forbidden_naming_the_call(api_server, api_client):
    message = (
        'manifestworks.work.open-cluster-management.io is forbidden: User "system:serviceaccount:'
        'fl-system:digits-fedavg-reconcile" cannot list resource "manifestworks" in API group '
        '"work.open-cluster-management.io" at the cluster scope'
    )
    api_server.fail(WORKS_PATH, 403, status_body(403, "Forbidden", message))
    hub = KubernetesHub(api_client)
    with pytest.raises(HubForbidden) as caught:
        hub.job_statuses(work_name=WORK, job_name=JOB, clusters=["c1"], experiment=EXPERIMENT)
    assert str(caught.value) == (
        f"hub {api_server.url}: list manifestworks in all namespaces (labelSelector "
        f"{WORKS_SELECTOR}): 403 Forbidden: "
        'manifestworks.work.open-cluster-management.io is forbidden: User "system:serviceaccount:'
        'fl-system:digits-fedavg-reconcile" cannot list resource "manifestworks" in API group '
        '"work.open-cluster-management.io" at the cluster scope'
    )
    assert isinstance(caught.value.__cause__, k8s.ApiException)
    assert caught.value.__cause__.status == 403


def test_unauthorized_is_hub_forbidden(api_server, api_client):
    api_server.fail(DECISIONS_PATH, 401, status_body(401, "Unauthorized", "Unauthorized"))
    with pytest.raises(HubForbidden) as caught:
        KubernetesHub(api_client).decided_clusters("fl-system", EXPERIMENT)
    assert str(caught.value) == (
        f"hub {api_server.url}: list placementdecisions in namespace fl-system (labelSelector "
        f"{SELECTOR}): 401 Unauthorized: Unauthorized (the hub rejected the credentials)"
    )


def test_missing_api_is_hub_not_found_but_a_missing_work_is_a_status(api_server, api_client):
    # no route at all: the server answers as when the ManifestWork CRD is not installed
    hub = KubernetesHub(api_client)
    with pytest.raises(HubNotFound) as caught:
        hub.decided_clusters("fl-system", EXPERIMENT)
    assert str(caught.value) == (
        f"hub {api_server.url}: list placementdecisions in namespace fl-system (labelSelector "
        f"{SELECTOR}): 404 Not Found: the server could not find the requested resource"
    )

    path = f"/apis/work.open-cluster-management.io/v1/namespaces/c1/manifestworks/{WORK}"
    api_server.fail(path, 404, status_body(404, "NotFound", "the server could not find it"))
    with pytest.raises(HubNotFound):
        hub.job_statuses(work_name=WORK, job_name=JOB, clusters=["c1"])


def test_server_error_is_hub_unavailable_with_the_retry_after_delay(api_server, tmp_path):
    api_server.fail(
        WORKS_PATH,
        503,
        status_body(503, "ServiceUnavailable", "etcdserver: leader changed"),
        {"Retry-After": "7"},
    )
    # from_config's client does not sleep through Retry-After: the pass gets the delay
    hub = KubernetesHub.from_config(_kubeconfig(tmp_path / "kubeconfig", api_server.url))
    with pytest.raises(HubUnavailable) as caught:
        hub.job_statuses(work_name=WORK, job_name=JOB, clusters=["c1"], experiment=EXPERIMENT)
    assert str(caught.value).endswith(": 503 Service Unavailable: etcdserver: leader changed")
    assert len(api_server.requests) == 1
    assert caught.value.delay == 7.0


def test_too_many_requests_is_hub_unavailable(api_server, api_client):
    api_server.fail(DECISIONS_PATH, 429, status_body(429, "TooManyRequests", "slow down"))
    with pytest.raises(HubUnavailable) as caught:
        KubernetesHub(api_client).decided_clusters("fl-system", EXPERIMENT)
    assert str(caught.value).endswith(": 429 Too Many Requests: slow down")
    assert caught.value.delay is None


def test_internal_error_body_is_trimmed_and_secrets_are_redacted(api_server, api_client):
    body = (
        "panic: token=abcd1234 Authorization: Bearer eyJhbGciOi.payload.sig "
        "dial https://admin:hunter2@etcd:2379 " + "stack " * 500
    )
    api_server.fail(DECISIONS_PATH, 500, body.encode())
    with pytest.raises(HubUnavailable) as caught:
        KubernetesHub(api_client).decided_clusters("fl-system", EXPERIMENT)
    text = str(caught.value)
    prefix = (
        f"hub {api_server.url}: list placementdecisions in namespace fl-system (labelSelector "
        f"{SELECTOR}): 500 Internal Server Error: "
    )
    assert text.startswith(prefix)
    detail = text[len(prefix) :]
    assert detail.startswith(
        "panic: token=<redacted> Authorization: Bearer <redacted> dial https://<redacted>@etcd"
    )
    assert len(detail) == 300 and detail.endswith("...")
    for secret in ("abcd1234", "eyJhbGciOi", "hunter2", "s3cr3t"):
        assert secret not in text


def test_conflict_is_hub_conflict(api_server, api_client):
    api_server.fail(WORKS_PATH, 409, status_body(409, "Conflict", "the object has been modified"))
    with pytest.raises(HubConflict):
        KubernetesHub(api_client).job_statuses(
            work_name=WORK, job_name=JOB, clusters=["c1"], experiment=EXPERIMENT
        )


def test_other_client_errors_are_plain_hub_errors(api_server, api_client):
    api_server.fail(DECISIONS_PATH, 400, status_body(400, "BadRequest", "bad selector"))
    with pytest.raises(HubError) as caught:
        KubernetesHub(api_client).decided_clusters("fl-system", EXPERIMENT)
    assert type(caught.value) is HubError
    assert str(caught.value).endswith(": 400 Bad Request: bad selector")


def test_connection_refused_is_hub_unavailable(api_client):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    configuration = k8s.Configuration(host=f"http://127.0.0.1:{port}")
    configuration.retries = 1
    hub = KubernetesHub(k8s.ApiClient(configuration))
    with pytest.raises(HubUnavailable) as caught:
        hub.decided_clusters("fl-system", EXPERIMENT)
    assert str(caught.value) == (
        f"hub http://127.0.0.1:{port}: list placementdecisions in namespace fl-system "
        f"(labelSelector {SELECTOR}): cannot reach the API server: connection refused"
    )
    assert caught.value.__cause__ is not None


def test_a_slow_server_is_hub_unavailable(api_server, api_client):
    import time

    def slow(request):
        time.sleep(1.0)
        return None

    api_server.overrides[DECISIONS_PATH] = slow
    api_server.add_list(DECISIONS_PATH, [])
    configuration = k8s.Configuration(host=api_server.url)
    configuration.retries = False
    hub = KubernetesHub(k8s.ApiClient(configuration), request_timeout=0.2)
    with pytest.raises(HubUnavailable) as caught:
        hub.decided_clusters("fl-system", EXPERIMENT)
    assert str(caught.value).endswith("cannot reach the API server: timed out")


# -- configuration -------------------------------------------------------------------------


def _kubeconfig(path: Path, server: str) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "hub", "cluster": {"server": server}}],
                "users": [{"name": "reader", "user": {"token": "kubeconfig-token"}}],
                "contexts": [
                    {"name": "hub-reader", "context": {"cluster": "hub", "user": "reader"}}
                ],
                "current-context": "hub-reader",
            }
        )
    )
    return path


def test_from_config_reads_a_kubeconfig_and_its_context(api_server, tmp_path):
    api_server.add_list(DECISIONS_PATH, [make_decision("digits-fedavg-decision-1", ["c1"])])
    config = _kubeconfig(tmp_path / "kubeconfig", api_server.url)
    hub = KubernetesHub.from_config(config, context="hub-reader", page_size=10)
    assert hub.decided_clusters("fl-system", EXPERIMENT) == ["c1"]
    assert api_server.requests[0].headers["authorization"] == "Bearer kubeconfig-token"
    assert api_server.requests[0].query["limit"] == "10"


def test_from_config_names_the_file_it_could_not_use(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(HubConfigError) as caught:
        KubernetesHub.from_config(missing)
    assert str(caught.value).startswith(f"cannot configure the hub client from {missing}: ")


def test_from_config_names_an_unknown_context(api_server, tmp_path):
    config = _kubeconfig(tmp_path / "kubeconfig", api_server.url)
    with pytest.raises(HubConfigError) as caught:
        KubernetesHub.from_config(config, context="prod")
    assert str(caught.value).startswith(
        f"cannot configure the hub client from {config}, context prod: "
    )


def test_in_a_pod_without_a_token_the_error_names_the_in_cluster_config(monkeypatch):
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    with pytest.raises(HubConfigError) as caught:
        KubernetesHub.from_config()
    assert str(caught.value).startswith(
        "cannot configure the hub client from the pod's ServiceAccount (in-cluster config): "
    )
