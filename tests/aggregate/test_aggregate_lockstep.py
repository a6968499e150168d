"""Side-by-side reading: every byte hashed, groups of updates summed bit for bit alike."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from fl_gitops.aggregate import aggregate_round
from fl_gitops.aggregate.checks import Limits
from fl_gitops.tensors import Lockstep, ReadFailed, read_header, serialize, sha256_digest

SHAPES = {"a.weight": (40, 30), "b.bias": (7,), "c.weight": (3, 500)}


def model(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {n: rng.normal(size=s).astype(np.float32) for n, s in SHAPES.items()}


def reversed_layout(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    """Safetensors bytes with the tensors stored in reverse name order, and metadata."""
    doc: dict[str, object] = {"__metadata__": metadata}
    pos = 0
    blobs = []
    for name in sorted(tensors, reverse=True):
        data = tensors[name].astype("<f4").tobytes()
        doc[name] = {
            "dtype": "F32",
            "shape": list(tensors[name].shape),
            "data_offsets": [pos, pos + len(data)],
        }
        blobs.append(data)
        pos += len(data)
    text = json.dumps(doc).encode()
    return len(text).to_bytes(8, "little") + text + b"".join(blobs)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_lockstep_hands_out_every_byte_of_files_with_different_headers(tmp_path):
    plain = write(tmp_path / "plain.safetensors", serialize(model(1)))
    tagged = write(tmp_path / "tagged.safetensors", serialize(model(2), {"note": "x" * 37}))
    headers = [read_header(plain), read_header(tagged)]
    assert headers[0].data_start != headers[1].data_start
    for threaded in (False, True):
        got: list[dict[str, list[np.ndarray]]] = [{}, {}]
        with Lockstep(
            [plain, tagged], headers, slot_bytes=1000, threaded=threaded, max_elements=333
        ) as lockstep:
            for name, offset, views in lockstep.chunks():
                assert [v.size for v in views] == [views[0].size] * 2
                for i, view in enumerate(views):
                    assert sum(p.size for p in got[i].get(name, [])) == offset
                    got[i].setdefault(name, []).append(view.copy())
            digests = lockstep.digests()
        for i, seed in enumerate((1, 2)):
            for name, want in model(seed).items():
                np.testing.assert_array_equal(np.concatenate(got[i][name]), want.reshape(-1))
        assert digests == [
            "sha256:" + hashlib.sha256(plain.read_bytes()).hexdigest(),
            "sha256:" + hashlib.sha256(tagged.read_bytes()).hexdigest(),
        ]


@pytest.mark.parametrize("readers_", [None, 1, 3])
def test_lockstep_says_which_file_ended_early_and_closes_every_file(tmp_path, readers_):
    # One reader thread for every file, or one for all three: the file that ended is named,
    # never a later one that the same thread serves (and so could not read).
    paths = [write(tmp_path / f"u{i}.safetensors", serialize(model(i))) for i in range(3)]
    headers = [read_header(p) for p in paths]
    size = paths[1].stat().st_size
    os.truncate(paths[1], size - 100)
    open_before = len(os.listdir("/proc/self/fd")) if Path("/proc/self/fd").exists() else None
    with (
        pytest.raises(ReadFailed) as exc,
        Lockstep(paths, headers, slot_bytes=4096, readers=readers_) as lockstep,
    ):
        for _ in lockstep.chunks():
            pass
    assert exc.value.index == 1
    assert exc.value.offset == size - 100
    assert str(exc.value) == f"{paths[1]}: file ended at byte {size - 100} (truncated)"
    assert readers() == []
    if open_before is not None:
        assert len(os.listdir("/proc/self/fd")) == open_before


def readers() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("fl-gitops-read")]


def test_stopping_early_stops_the_readers_and_closes_the_files(tmp_path):
    paths = [write(tmp_path / f"u{i}.safetensors", serialize(model(i))) for i in range(4)]
    headers = [read_header(p) for p in paths]
    open_before = len(os.listdir("/proc/self/fd")) if Path("/proc/self/fd").exists() else None
    with Lockstep(paths, headers, slot_bytes=256, depth=2, readers=3) as lockstep:
        for _name, _offset, views in lockstep.chunks():
            assert len(views) == 4
            assert len(readers()) == 3  # one serves two files
            break
        with pytest.raises(RuntimeError) as exc:
            lockstep.digests()
        assert str(exc.value) == "the files have not been read to the end"
    assert readers() == []
    if open_before is not None:
        assert len(os.listdir("/proc/self/fd")) == open_before


def test_lockstep_reads_with_no_more_threads_than_cores(tmp_path):
    # More reader threads than cores hash no faster and take the GIL from the summing.
    paths = [write(tmp_path / f"u{i}.safetensors", serialize(model(i))) for i in range(9)]
    headers = [read_header(p) for p in paths]
    cores = len(os.sched_getaffinity(0))
    with Lockstep(paths, headers, slot_bytes=256) as lockstep:
        for i, _ in enumerate(lockstep.chunks()):
            if i == 0:
                assert len(readers()) == min(9, cores)
        one_thread = lockstep.digests()
    with Lockstep(paths, headers, slot_bytes=256, readers=9) as lockstep:
        for _ in lockstep.chunks():
            pass
        assert lockstep.digests() == one_thread
    assert one_thread == ["sha256:" + hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


def test_lockstep_refuses_files_of_different_layouts(tmp_path):
    plain = write(tmp_path / "plain.safetensors", serialize(model(1)))
    other = write(tmp_path / "other.safetensors", reversed_layout(model(2), {}))
    with pytest.raises(ValueError) as exc:
        Lockstep([plain, other], [read_header(plain), read_header(other)], slot_bytes=1)
    assert str(exc.value) == "Lockstep reads files of one layout only"


@pytest.fixture
def nine(round_files):
    rf = round_files(model(0))
    for k in range(9):
        rf.add(f"c{k}", model(10 + k), num_examples=3 + 5 * k)
    return rf


def test_updates_stored_in_other_layouts_give_the_same_model(nine, round_files):
    want = aggregate_round(nine.base_path, nine.updates(), strategy="fedavg", round=1)
    mixed = round_files(model(0))
    for k in range(9):
        tensors = model(10 + k)
        if k in (2, 3, 7):
            data = reversed_layout(tensors, {"k": str(k)})
        elif k == 5:
            data = serialize(tensors, {"written-by": "another client"})
        else:
            data = serialize(tensors)
        mixed.add(f"c{k}", data=data, num_examples=3 + 5 * k)
    got = aggregate_round(mixed.base_path, mixed.updates(), strategy="fedavg", round=1)
    assert got.rejected == {}
    assert got.digest == want.digest


def test_a_rejected_update_in_a_group_leaves_no_trace(round_files):
    good = round_files(model(0))
    bad = round_files(model(0))
    for k in range(11):
        tensors = model(10 + k)
        if k == 1:
            tensors["c.weight"][2, 400] = np.nan
            bad.add(f"c{k}", tensors, num_examples=k + 1)
        elif k == 6:
            bad.add(f"c{k}", tensors, num_examples=k + 1, sha256="sha256:" + "0" * 64)
        elif k == 9:
            tensors["a.weight"][0, 0] = np.float32(np.inf)
            bad.add(f"c{k}", tensors, num_examples=k + 1)
        else:
            good.add(f"c{k}", tensors, num_examples=k + 1)
            bad.add(f"c{k}", tensors, num_examples=k + 1)
    want = aggregate_round(good.base_path, good.updates(), strategy="fedavg", round=1)
    got = aggregate_round(bad.base_path, bad.updates(), strategy="fedavg", round=1)
    c6 = sha256_digest((bad.updates_dir / "c6.safetensors").read_bytes())
    assert got.rejected == {
        "c1": "tensor 'c.weight' holds NaN or Inf",
        "c6": f"file hashes to {c6}, metadata says sha256:{'0' * 64}",
        "c9": "tensor 'a.weight' holds NaN or Inf",
    }
    assert got.contributors == want.contributors
    assert got.digest == want.digest


def test_opposite_infinities_in_one_group_are_both_rejected(round_files):
    rf = round_files(model(0))
    for k in range(4):
        tensors = model(10 + k)
        if k in (1, 2):
            tensors["b.bias"][3] = np.float32(np.inf if k == 1 else -np.inf)
        rf.add(f"c{k}", tensors, num_examples=1)
    result = aggregate_round(rf.base_path, rf.updates(), strategy="fedavg", round=1)
    assert result.rejected == {
        "c1": "tensor 'b.bias' holds NaN or Inf",
        "c2": "tensor 'b.bias' holds NaN or Inf",
    }
    assert result.contributors == ["c0", "c3"]


def test_the_fused_pass_and_the_checks_first_pass_give_the_same_bytes(nine):
    fused = aggregate_round(nine.base_path, nine.updates(), strategy="fedavg", round=1)
    # A norm bound makes the checks take a pass of their own, then one update at a time.
    checked = aggregate_round(
        nine.base_path,
        nine.updates(),
        strategy="fedavg",
        round=1,
        limits=Limits(max_l2_norm=1e30),
    )
    assert checked.digest == fused.digest
    for chunk in (1, 50, 1 << 20):
        again = aggregate_round(
            nine.base_path, nine.updates(), strategy="fedavg", round=1, chunk_elements=chunk
        )
        assert again.digest == fused.digest


@pytest.mark.parametrize(
    ("strategy", "options"),
    [
        ("fedavg", {}),
        ("fedadam", {}),
        ("fedmedian", {}),
        ("dp-fixed-clipping", {"clipping_norm": 5.0, "noise_multiplier": 0.5}),
    ],
)
def test_the_digest_is_the_sha256_of_the_model_bytes(nine, strategy, options):
    result = aggregate_round(
        nine.base_path, nine.updates(), strategy=strategy, options=options, round=1
    )
    assert result.digest == "sha256:" + hashlib.sha256(result.model).hexdigest()


def test_an_update_truncated_while_the_round_reads_it_is_rejected(nine, monkeypatch):
    from fl_gitops.aggregate import _engine as aggregate

    real_check_file = aggregate.checks.check_file

    def check_then_truncate(cluster, path, expect):
        header = real_check_file(cluster, path, expect)
        if cluster == "c4":  # another process cuts the file after its header was checked
            os.truncate(path, header.file_size - 64)
        return header

    monkeypatch.setattr(aggregate.checks, "check_file", check_then_truncate)
    size = Path(nine.written["c4"].path).stat().st_size
    result = aggregate_round(nine.base_path, nine.updates(), strategy="fedavg", round=1)
    assert result.rejected == {
        "c4": f"file ended at byte {size - 64} while it was read (truncated)"
    }
    monkeypatch.undo()
    del nine.written["c4"]
    want = aggregate_round(nine.base_path, nine.updates(), strategy="fedavg", round=1)
    assert result.digest == want.digest


def test_files_past_the_hashed_ones_are_read_beside_them_and_not_hashed(tmp_path):
    """The global model rides along as a lane of its own, read, never hashed."""
    a = write(tmp_path / "a.safetensors", serialize(model(1)))
    base = write(tmp_path / "base.safetensors", serialize(model(0)))
    headers = [read_header(a), read_header(base)]
    for threaded in (False, True):
        seen: dict[str, list[np.ndarray]] = {}
        with Lockstep([a, base], headers, slot_bytes=1000, threaded=threaded, hashed=1) as lockstep:
            for name, _, views in lockstep.chunks():
                seen.setdefault(name, []).append(views[1].copy())
            assert lockstep.digests() == ["sha256:" + hashlib.sha256(a.read_bytes()).hexdigest()]
        for name, want in model(0).items():
            np.testing.assert_array_equal(np.concatenate(seen[name]), want.reshape(-1))


def test_each_file_is_hashed_with_the_algorithm_its_digest_names(tmp_path):
    import blake3

    paths = [write(tmp_path / f"u{i}.safetensors", serialize(model(i))) for i in range(3)]
    headers = [read_header(p) for p in paths]
    with Lockstep(
        paths, headers, slot_bytes=256, algorithms=["blake3", "sha256", "blake3"]
    ) as lockstep:
        for _ in lockstep.chunks():
            pass
        got = lockstep.digests()
    data = [p.read_bytes() for p in paths]
    assert got == [
        "blake3:" + blake3.blake3(data[0]).hexdigest(),
        "sha256:" + hashlib.sha256(data[1]).hexdigest(),
        "blake3:" + blake3.blake3(data[2]).hexdigest(),
    ]
