"""Fixtures for the hub tests: a fake API server, ManifestWork builders, rendered works.

No API server can run here, so the real ``kubernetes`` client is pointed at a small HTTP
server on 127.0.0.1 that answers the two OCM paths the hub reads the way the API server
does: list objects filtered by a label selector and paged by ``limit`` and ``continue``,
GET one object, Status objects for errors. It records every request it got. The
ManifestWork and PlacementDecision fixtures are checked against the vendored CRDs.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import json
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema
import pytest
import yaml
from kubernetes import client as k8s

from fl_gitops.cli import main as cli_main
from fl_gitops.validate import crd_schema

WORKS_PATH = "/apis/work.open-cluster-management.io/v1/manifestworks"
DECISIONS_PATH = (
    "/apis/cluster.open-cluster-management.io/v1beta1/namespaces/fl-system/placementdecisions"
)
PLACEMENT_LABEL = "cluster.open-cluster-management.io/placement"
EXPERIMENT = "digits-fedavg"
WORK = "fl-digits-fedavg"
REPO = Path(__file__).resolve().parents[2]
T0 = "2026-11-01T10:00:00Z"


# -- CRD validation ---------------------------------------------------------------------


def _validator(api_version: str, kind: str) -> jsonschema.protocols.Validator:
    schema = crd_schema(api_version, kind)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


_VALIDATORS: dict[str, jsonschema.protocols.Validator] = {}


def assert_valid(obj: dict[str, Any]) -> None:
    """Fail when ``obj`` does not validate against its vendored CRD (unknown fields too)."""
    key = f"{obj['apiVersion']}/{obj['kind']}"
    if key not in _VALIDATORS:
        _VALIDATORS[key] = _validator(obj["apiVersion"], obj["kind"])
    errors = sorted(_VALIDATORS[key].iter_errors(obj), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors
    )


# -- real-shaped objects ---------------------------------------------------------------


def condition(type_: str, status: str, reason: str, message: str, generation: int | None):
    cond = {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": T0,
    }
    if generation is not None:
        cond["observedGeneration"] = generation
    return cond


def integer(name: str, value: int) -> dict[str, Any]:
    return {"name": name, "fieldValue": {"type": "Integer", "integer": value}}


def string(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "fieldValue": {"type": "String", "string": value}}


# What the work agent reports for the rendered Job, per outcome (WellKnownStatus first,
# then the JSONPaths rules; a path that finds nothing gives no value).
SUCCEEDED = [string("JobComplete", "True"), integer("JobSucceeded", 1), integer("succeeded", 1)]
FAILED = [integer("failed", 1), string("JobFailed", "True")]
RUNNING: list[dict[str, Any]] = []


def make_work(
    cluster: str,
    *,
    round_: int = 3,
    generation: int = 3,
    observed: int | None = 3,
    job: str | None = None,
    values: list[dict[str, Any]] | None = None,
    applied: bool = True,
    feedback_synced: bool | None = True,
    status: bool = True,
    experiment: str = EXPERIMENT,
) -> dict[str, Any]:
    """A ManifestWork like the renderer's, with a status like the work agent's.

    ``job`` is the Job named in the status (default: the spec's); ``values`` None means
    the Job has no entry in ``resourceStatus`` yet; ``feedback_synced`` None means the
    agent applied the Job but has not read its status yet.
    """
    spec_job = f"fl-{experiment}-r{round_}"
    status_job = job or spec_job
    work: dict[str, Any] = {
        "apiVersion": "work.open-cluster-management.io/v1",
        "kind": "ManifestWork",
        "metadata": {
            "name": f"fl-{experiment}",
            "namespace": cluster,
            "uid": f"00000000-0000-4000-8000-{zlib.crc32(cluster.encode()):012d}",
            "resourceVersion": str(1000 + generation),
            "generation": generation,
            "creationTimestamp": T0,
            "labels": {
                "app.kubernetes.io/managed-by": "fl-gitops",
                "fl-gitops.io/experiment": experiment,
                "fl-gitops.io/round": str(round_),
            },
        },
        "spec": {
            "manifestConfigs": [
                {
                    "resourceIdentifier": {
                        "group": "batch",
                        "resource": "jobs",
                        "name": spec_job,
                        "namespace": "fl-gitops",
                    },
                    "feedbackRules": [
                        {"type": "WellKnownStatus"},
                        {
                            "type": "JSONPaths",
                            "jsonPaths": [
                                {"name": "failed", "path": ".status.failed"},
                                {"name": "succeeded", "path": ".status.succeeded"},
                                {
                                    "name": "JobFailed",
                                    "path": '.status.conditions[?(@.type=="Failed")].status',
                                },
                            ],
                        },
                    ],
                }
            ],
            "workload": {
                "manifests": [
                    {
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {"name": spec_job, "namespace": "fl-gitops"},
                        "data": {"round.json": "{}"},
                    },
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "metadata": {"name": spec_job, "namespace": "fl-gitops"},
                        "spec": {
                            "backoffLimit": 0,
                            "template": {
                                "spec": {
                                    "restartPolicy": "Never",
                                    "containers": [{"name": "client", "image": "fl:0"}],
                                }
                            },
                        },
                    },
                ]
            },
        },
    }
    if not status:
        return work
    applied_status = "True" if applied else "False"
    applied_reason = "AppliedManifestWorkComplete" if applied else "AppliedManifestWorkFailed"
    applied_message = "Apply manifest work complete" if applied else "Failed to apply manifest work"
    conditions = [
        condition("Applied", applied_status, applied_reason, applied_message, observed),
        condition(
            "Available", "True", "ResourcesAvailable", "All resources are available", observed
        ),
    ]
    manifests: list[dict[str, Any]] = [
        {
            "resourceMeta": {
                "ordinal": 0,
                "group": "",
                "version": "v1",
                "kind": "ConfigMap",
                "resource": "configmaps",
                "name": status_job,
                "namespace": "fl-gitops",
            },
            "conditions": [
                condition(
                    "Applied", "True", "AppliedManifestComplete", "Apply manifest complete", None
                ),
                condition("Available", "True", "ResourceAvailable", "Resource is available", None),
                condition("StatusFeedbackSynced", "True", "NoStatusFeedbackSynced", "", None),
            ],
            "statusFeedback": {},
        }
    ]
    if values is not None:
        job_conditions = [
            condition(
                "Applied", "True", "AppliedManifestComplete", "Apply manifest complete", None
            ),
            condition("Available", "True", "ResourceAvailable", "Resource is available", None),
        ]
        if feedback_synced is not None:
            job_conditions.append(
                condition(
                    "StatusFeedbackSynced",
                    "True" if feedback_synced else "False",
                    "StatusFeedbackSynced" if feedback_synced else "StatusFeedbackSyncFailed",
                    "" if feedback_synced else "Sync status feedback failed with error boom",
                    None,
                )
            )
        manifests.append(
            {
                "resourceMeta": {
                    "ordinal": 1,
                    "group": "batch",
                    "version": "v1",
                    "kind": "Job",
                    "resource": "jobs",
                    "name": status_job,
                    "namespace": "fl-gitops",
                },
                "conditions": job_conditions,
                "statusFeedback": {"values": values} if values else {},
            }
        )
    work["status"] = {"conditions": conditions, "resourceStatus": {"manifests": manifests}}
    return work


def make_decision(name: str, clusters: list[str], placement: str = EXPERIMENT) -> dict[str, Any]:
    """A PlacementDecision page as OCM's placement controller writes it."""
    return {
        "apiVersion": "cluster.open-cluster-management.io/v1beta1",
        "kind": "PlacementDecision",
        "metadata": {
            "name": name,
            "namespace": "fl-system",
            "uid": f"00000000-0000-4000-8000-{zlib.crc32(name.encode()):012d}",
            "resourceVersion": "77",
            "creationTimestamp": T0,
            "labels": {
                PLACEMENT_LABEL: placement,
                "cluster.open-cluster-management.io/decision-group-index": "0",
                "cluster.open-cluster-management.io/decision-group-name": "",
            },
            "ownerReferences": [
                {
                    "apiVersion": "cluster.open-cluster-management.io/v1beta1",
                    "kind": "Placement",
                    "name": placement,
                    "uid": "00000000-0000-4000-8000-000000000001",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "status": {"decisions": [{"clusterName": c, "reason": ""} for c in clusters]},
    }


def status_body(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    """A metav1.Status as the API server sends with an error."""
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details is not None:
        body["details"] = details
    return body


# -- the fake API server ----------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeApiServer:
    """Answers list and GET calls from registered objects; records every request."""

    url: str = ""
    requests: list[Request] = field(default_factory=list)
    lists: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    # path -> (status, body, headers), served before anything else; a callable gets
    # the request and returns such a tuple or None to fall through
    overrides: dict[str, Any] = field(default_factory=dict)

    def add_list(self, path: str, items: list[dict[str, Any]]) -> None:
        self.lists[path] = [copy.deepcopy(i) for i in items]

    def add_object(self, path: str, obj: dict[str, Any]) -> None:
        self.objects[path] = copy.deepcopy(obj)

    def fail(self, path: str, code: int, body: Any, headers: dict[str, str] | None = None):
        self.overrides[path] = (code, body, headers or {})

    def answer(self, request: Request) -> tuple[int, Any, dict[str, str]]:
        override = self.overrides.get(request.path)
        if callable(override):
            override = override(request)
        if override is not None:
            return override
        if request.path in self.lists:
            return self._list(request)
        if request.path in self.objects:
            return 200, self.objects[request.path], {}
        if request.path.startswith(WORKS_PATH.replace("/manifestworks", "/namespaces/")):
            name = request.path.rsplit("/", 1)[-1]
            return (
                404,
                status_body(
                    404,
                    "NotFound",
                    f'manifestworks.work.open-cluster-management.io "{name}" not found',
                    {
                        "name": name,
                        "group": "work.open-cluster-management.io",
                        "kind": "manifestworks",
                    },
                ),
                {},
            )
        return (
            404,
            status_body(404, "NotFound", "the server could not find the requested resource"),
            {},
        )

    def _list(self, request: Request) -> tuple[int, Any, dict[str, str]]:
        items = self.lists[request.path]
        selector = request.query.get("labelSelector", "")
        if selector:
            key, _, value = selector.partition("=")
            items = [i for i in items if i["metadata"].get("labels", {}).get(key) == value]
        start = 0
        if "continue" in request.query:
            start = int(base64.b64decode(request.query["continue"]).decode().split(":")[1])
        limit = int(request.query.get("limit", 0)) or len(items)
        page = items[start : start + limit]
        meta: dict[str, Any] = {"resourceVersion": "500"}
        if start + limit < len(items):
            meta["continue"] = base64.b64encode(f"offset:{start + limit}".encode()).decode()
            meta["remainingItemCount"] = len(items) - start - limit
        kind = "ManifestWorkList" if "manifestworks" in request.path else "PlacementDecisionList"
        group = request.path.split("/")[2]
        version = request.path.split("/")[3]
        return (
            200,
            {
                "apiVersion": f"{group}/{version}",
                "kind": kind,
                "metadata": meta,
                "items": page,
            },
            {},
        )


@pytest.fixture
def api_server() -> Iterator[FakeApiServer]:
    fake = FakeApiServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            request = Request(
                "GET", parts.path, query, {k.lower(): v for k, v in self.headers.items()}
            )
            fake.requests.append(request)
            code, body, headers = fake.answer(request)
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            # the client may have given up first (the timeout test)
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(data)

        def log_message(self, *args: Any) -> None:  # keep pytest output clean
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: Any, client_address: Any) -> None:
            pass  # a client that hung up is not a test failure; assertions are

    server = Server(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def api_client(api_server: FakeApiServer) -> Iterator[k8s.ApiClient]:
    configuration = k8s.Configuration(host=api_server.url)
    configuration.api_key = {"BearerToken": "Bearer s3cr3t-token-value"}
    with k8s.ApiClient(configuration) as client:
        yield client


# -- rendered works ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def render_round(tmp_path_factory) -> Callable[[int], list[dict[str, Any]]]:
    """Render the reference blueprint's round N over a 12-cluster fleet; its works."""
    root = tmp_path_factory.mktemp("rendered")
    inventory = root / "fleet.yaml"
    assert (
        cli_main(
            [
                "inventory",
                str(REPO / "blueprints/digits-fedavg.yaml"),
                "--clusters",
                "12",
                "--out",
                str(inventory),
            ]
        )
        == 0
    )
    cache: dict[int, list[dict[str, Any]]] = {}

    def render(round_: int) -> list[dict[str, Any]]:
        if round_ not in cache:
            out = root / f"round-{round_}"
            args = [
                "render",
                str(REPO / "blueprints/digits-fedavg.yaml"),
                "--inventory",
                str(inventory),
            ]
            assert cli_main([*args, "--out", str(out), "--round", str(round_)]) == 0
            works = sorted((out / "experiments" / EXPERIMENT / "works").glob("*.yaml"))
            cache[round_] = [yaml.safe_load(p.read_text()) for p in works]
        return copy.deepcopy(cache[round_])

    return render
