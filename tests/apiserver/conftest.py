"""One real kube-apiserver (with etcd) for the whole test run, with OCM's and Argo CD's CRDs.

The binaries come the envtest way (``KUBEBUILDER_ASSETS``, or the cache that
``.ci/kube-assets`` builds). Without them a local run skips these tests with one line that
says how to get them; in CI (``CI`` set) a server that cannot start fails the run instead,
so the hub side is never silently untested.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fl_gitops.devhub import ApiServer, KubeAssets, crd_objects, find_assets, install_crds
from fl_gitops.errors import InputError

HERE = Path(__file__).resolve().parent
try:
    ASSETS: KubeAssets | None = find_assets()
    MISSING = ""
except InputError as exc:
    ASSETS, MISSING = None, str(exc)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without the binaries: fail in CI, else skip this folder's tests (said once, below)."""
    if ASSETS is not None:
        return
    if os.environ.get("CI"):
        raise pytest.UsageError(f"CI needs the real API server for tests/apiserver: {MISSING}")
    skip = pytest.mark.skip(reason="no kube-apiserver (see the line above the summary)")
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if ASSETS is None:
        terminalreporter.write_line(f"tests/apiserver skipped: {MISSING}")


@pytest.fixture(scope="session")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """A started API server with every vendored CRD installed and Established."""
    assert ASSETS is not None
    server = ApiServer(ASSETS, workdir=tmp_path_factory.mktemp("apiserver"))
    server.start()
    try:
        with server.api_client() as client:
            install_crds(client, crd_objects())
        yield server
    finally:
        server.stop()


@pytest.fixture
def admin(apiserver: ApiServer) -> Iterator[Any]:
    """An administrator's ``kubernetes.client.ApiClient``."""
    with apiserver.api_client() as client:
        yield client


@pytest.fixture
def namespace(admin: Any) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards."""
    from kubernetes import client as k8s

    name = f"t-{uuid.uuid4().hex[:10]}"
    core = k8s.CoreV1Api(admin)
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)
