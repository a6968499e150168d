"""Reads land in step with the file: a chunk's address matches its file offset modulo a
cache line, whatever the header's length, and the values are the file's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fl_gitops.tensors import (
    LINE,
    Lockstep,
    TensorReader,
    aligned_empty,
    digest_file,
    in_step,
    read_header,
    serialize,
    sha256_digest,
)


def test_aligned_empty_starts_on_a_page_and_in_step_matches_the_offset() -> None:
    buf = aligned_empty(1000)
    assert buf.ctypes.data % 4096 == 0
    assert buf.nbytes >= 1000 + LINE - 1
    for offset in (0, 1, 16, 63, 64, 4096 + 17):
        view = in_step(buf, offset, 1000)
        assert view.nbytes == 1000
        assert (view.ctypes.data - offset) % LINE == 0


@pytest.mark.parametrize("name_len", [1, 5, 13, 40])
def test_lockstep_and_reader_chunks_are_in_step_and_exact(tmp_path: Path, name_len: int) -> None:
    # Names of different lengths move the data's start within a cache line.
    rng = np.random.default_rng(name_len)
    tensors = {
        "a" * name_len: rng.standard_normal(3001, dtype=np.float32),
        "b" * name_len: rng.standard_normal(777, dtype=np.float32),
    }
    paths = []
    for i in range(3):
        path = tmp_path / f"u{i}.safetensors"
        data = serialize({n: a + i for n, a in tensors.items()})
        path.write_bytes(data)
        paths.append(path)
    headers = [read_header(p) for p in paths]
    seen: dict[tuple[int, str], list[np.ndarray]] = {}
    with Lockstep(paths, headers, slot_bytes=1024, max_elements=256) as lockstep:
        for name, offset, views in lockstep.chunks():
            for i, view in enumerate(views):
                at = headers[i].tensors[name].start + offset * 4
                assert (view.ctypes.data - at) % LINE == 0
                seen.setdefault((i, name), []).append(view.copy())
        digests = lockstep.digests()
    for i, path in enumerate(paths):
        assert digests[i] == sha256_digest(path.read_bytes())
        for name, values in tensors.items():
            np.testing.assert_array_equal(np.concatenate(seen[(i, name)]), values + i)
    with TensorReader(paths[1]) as reader:
        name = "a" * name_len
        got = reader.range(name, 5, 100)
        assert (got.ctypes.data - (reader.header.tensors[name].start + 20)) % LINE == 0
        np.testing.assert_array_equal(got, tensors[name][5:105] + 1)
    assert digest_file(paths[2], "sha256") == sha256_digest(paths[2].read_bytes())
