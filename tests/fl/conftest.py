"""Fixtures for the FL tests: stores on every backend, and tiny safetensors models."""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fl_gitops.fl.aggregate import Update
from fl_gitops.fl.store import ModelStore
from fl_gitops.tensors import serialize, sha256_digest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on loopback, as s3fs's own tests run one."""
    moto_server = pytest.importorskip("moto.server")
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
    pytest.importorskip("s3fs")
    import s3fs

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


class RoundFiles:
    """Writes a base model and updates for one round into a directory, as clients would."""

    def __init__(self, directory: Path, base: dict[str, np.ndarray], round_: int = 1) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.round = round_
        self.base_bytes = serialize(base)
        self.base_path = self.dir / "base.safetensors"
        self.base_path.write_bytes(self.base_bytes)
        self.base_digest = sha256_digest(self.base_bytes)
        self.updates_dir = self.dir / "updates"
        self.updates_dir.mkdir(exist_ok=True)
        self.written: dict[str, Update] = {}

    def updates(self) -> list[Update]:
        """Every update written so far, in the order written."""
        return list(self.written.values())

    def meta(self, cluster: str, data: bytes, **overrides: Any) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "round": self.round,
            "cluster": cluster,
            "base_model": self.base_digest,
            "num_examples": 1,
            "metrics": {},
            "sha256": sha256_digest(data),
            "fl_gitops_version": "test",
        }
        meta.update(overrides)
        return meta

    def add(
        self,
        cluster: str,
        tensors: dict[str, np.ndarray] | None = None,
        *,
        data: bytes | None = None,
        **meta_overrides: Any,
    ) -> Update:
        """Write ``<cluster>.safetensors`` (from tensors, or raw bytes) and its JSON."""
        if data is None:
            assert tensors is not None
            data = serialize(tensors)
        path = self.updates_dir / f"{cluster}.safetensors"
        path.write_bytes(data)
        meta = self.meta(cluster, data, **meta_overrides)
        (self.updates_dir / f"{cluster}.json").write_text(json.dumps(meta))
        self.written[cluster] = Update(cluster, str(path), meta)
        return self.written[cluster]


@pytest.fixture
def round_files(tmp_path: Path) -> Callable[..., RoundFiles]:
    """``round_files(base_tensors, round_=1)`` -> a RoundFiles in a fresh directory."""
    counter = iter(range(1_000_000))

    def make(base: dict[str, np.ndarray], round_: int = 1) -> RoundFiles:
        return RoundFiles(tmp_path / f"round-{next(counter)}", base, round_)

    return make


def f32(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)
