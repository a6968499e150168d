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
from typing import Any

import pytest

from fl_gitops.devhub import ApiServer, crd_objects, find_assets, install_crds
from fl_gitops.errors import InputError


@pytest.fixture(scope="session")
def apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    """A started API server with every vendored CRD installed and Established."""
    try:
        assets = find_assets()
    except InputError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI needs the real API server: {exc}")
        pytest.skip(str(exc))
    server = ApiServer(assets, workdir=tmp_path_factory.mktemp("apiserver"))
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
