"""Fixtures for the aggregation tests: one round's base model and updates, as files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fl_gitops.aggregate import Update
from fl_gitops.tensors import serialize, sha256_digest


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


def run_phases(
    base: str | Path,
    updates: list[Any],
    out: Path,
    of: int,
    opener_for: Callable[[int], Any] | None = None,
    **kwargs: Any,
) -> list[Any]:
    """Every shard's phases in turn, as N pods would run them side by side (shard i reads
    through ``opener_for(i)`` when given); the shards, for a merge or a look at them."""
    from fl_gitops.aggregate._shards import Shard, shard_combine

    out.mkdir()
    shards = []
    for i in range(of):
        opener = {} if opener_for is None else {"opener": opener_for(i)}
        shards.append(Shard(base, updates, round=1, shard=i, of=of, out=out, **opener, **kwargs))
    for s in shards:
        s.stats()
    kept = [s.reduce() for s in shards]
    for s, k in zip(shards, kept, strict=True):
        s.partials(k)
    for s, k in zip(shards, kept, strict=True):
        shard_combine(s, k, wait=lambda paths: None)
    return shards
