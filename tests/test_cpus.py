"""A pod's CPU limit, not its node's core count, sizes the reader threads."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fl_gitops import _cpus


def _v2(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cpu.max"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "cores"),
    [
        ("max 100000\n", None),  # no limit
        ("100000 100000\n", 1),
        ("150000 100000\n", 2),  # 1.5 cores keep two threads busy half the time
        ("50000 100000\n", 1),  # under one core is still one thread
        ("400000 100000\n", 4),
        ("garbage\n", None),
    ],
)
def test_cgroup_v2_quota(tmp_path: Path, text: str, cores: int | None) -> None:
    missing = (tmp_path / "q", tmp_path / "p")
    assert _cpus._quota_cores(_v2(tmp_path, text), missing) == cores


def test_cgroup_v1_quota_when_v2_is_absent(tmp_path: Path) -> None:
    quota, period = tmp_path / "quota", tmp_path / "period"
    period.write_text("100000\n")
    quota.write_text("-1\n")
    assert _cpus._quota_cores(tmp_path / "absent", (quota, period)) is None
    quota.write_text("200000\n")
    assert _cpus._quota_cores(tmp_path / "absent", (quota, period)) == 2


def test_no_cgroup_files_means_no_quota(tmp_path: Path) -> None:
    assert _cpus._quota_cores(tmp_path / "a", (tmp_path / "b", tmp_path / "c")) is None


def test_usable_cores_is_the_quota_when_it_is_below_the_affinity(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    affinity = len(os.sched_getaffinity(0))
    monkeypatch.setattr(_cpus, "_quota_cores", lambda: 1)
    assert _cpus.usable_cores() == 1
    monkeypatch.setattr(_cpus, "_quota_cores", lambda: affinity + 8)
    assert _cpus.usable_cores() == affinity
    monkeypatch.setattr(_cpus, "_quota_cores", lambda: None)
    assert _cpus.usable_cores() == affinity


def test_lockstep_starts_no_more_readers_than_the_quota(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    from fl_gitops.tensors import Lockstep, read_header, serialize

    paths = []
    for i in range(4):
        path = tmp_path / f"u{i}.safetensors"
        path.write_bytes(serialize({"w": np.full(64, i, dtype=np.float32)}))
        paths.append(path)
    headers = [read_header(p) for p in paths]
    monkeypatch.setattr(_cpus, "_quota_cores", lambda: 1)
    assert Lockstep(paths, headers, slot_bytes=256).readers == 1
    monkeypatch.setattr(_cpus, "_quota_cores", lambda: None)
    expected = min(4, len(os.sched_getaffinity(0)))
    assert Lockstep(paths, headers, slot_bytes=256).readers == expected
