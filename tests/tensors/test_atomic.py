"""Files are written whole or not at all, and flushed to disk before they take the name."""

from __future__ import annotations

import os
import stat

import pytest

import fl_gitops.tensors._atomic as atomic
from fl_gitops.tensors import replaced_atomically, write_atomic


def test_a_written_file_is_flushed_before_it_is_renamed_into_place(tmp_path, monkeypatch):
    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd)))
    monkeypatch.setattr(
        atomic.os, "replace", lambda a, b: (events.append("replace"), real_replace(a, b))
    )
    path = tmp_path / "deep" / "model.safetensors"
    write_atomic(path, b"whole")
    assert path.read_bytes() == b"whole"
    # The file, then the rename, then its directory.
    assert events == ["fsync", "replace", "fsync"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.safetensors"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "record.yaml"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), replaced_atomically(path) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["record.yaml"]


def test_the_temporary_is_hidden_beside_the_destination(tmp_path):
    path = tmp_path / "update.safetensors"
    with replaced_atomically(path) as tmp:
        assert tmp.parent == tmp_path
        assert tmp.name.startswith(".update.safetensors.") and tmp.name.endswith(".tmp")
        tmp.write_bytes(b"x")
    assert path.read_bytes() == b"x"
