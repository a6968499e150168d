"""The safetensors header is parsed with bounds before any of it is trusted."""

from __future__ import annotations

import json

import numpy as np
import pytest
import safetensors.numpy

from fl_gitops.tensors import (
    HeaderError,
    TensorReader,
    load,
    load_bytes,
    parse_header,
    read_header,
    serialize,
)


def header_bytes(doc: dict, data: bytes = b"") -> bytes:
    text = json.dumps(doc).encode()
    return len(text).to_bytes(8, "little") + text + data


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "file is 0 bytes, too short for a header"),
        (b"\x05\x00", "file is 2 bytes, too short for a header"),
        (
            (10**9).to_bytes(8, "little") + b"{}",
            "header length 1000000000 does not fit in the file (10 bytes): truncated, "
            "or not safetensors",
        ),
        ((3).to_bytes(8, "little") + b"\xff\xfe\xfd", "header is not valid UTF-8 JSON"),
        (header_bytes([]), "header is not a JSON object"),
        (
            header_bytes({"__metadata__": {"a": 1}}),
            "__metadata__ is not a map of strings to strings",
        ),
        (
            header_bytes({"x": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}}, b"a"),
            "tensor 'x': dtype 'F8_E4M3' is not supported",
        ),
        (
            header_bytes({"x": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"abcd"),
            "tensor 'x': shape is not a list of sizes",
        ),
        (
            header_bytes({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"abcd"),
            "tensor 'x': 4 bytes for shape [2] of F32, expected 8",
        ),
        (
            header_bytes({"x": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}, b"abcd"),
            "tensor 'x': data_offsets is not [begin, end]",
        ),
        (
            header_bytes({"x": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"abcdef"),
            "2 bytes after the last tensor",
        ),
    ],
)
def test_malformed_headers_give_a_reason(data, reason):
    with pytest.raises(HeaderError) as exc:
        parse_header(data, len(data))
    assert str(exc.value) == reason


def test_serialize_is_deterministic_and_readable_by_safetensors():
    tensors = {
        "z": np.arange(6, dtype=np.float32).reshape(2, 3),
        "a": np.array([1, 2], dtype=np.int64),
        "m": np.array([True, False]),
        "e": np.zeros((0, 3), dtype=np.float16),
    }
    data = serialize(tensors)
    assert data == serialize(dict(reversed(list(tensors.items()))))
    n = int.from_bytes(data[:8], "little")
    assert (8 + n) % 8 == 0
    assert list(json.loads(data[8 : 8 + n])) == ["a", "e", "m", "z"]
    theirs = safetensors.numpy.load(data)
    for name, arr in tensors.items():
        np.testing.assert_array_equal(theirs[name], arr)
        np.testing.assert_array_equal(load_bytes(data)[name], arr)


def test_files_written_by_safetensors_are_read_back(tmp_path):
    tensors = {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.ones(3, np.float64)}
    path = tmp_path / "m.safetensors"
    safetensors.numpy.save_file(tensors, str(path), metadata={"format": "np"})
    header = read_header(path)
    assert header.signature() == {"b": ("F64", (3,)), "w": ("F32", (3, 4))}
    assert header.metadata == {"format": "np"}
    loaded = load(path)
    for name, arr in tensors.items():
        np.testing.assert_array_equal(loaded[name], arr)


def test_chunks_cover_a_tensor_in_order(tmp_path):
    path = tmp_path / "m.safetensors"
    path.write_bytes(serialize({"w": np.arange(10, dtype=np.float32)}))
    with TensorReader(path) as reader:
        seen = [(offset, chunk.copy().tolist()) for offset, chunk in reader.chunks("w", 4)]
        assert reader.range("w", 3, 2).tolist() == [3.0, 4.0]
    assert seen == [(0, [0, 1, 2, 3]), (4, [4, 5, 6, 7]), (8, [8, 9])]


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ({"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}, "data starts at 4"),
        ({"dtype": "PLANTED-" + "z" * 50, "shape": [1], "data_offsets": [0, 4]}, "dtype is"),
        ({"dtype": "F32", "shape": ["PLANTED"], "data_offsets": [0, 4]}, "shape is"),
        ({"dtype": "F32", "shape": [1], "data_offsets": ["PLANTED", 4]}, "data_offsets is"),
    ],
)
def test_a_header_reason_never_shows_what_the_file_planted(entry, reason):
    # A name no tensor has, and values that are not what the format allows.
    name = "PLANTED\n" + "x" * 500
    with pytest.raises(HeaderError) as exc:
        parse_header(header_bytes({name: entry}, b"\0" * 8), 8 + len(json.dumps({name: entry})) + 8)
    assert "PLANTED" not in str(exc.value)
    assert str(exc.value).startswith("tensor (a name not shown): ")
    assert reason in str(exc.value)
