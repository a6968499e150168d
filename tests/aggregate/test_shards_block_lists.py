"""Updates named by their block list (``blake3-blocks:``, what clusters report now): a shard
reads only its slice of each one (and at most a block beyond each end, and the header's
block), checks every byte it reads against the list the store keeps beside the update, and
the round is one pod's round, bit for bit, rejections word for word.

Real parts: the model store on fsspec's memory filesystem (``put_update`` writes the lists
as a cluster's Job does), the shards' range reads counted read by read beneath the check.
Hostile parts: an update replaced in the store after its cluster reported (its list left
in place), one whose list is replaced along with it, one whose list is deleted, one with
bytes appended.
"""

from __future__ import annotations

import os
from typing import ClassVar

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fl_gitops.aggregate import Update, aggregate_round
from fl_gitops.aggregate._ranges import BlockCheckedFile
from fl_gitops.aggregate._shards import (
    RangeFile,
    StoreRangeFile,
    merge_shards,
    open_range,
)
from fl_gitops.reports import HubReport
from fl_gitops.store import ModelStore, block_list_path
from fl_gitops.tensors import BLOCK_BYTES, BlockList, read_header, serialize, update_block_list
from tests.aggregate.conftest import run_phases

SHAPES = {"a.weight": (700, 1000), "b.bias": (1000,), "c.weight": (300, 500)}  # ~3.4 MB
GRID = 1 << 14


def model(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {n: rng.normal(size=s).astype(np.float32) for n, s in SHAPES.items()}


class Served(StoreRangeFile):
    """Ranges the store served beneath the shard's checks, each one recorded."""

    log: ClassVar[list[tuple[str, int, int]]] = []

    def read(self, start: int, length: int) -> bytes:
        Served.log.append((self.path, start, length))
        return super().read(start, length)


def counting(path: str) -> RangeFile:
    return Served(path) if "://" in path else RangeFile(path)


@pytest.fixture
def store(tmp_path) -> ModelStore:
    return ModelStore.open(f"memory://blocks-{tmp_path.name}")


def put_round(store: ModelStore, tmp_path) -> tuple[str, list[Update]]:
    """Six updates in the store, each with its hub report, and the base model as a file."""
    base_bytes = serialize(model(0))
    base = store.put_model(base_bytes)
    path = tmp_path / "base.safetensors"
    path.write_bytes(base_bytes)
    updates = []
    for k in range(6):
        meta = {"base_model": base, "num_examples": 10 + k}
        record = store.put_update(1, f"c{k}", serialize(model(10 + k)), meta)
        report = HubReport(record["sha256"], 10 + k, {})
        updates.append(Update(f"c{k}", store.update_uri(1, f"c{k}"), record, report))
    return str(path), updates


def pod_round(store: ModelStore, base: str, updates: list[Update], tmp_path):
    """One pod's round on the same bytes (local copies: one pod reads local files)."""
    local = tmp_path / "pod"
    local.mkdir(exist_ok=True)
    copies = []
    for u in updates:
        path = local / f"{u.cluster}.safetensors"
        path.write_bytes(store.get_update(1, u.cluster))
        copies.append(Update(u.cluster, str(path), u.meta, u.reported))
    return aggregate_round(base, copies, strategy="fedavg", round=1, chunk_elements=GRID)


def run(base: str, updates: list[Update], out, of: int, me: int = -1, **kwargs):
    shards = run_phases(
        base, updates, out, of, opener_for=lambda i: counting if i == me else open_range,
        strategy="fedavg", chunk_elements=GRID, **kwargs,
    )  # fmt: skip
    return shards, merge_shards([out])


def ranges_of(store: ModelStore, cluster: str, pieces) -> list[tuple[int, int]]:
    """A shard's byte ranges in one update, widened to whole blocks."""
    with store.update_file(1, cluster) as path:
        header = read_header(path)
    out = []
    for p in pieces:
        info = header.tensors[p.name]
        item = info.np_dtype.itemsize
        lo, hi = info.start + p.start * item, info.start + p.stop * item
        out.append((lo // BLOCK_BYTES * BLOCK_BYTES, -(-hi // BLOCK_BYTES) * BLOCK_BYTES))
    return out


def test_a_shard_reads_its_slice_and_a_block_at_each_end_and_gives_one_pods_bytes(
    store, tmp_path, monkeypatch
):
    import fl_gitops.aggregate._shards as shards_module

    whole: list[str] = []  # files some shard had to read whole to check them
    real = shards_module.whole_digest
    monkeypatch.setattr(
        shards_module,
        "whole_digest",
        lambda path, expected: whole.append(path) or real(path, expected),
    )
    base, updates = put_round(store, tmp_path)
    pod = pod_round(store, base, updates, tmp_path)
    assert pod.rejected == {}
    of, me = 3, 1
    Served.log = []
    shards, merged = run(base, updates, tmp_path / "s", of, me)
    assert merged.model == pod.model and merged.record == pod.record
    assert whole == []
    size = len(store.get_update(1, "c0"))
    for u in updates:
        ranges = ranges_of(store, u.cluster, shards[me].pieces)
        reads = [(a, n) for p, a, n in Served.log if p == u.path]
        header_block = (0, BLOCK_BYTES)
        for a, n in reads:
            assert any(lo <= a and a + n <= hi for lo, hi in [*ranges, header_block]), (a, n)
        served = sum(n for _, n in reads)
        # Its slice once (checked and summed in one read), plus the header's block, and the
        # blocks its slice's ends fall in: far from the whole file.
        slice_bytes = sum(hi - lo for lo, hi in ranges)
        assert served <= slice_bytes + BLOCK_BYTES
        assert served < 0.6 * size


@pytest.mark.parametrize("of", [2, 3])
def test_replaced_bytes_or_lists_are_refused_as_one_pod_refuses_them(store, tmp_path, of):
    base, updates = put_round(store, tmp_path)
    fs, root = store.fs, store.update_uri(1, "c0").rsplit("/", 1)[0].split("://", 1)[1]

    def replace(cluster: str, data: bytes, with_list: bool | None) -> None:
        fs.pipe_file(f"{root}/{cluster}.safetensors", data)
        where = block_list_path(f"{root}/{cluster}.safetensors")
        if with_list is None:
            fs.rm_file(where)
        elif with_list:
            fs.pipe_file(where, update_block_list(data)[1])

    other = serialize(model(99))
    # A bucket writer's work after the clusters reported (the hub's reports stay theirs):
    replace("c1", other, with_list=False)  # the bytes, the list left as it was
    replace("c2", other, with_list=True)  # the bytes and a list that matches them
    replace("c3", store.get_update(1, "c3"), with_list=None)  # its list deleted: intact
    replace("c4", store.get_update(1, "c4") + b"\0" * 10, with_list=False)  # bytes appended
    pod = pod_round(store, base, updates, tmp_path)
    assert sorted(pod.rejected) == ["c1", "c2", "c4"]
    for cluster in ("c1", "c2"):
        assert update_block_list(other)[0] in pod.rejected[cluster]
    _, merged = run(base, updates, tmp_path / f"s{of}", of)
    assert merged.rejected == pod.rejected
    assert merged.model == pod.model and merged.record == pod.record


def test_a_list_that_is_a_fifo_a_link_or_too_long_is_never_waited_on_nor_trusted(
    tmp_path, monkeypatch
):
    """A bucket writer's traps in a local store: each update is then checked whole (and,
    its bytes being intact, accepted), and no shard blocks on a FIFO or follows a link."""
    import fl_gitops.aggregate._shards as shards_module

    store = ModelStore.open(f"file://{tmp_path / 'store'}")
    base, updates = put_round(store, tmp_path)
    where = tmp_path / "store" / "rounds" / "1" / "updates"
    (where / "c1.blocks").unlink()
    os.mkfifo(where / "c1.blocks")
    (where / "c2.blocks").unlink()
    (where / "c2.blocks").symlink_to(where / "c0.blocks")
    with open(where / "c3.blocks", "ab") as f:
        f.write(b"\0")
    whole: list[str] = []
    real = shards_module.whole_digest
    monkeypatch.setattr(
        shards_module,
        "whole_digest",
        lambda path, expected: whole.append(path) or real(path, expected),
    )
    pod = pod_round(store, base, updates, tmp_path)
    _, merged = run(base, updates, tmp_path / "s", 2)
    assert merged.rejected == pod.rejected == {}
    assert merged.model == pod.model
    assert sorted({p.rsplit("/", 1)[-1] for p in whole}) == [
        "c1.safetensors",
        "c2.safetensors",
        "c3.safetensors",
    ]


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(1, 5 * BLOCK_BYTES),
    reads=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 2 * BLOCK_BYTES)), max_size=12),
    sequential=st.booleans(),
)
def test_checked_reads_give_the_files_bytes_whatever_the_ranges(size, reads, sequential):
    """In order (as a shard reads its slice, each read starting in the block the last
    ended in) or anywhere, every range is the file's bytes."""
    import tempfile

    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    digest, listed = update_block_list(data)
    with tempfile.NamedTemporaryFile() as f:
        f.write(data)
        f.flush()
        checked = BlockCheckedFile(RangeFile(f.name), BlockList.parse(listed, digest))
        at = 0
        for where, length in reads:
            start = at if sequential else int(where * (size - 1))
            length = min(length, size - start)
            assert checked.read(start, length) == data[start : start + length]
            at = start + length
            if at >= size:
                break
