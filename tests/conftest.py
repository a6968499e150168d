"""Fixtures the tests of more than one package share: model stores on every backend.

The store's own tests run on each of them (``any_store``); aggregation reads from a memory
store too.
"""

from __future__ import annotations

import importlib
import os
import signal
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from fl_gitops.store import ModelStore

# A shell starts a background command (`nohup .ci/run &`, a CI step without job control)
# with SIGINT ignored, and Python then keeps ignoring it, as does every process the tests
# start: the Ctrl-C tests would see nothing. Take Ctrl-C back, for us and our children.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _test_dependency(module: str) -> Any:
    """A test-extra package: skipped where it is missing, except in CI, where that fails."""
    if os.environ.get("CI"):
        return importlib.import_module(module)
    return pytest.importorskip(module)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on loopback, as s3fs's own tests run one."""
    moto_server = _test_dependency("moto.server")
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_store(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> ModelStore:
    """An empty bucket on the moto server, opened as an s3:// store."""
    s3fs = _test_dependency("s3fs")

    # moto accepts any credentials; set them so botocore never looks elsewhere.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    options = {"endpoint_url": s3_endpoint, "skip_instance_cache": True}
    bucket = f"fl-{uuid.uuid4().hex[:12]}"
    s3fs.S3FileSystem(**options).mkdir(bucket)
    return ModelStore.open(f"s3://{bucket}/experiment", options)


@pytest.fixture
def memory_store() -> Iterator[ModelStore]:
    """A fresh in-memory store (fsspec's memory filesystem is process-wide: clean it up)."""
    name = f"memory://fl-test-{uuid.uuid4().hex}"
    store = ModelStore.open(name)
    yield store
    if store.fs.exists(store.root):
        store.fs.rm(store.root, recursive=True)


@pytest.fixture(params=["file", "memory", "s3"])
def any_store(request: pytest.FixtureRequest, tmp_path) -> ModelStore:
    """The same tests on a local directory, fsspec's memory filesystem and moto's S3."""
    if request.param == "file":
        return ModelStore.open(str(tmp_path / "store"))
    if request.param == "memory":
        return request.getfixturevalue("memory_store")
    return request.getfixturevalue("s3_store")
