"""One cluster's broken files never stop a round: each rejects that cluster, with its reason.

A real local store on disk, written as clients write it, then one cluster's files broken the
ways a fault or a party with write access to the store would break them: gone, a link
(dangling, or to another cluster's file), a FIFO, a directory, a device, metadata too large,
too deep or not UTF-8. The round aggregates the rest, and no byte of a broken file reaches a
reason or the record.
"""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

from fl_gitops.aggregate import aggregate_from_store
from fl_gitops.errors import StoreError
from fl_gitops.store import (
    MAX_METADATA_BYTES,
    MAX_METADATA_DEPTH,
    MalformedMetadata,
    ModelStore,
    UnreadableUpdate,
)
from fl_gitops.tensors import serialize

MARK = "PLANTED-IN-A-FILE"


def model(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"w": rng.normal(size=(8, 4)).astype(np.float32)}


@pytest.fixture
def store(tmp_path) -> ModelStore:
    return ModelStore.open(str(tmp_path / "store"))


def put_round(store: ModelStore, clusters: list[str]) -> str:
    base = store.put_model(serialize(model(0)))
    for k, cluster in enumerate(clusters):
        store.put_update(
            1, cluster, serialize(model(10 + k)), {"base_model": base, "num_examples": 5}
        )
    return base


def updates_dir(store: ModelStore):
    from pathlib import Path

    return Path(store.root) / "rounds" / "1" / "updates"


def replace(path, make) -> None:
    path.unlink()
    make(path)


def json_of(store: ModelStore, cluster: str) -> dict:
    return json.loads((updates_dir(store) / f"{cluster}.json").read_text())


def broken_cases(store: ModelStore):
    """cluster -> (how to break its files, the reason it is rejected with)."""
    d = updates_dir(store)

    def gone(c):
        (d / f"{c}.safetensors").unlink()

    def dangling(c):
        replace(d / f"{c}.safetensors", lambda p: p.symlink_to(d / "nothing-here"))

    def borrowed(c):
        # A link to another (valid) cluster's update, its metadata rewritten to match.
        replace(d / f"{c}.safetensors", lambda p: p.symlink_to(d / "a-honest.safetensors"))
        meta = json_of(store, c)
        meta["sha256"] = json_of(store, "a-honest")["sha256"]
        (d / f"{c}.json").write_text(json.dumps(meta))

    def fifo(c):
        replace(d / f"{c}.safetensors", lambda p: os.mkfifo(p))

    def directory(c):
        replace(d / f"{c}.safetensors", lambda p: p.mkdir())

    def big_meta(c):
        meta = json_of(store, c)
        meta["padding"] = MARK * (MAX_METADATA_BYTES // len(MARK))
        (d / f"{c}.json").write_text(json.dumps(meta))

    def deep_meta(c):
        meta = json_of(store, c)
        meta["nested"] = json.loads(
            "[" * MAX_METADATA_DEPTH + json.dumps(MARK) + "]" * MAX_METADATA_DEPTH
        )
        (d / f"{c}.json").write_text(json.dumps(meta))

    def abyss_meta(c):
        # Deep enough to exhaust the parser's recursion, small enough to pass the size bound.
        (d / f"{c}.json").write_text("[" * 30000 + "]" * 30000)

    def latin1_meta(c):
        (d / f"{c}.json").write_bytes(b'{"round": 1, "note": "\xe9t\xe9 ' + MARK.encode() + b'"}')

    def fifo_meta(c):
        replace(d / f"{c}.json", lambda p: os.mkfifo(p))

    def linked_meta(c):
        replace(d / f"{c}.json", lambda p: p.symlink_to(d / "a-honest.json"))

    link = "is a symbolic link or under one (never followed)"
    cases = {
        "gone": (gone, "metadata is present but the update file is not"),
        "dangling": (dangling, f"dangling.safetensors {link}"),
        "borrowed": (borrowed, f"borrowed.safetensors {link}"),
        "fifo": (fifo, "fifo.safetensors is a FIFO, not a regular file"),
        "directory": (directory, "directory.safetensors is a directory, not a regular file"),
        "big-meta": (big_meta, f"metadata is larger than the bound of {MAX_METADATA_BYTES} bytes"),
        "deep-meta": (deep_meta, f"metadata nests deeper than the bound of {MAX_METADATA_DEPTH}"),
        "abyss-meta": (abyss_meta, f"metadata nests deeper than the bound of {MAX_METADATA_DEPTH}"),
        "latin1-meta": (latin1_meta, "metadata is not valid UTF-8"),
        "fifo-meta": (fifo_meta, "fifo-meta.json is a FIFO, not a regular file"),
        "linked-meta": (linked_meta, f"linked-meta.json {link}"),
    }
    if os.geteuid() == 0:

        def device(c):
            null = stat.S_IFCHR | 0o600
            replace(d / f"{c}.safetensors", lambda p: os.mknod(p, null, os.makedev(1, 3)))

        cases["device"] = (device, "device.safetensors is a device, not a regular file")
    return cases


def test_each_broken_file_rejects_only_its_cluster_and_the_round_goes_on(store):
    cases = broken_cases(store)  # each breaks its cluster's files when called
    honest = ["a-honest", "m-honest", "z-honest"]
    base = put_round(store, honest + list(cases))
    for cluster, (breaks, _) in cases.items():
        breaks(cluster)
    result = aggregate_from_store(store, 1, base, strategy="fedavg")
    assert result.rejected == {c: reason for c, (_, reason) in sorted(cases.items())}
    assert result.contributors == honest
    clean = aggregate_from_store(store, 1, base, strategy="fedavg", clusters=honest)
    assert result.digest == clean.digest
    assert MARK not in json.dumps(result.record)


def test_a_link_to_another_clusters_update_is_refused_even_when_the_digest_matches(store):
    base = put_round(store, ["a-honest", "b-thief"])
    d = updates_dir(store)
    (d / "b-thief.safetensors").unlink()
    (d / "b-thief.safetensors").symlink_to("a-honest.safetensors")
    meta = json_of(store, "b-thief")
    meta["sha256"] = json_of(store, "a-honest")["sha256"]
    (d / "b-thief.json").write_text(json.dumps(meta))
    result = aggregate_from_store(store, 1, base, strategy="fedavg")
    assert result.rejected == {
        "b-thief": "b-thief.safetensors is a symbolic link or under one (never followed)"
    }
    assert result.contributors == ["a-honest"]


def test_reading_metadata_refuses_each_kind_with_its_class(store):
    put_round(store, ["big", "link"])
    d = updates_dir(store)
    (d / "big.json").write_bytes(b" " * (MAX_METADATA_BYTES + 1))
    with pytest.raises(MalformedMetadata):
        store.read_update_meta(1, "big")
    replace(d / "link.json", lambda p: p.symlink_to(d / "big.json"))
    with pytest.raises(UnreadableUpdate) as exc:
        store.read_update_meta(1, "link")
    assert (exc.value.cluster, exc.value.reason) == (
        "link",
        "link.json is a symbolic link or under one (never followed)",
    )


def test_a_symlinked_updates_directory_is_never_listed_through(store, tmp_path):
    put_round(store, ["a"])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "planted.json").write_text("{}")
    rounds = updates_dir(store).parent.parent
    (rounds / "2").mkdir()
    (rounds / "2" / "updates").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(StoreError) as exc:
        store.list_updates(2)
    assert str(exc.value) == (
        f"{store.uri}/rounds/2/updates: a symbolic link or not a directory (never followed)"
    )
    with pytest.raises(UnreadableUpdate):
        store.read_update_meta(2, "planted")


def test_a_symlinked_global_model_is_a_store_error(store):
    base = put_round(store, ["a"])
    models = updates_dir(store).parent.parent.parent / "models"
    name = f"sha256-{base.removeprefix('sha256:')}.safetensors"
    (models / name).rename(models / "real")
    (models / name).symlink_to(models / "real")
    with pytest.raises(StoreError) as exc, store.model_file(base):
        pass
    assert str(exc.value).endswith(f"{name} is a symbolic link or under one (never followed)")


def test_the_update_file_yielded_is_the_one_opened_even_if_the_path_changes(store):
    put_round(store, ["a", "b"])
    d = updates_dir(store)
    want = (d / "a.safetensors").read_bytes()
    with store.update_file(1, "a") as path:
        (d / "a.safetensors").unlink()
        (d / "a.safetensors").symlink_to(d / "b.safetensors")
        with open(path, "rb") as f:
            assert f.read() == want
