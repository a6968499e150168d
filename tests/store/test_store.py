"""The model store on a local directory, fsspec's memory filesystem and moto's S3."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from fl_gitops import __version__
from fl_gitops.errors import StoreError
from fl_gitops.store import MalformedMetadata, ModelStore, block_list_path, storage_options_from_env
from fl_gitops.tensors import BLOCK_BYTES, BlockList, sha256_digest, update_digest

MODEL = b"not really safetensors, the store does not care"
DIGEST = "sha256:" + hashlib.sha256(MODEL).hexdigest()


def test_put_model_is_content_addressed_and_idempotent(any_store: ModelStore) -> None:
    assert any_store.put_model(MODEL) == DIGEST
    assert any_store.put_model(MODEL) == DIGEST
    assert any_store.has_model(DIGEST)
    assert any_store.get_model(DIGEST) == MODEL
    assert any_store.model_uri(DIGEST).endswith(
        f"/models/sha256-{DIGEST.removeprefix('sha256:')}.safetensors"
    )


def test_model_file_yields_a_verified_local_copy(any_store: ModelStore) -> None:
    any_store.put_model(MODEL)
    with any_store.model_file(DIGEST) as path, open(path, "rb") as f:
        assert f.read() == MODEL


def test_missing_model_is_a_store_error_naming_the_uri(any_store: ModelStore) -> None:
    missing = "sha256:" + "0" * 64
    assert not any_store.has_model(missing)
    with pytest.raises(StoreError) as exc:
        any_store.get_model(missing)
    assert str(exc.value) == f"{any_store.model_uri(missing)}: not found in the store"


def test_corrupt_model_fails_its_digest_check(tmp_path) -> None:
    store = ModelStore.open(str(tmp_path))
    store.put_model(MODEL)
    path = tmp_path / "models" / f"sha256-{DIGEST.removeprefix('sha256:')}.safetensors"
    path.write_bytes(b"tampered")
    with pytest.raises(StoreError) as exc:
        store.get_model(DIGEST)
    assert str(exc.value) == (
        f"file://{path}: corrupt: its bytes hash to {sha256_digest(b'tampered')}, not {DIGEST}"
    )
    with pytest.raises(StoreError, match="corrupt"), store.model_file(DIGEST):
        pass


def test_malformed_digest_is_refused_before_any_io(any_store: ModelStore) -> None:
    with pytest.raises(StoreError) as exc:
        any_store.get_model("sha256:ABC")
    assert str(exc.value) == (
        "model digest: expected 'sha256:<64 lowercase hex digits>', got 'sha256:ABC'"
    )


def test_update_round_trip_fills_in_digest_round_cluster_and_version(
    any_store: ModelStore,
) -> None:
    record = any_store.put_update(
        3, "cluster-a", b"weights", {"base_model": DIGEST, "num_examples": 12, "extra": "kept"}
    )
    assert record == {
        "base_model": DIGEST,
        "cluster": "cluster-a",
        "extra": "kept",
        "fl_gitops_version": __version__,
        "metrics": {},
        "num_examples": 12,
        "round": 3,
        "sha256": update_digest(b"weights"),  # an update's digest names its algorithm
    }
    assert any_store.list_updates(3) == ["cluster-a"]
    assert any_store.read_update_meta(3, "cluster-a") == record
    assert any_store.get_update(3, "cluster-a") == b"weights"
    with any_store.update_file(3, "cluster-a") as path, open(path, "rb") as f:
        assert f.read() == b"weights"


def test_list_updates_shows_only_updates_whose_json_is_written(any_store: ModelStore) -> None:
    assert any_store.list_updates(1) == []
    meta = {"base_model": DIGEST, "num_examples": 1}
    any_store.put_update(1, "b-cluster", b"x", meta)
    any_store.put_update(1, "a-cluster", b"y", meta)
    # A tensor file with no JSON yet is an update still being written: not listed.
    any_store.fs.pipe_file(any_store.root + "/rounds/1/updates/c-cluster.safetensors", b"z")
    any_store.fs.pipe_file(any_store.root + "/rounds/1/updates/d.json.tmp-123", b"{}")
    assert any_store.list_updates(1) == ["a-cluster", "b-cluster"]
    assert any_store.list_updates(2) == []


def test_local_writes_leave_no_temporary_files(tmp_path) -> None:
    store = ModelStore.open(f"file://{tmp_path}")
    store.put_update(0, "c1", b"w", {"base_model": DIGEST, "num_examples": 1})
    assert sorted(os.listdir(tmp_path / "rounds" / "0" / "updates")) == [
        "c1.blocks",
        "c1.json",
        "c1.safetensors",
    ]


def test_an_update_is_kept_with_the_block_list_its_digest_names(any_store: ModelStore) -> None:
    """A shard checks the slice it reads against that list: it must hash to the digest."""
    data = hashlib.sha256(b"seed").digest() * 24000  # three blocks, the last one short
    data = bytes(b ^ (i % 251) for i, b in enumerate(data))
    record = any_store.put_update(0, "c1", data, {"base_model": DIGEST, "num_examples": 1})
    uri = any_store.update_uri(0, "c1")
    where = block_list_path(uri)
    assert where is not None and where.endswith("/rounds/0/updates/c1.blocks")
    listed = BlockList.parse(any_store._read("rounds/0/updates/c1.blocks"), record["sha256"])
    assert listed.size == len(data) and len(listed.leaves) == 3
    assert all(listed.check(i, data[i * BLOCK_BYTES : (i + 1) * BLOCK_BYTES]) for i in range(3))
    assert not listed.check(1, data[:BLOCK_BYTES])


def test_put_update_file_streams_from_a_local_file(any_store: ModelStore, tmp_path) -> None:
    src = tmp_path / "update.safetensors"
    src.write_bytes(b"big weights")
    record = any_store.put_update_file(2, "c1", src, {"base_model": DIGEST, "num_examples": 5})
    assert record["sha256"] == update_digest(b"big weights")
    assert any_store.get_update(2, "c1") == b"big weights"


@pytest.mark.parametrize(
    ("cluster", "meta", "message"),
    [
        (
            "../evil",
            {"base_model": DIGEST, "num_examples": 1},
            "cluster name '../evil': expected lowercase letters, digits, '-' and '.', "
            "starting and ending with a letter or digit",
        ),
        (
            "c1",
            {"num_examples": 1},
            "update c1 round 1: base_model: expected 'sha256:<64 lowercase hex digits>', got None",
        ),
        (
            "c1",
            {"base_model": DIGEST, "num_examples": -1},
            "update c1 round 1: num_examples: expected an integer >= 0, got -1",
        ),
    ],
)
def test_put_update_refuses_bad_names_and_fields(
    memory_store: ModelStore, cluster: str, meta: dict, message: str
) -> None:
    with pytest.raises(StoreError) as exc:
        memory_store.put_update(1, cluster, b"w", meta)
    assert str(exc.value) == message
    assert memory_store.list_updates(1) == []


def test_metadata_that_is_not_json_is_a_rejection_of_that_cluster(tmp_path) -> None:
    store = ModelStore.open(str(tmp_path))
    (tmp_path / "rounds" / "1" / "updates").mkdir(parents=True)
    (tmp_path / "rounds" / "1" / "updates" / "c1.json").write_text("{not json")
    with pytest.raises(MalformedMetadata) as exc:
        store.read_update_meta(1, "c1")
    assert str(exc.value) == "update from c1 rejected: metadata is not valid JSON"


def test_strategy_state_round_trips_and_is_none_before_it_exists(any_store: ModelStore) -> None:
    assert any_store.get_state("fedadam", 1) is None
    any_store.put_state("fedadam", 1, b"moments")
    assert any_store.get_state("fedadam", 1) == b"moments"


def test_round_record_round_trips(any_store: ModelStore) -> None:
    assert any_store.get_round_record(4) is None
    any_store.put_round_record(4, {"round": 4, "model": DIGEST})
    assert any_store.get_round_record(4) == {"model": DIGEST, "round": 4}


def test_storage_options_come_from_a_mounted_file(tmp_path) -> None:
    options = tmp_path / "options.json"
    options.write_text(json.dumps({"key": "AKIA", "secret": "hunter2"}))
    assert storage_options_from_env({}) == {}
    assert storage_options_from_env({"FL_STORE_OPTIONS_FILE": str(options)}) == {
        "key": "AKIA",
        "secret": "hunter2",
    }


def test_a_broken_options_file_is_named_without_its_contents(tmp_path) -> None:
    options = tmp_path / "options.json"
    options.write_text('{"secret": "hunter2",')
    with pytest.raises(StoreError) as exc:
        storage_options_from_env({"FL_STORE_OPTIONS_FILE": str(options)})
    assert str(exc.value) == f"FL_STORE_OPTIONS_FILE={options}: not valid JSON"
    assert "hunter2" not in str(exc.value)


def test_an_unknown_backend_is_a_store_error_without_credentials() -> None:
    with pytest.raises(StoreError) as exc:
        ModelStore.open("nosuchproto://user:hunter2@bucket/x")
    assert "hunter2" not in str(exc.value)
    assert str(exc.value).startswith("store URI nosuchproto://***@bucket/x: ")


def test_a_bare_path_opens_a_local_store(tmp_path) -> None:
    store = ModelStore.open(str(tmp_path / "s"))
    assert store.uri == f"file://{tmp_path / 's'}"
    assert repr(store) == f"ModelStore('file://{tmp_path / 's'}')"
