"""What KubernetesHub sends for the shards' Job depends on the version the hub serves.

The real API server here is 1.20 (tests/apiserver/test_shard_job.py); newer ones cannot
run on these machines, so a small HTTP server stands in for them: it answers ``/version``
as a 1.21, 1.27+ (a managed offering's minor) or 1.30 server would, a GET of the Job with
the API server's own 404, and records the Job the hub POSTs. The client and the hub are
the real ones.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from fl_gitops.hub import HubConfigError, HubError, KubernetesHub, ShardJobSpec, ShardJobState

SPEC = ShardJobSpec(
    namespace="fl-system",
    name="exp-agg-r2-0123abcd",
    experiment="exp",
    round=2,
    shards=3,
    image="img:1",
    args=("aggregate", "--shard", "auto/3"),
    service_account="exp-aggregate",
    active_deadline_seconds=600,
    backoff_limit_per_index=2,
)
JOB_PATH = f"/apis/batch/v1/namespaces/{SPEC.namespace}/jobs"


@dataclass
class Server:
    url: str = ""
    version: dict[str, str] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)
    created: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server()

    class Handler(BaseHTTPRequestHandler):
        def _send(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            path = self.path.rstrip("/")  # the client asks for /version/
            state.paths.append(f"GET {path}")
            if path == "/version":
                self._send(200, state.version)
                return
            name = self.path.rsplit("/", 1)[-1]
            self._send(
                404,
                {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "message": f'jobs.batch "{name}" not found',
                    "reason": "NotFound",
                    "details": {"name": name, "group": "batch", "kind": "jobs"},
                    "code": 404,
                },
            )

        def do_POST(self) -> None:
            state.paths.append(f"POST {self.path}")
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.created.append(body)
            self._send(201, body)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


def _hub(url: str) -> KubernetesHub:
    from kubernetes import client as k8s

    configuration = k8s.Configuration()
    configuration.host = url
    return KubernetesHub(k8s.ApiClient(configuration))


def test_a_hub_before_1_29_gets_the_shared_retry_budget_and_the_pod_failure_policy(server):
    server.version = {"major": "1", "minor": "27+", "gitVersion": "v1.27.4-gke.900"}
    hub = _hub(server.url)

    assert hub.shard_job(SPEC) == ShardJobState(exists=True)
    (job,) = server.created
    assert hub.server_version() == (1, 27)
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["backoffLimit"] == 6
    assert "backoffLimitPerIndex" not in job["spec"]
    assert [r["action"] for r in job["spec"]["podFailurePolicy"]["rules"]] == ["Ignore", "FailJob"]
    assert server.paths == [
        "GET /version",
        f"GET {JOB_PATH}/{SPEC.name}",
        f"POST {JOB_PATH}",
    ]


def test_a_hub_from_1_29_gets_per_index_retries_and_its_version_is_read_once(server):
    server.version = {"major": "1", "minor": "30"}
    hub = _hub(server.url)

    hub.shard_job(SPEC)
    hub.shard_job(SPEC)

    assert [(j["spec"]["backoffLimitPerIndex"], j["spec"]["maxFailedIndexes"])
            for j in server.created] == [(2, 0), (2, 0)]  # fmt: skip
    assert "backoffLimit" not in server.created[0]["spec"]
    assert server.paths.count("GET /version") == 1


def test_a_hub_of_1_21_is_refused_before_any_job_call(server):
    server.version = {"major": "1", "minor": "21"}

    with pytest.raises(HubConfigError) as caught:
        _hub(server.url).shard_job(SPEC)

    assert str(caught.value) == (
        "spec.aggregation.shards > 1 needs Kubernetes 1.22 or newer for Indexed Jobs; "
        "this hub serves 1.21"
    )
    assert server.paths == ["GET /version"]


def test_a_version_answer_that_names_no_version_is_an_error_naming_the_hub(server):
    server.version = {"major": "", "minor": "x"}

    with pytest.raises(HubError) as caught:
        _hub(server.url).shard_job(SPEC)

    assert str(caught.value) == f"hub {server.url}: /version names no Kubernetes version"
    assert server.created == []
