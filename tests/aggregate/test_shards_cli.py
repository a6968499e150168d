"""``fl-gitops aggregate --shard I/N`` and ``--merge``, by hand, as subprocesses.

Two shards run side by side into one directory (they wait for each other's files between
phases), the merge writes the model: the same digest and bytes as a plain ``aggregate``.
Bad input exits 2 naming the flag or the file.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fl_gitops.tensors import serialize, sha256_digest


def command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "fl_gitops.cli", "aggregate", *map(str, args)]


def aggregate(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(*args), capture_output=True, text=True, timeout=120)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """A base model and six updates: one far (x1e30), one whose digest is wrong."""
    rng = np.random.default_rng(0)
    shapes = {"a.weight": (300, 40), "b.bias": (40,), "c.weight": (40, 500)}
    base = serialize({n: rng.normal(size=s).astype(np.float32) for n, s in shapes.items()})
    (tmp_path / "base.safetensors").write_bytes(base)
    updates = tmp_path / "updates"
    updates.mkdir()
    for k in range(6):
        tensors = {n: rng.normal(size=s).astype(np.float32) for n, s in shapes.items()}
        if k == 5:
            tensors["a.weight"] *= 1e30
        data = serialize(tensors)
        (updates / f"c{k}.safetensors").write_bytes(data)
        meta = {
            "round": 1,
            "cluster": f"c{k}",
            "base_model": sha256_digest(base),
            "num_examples": 10 + k,
            "metrics": {"accuracy": 0.5 + k / 100},
            "sha256": "sha256:" + "0" * 64 if k == 3 else sha256_digest(data),
        }
        (updates / f"c{k}.json").write_text(json.dumps(meta))
    return tmp_path


def round_args(folder: Path, strategy: str = "dp-fixed-clipping") -> list[str | Path]:
    options = json.dumps({"clipping_norm": 100}) if strategy == "dp-fixed-clipping" else "{}"
    return [
        "--model", folder / "base.safetensors", "--updates", folder / "updates",
        "--round", "1", "--strategy", strategy, "--options", options,
    ]  # fmt: skip


@pytest.mark.parametrize("strategy", ["dp-fixed-clipping", "fedmedian"])
def test_two_shards_by_hand_then_the_merge_give_the_plain_commands_digest(folder, strategy):
    plain = aggregate(*round_args(folder, strategy), "--out", folder / "one.safetensors")
    assert plain.returncode == 0, plain.stderr
    shards = folder / "shards"
    procs = [
        subprocess.Popen(
            command(*round_args(folder, strategy), "--shard", f"{i}/2", "--out", shards),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for i, proc in enumerate(procs):
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert out == f"{shards}/shard-000{i}-of-0002.decision.json\n"
        assert err.endswith(f"shard {i}/2: done\n")
    record = folder / "record.json"
    merged = aggregate(
        "--merge", shards, "--out", folder / "merged.safetensors", "--record", record
    )
    assert merged.returncode == 0, merged.stderr
    assert merged.stdout == plain.stdout
    assert merged.stderr == plain.stderr
    assert "rejected c3: file hashes to sha256:" in merged.stderr
    assert "rejected c5: L2 distance to the global model is " in merged.stderr
    assert (folder / "merged.safetensors").read_bytes() == (folder / "one.safetensors").read_bytes()
    assert json.loads(record.read_text())["model"] == merged.stdout.strip()


def test_a_round_too_small_for_the_strategy_fails_in_every_shard_as_in_one_pod(folder):
    """Krum with f=1 needs 5 valid updates; 4 are left: exit 1, the same account."""
    plain = aggregate(*round_args(folder, "krum"), "--out", folder / "one.safetensors")
    assert plain.returncode == 1
    assert plain.stderr.startswith(
        "error: round 1: krum with f=1 needs at least 5 valid updates, got 4\n"
    )
    shards = folder / "shards"
    procs = [
        subprocess.Popen(
            command(*round_args(folder, "krum"), "--shard", f"{i}/2", "--out", shards),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert (proc.returncode, out, err) == (1, "", plain.stderr)


@pytest.mark.parametrize("text", ["2/2", "1-2", "a/b", "-1/2", "0/0"])
def test_a_malformed_shard_is_refused_naming_the_flag_and_the_format(folder, text):
    proc = aggregate(*round_args(folder), f"--shard={text}", "--out", folder / "s")
    assert proc.returncode == 2
    assert proc.stderr == (
        f"error: --shard: expected I/N with 0 <= I < N (e.g. 0/4), got {text!r}\n"
    )
    assert proc.stdout == ""


def test_a_merge_with_a_shard_missing_exits_2_naming_it(folder):
    shards = folder / "shards"
    proc = aggregate(*round_args(folder), "--shard", "0/2", "--wait", "0", "--out", shards)
    assert proc.returncode == 2
    assert proc.stderr == (
        f"error: --shard 0/2: waited 0 s for the other shards; still missing: "
        f"{shards}/shard-0001-of-0002.stats.json\n"
    )
    merged = aggregate("--merge", shards, "--out", folder / "m.safetensors")
    assert merged.returncode == 2
    assert merged.stderr == f"error: --merge {shards}: no shard's decision file\n"


def test_a_shard_of_another_round_in_the_directory_exits_2_naming_its_file(folder):
    shards = folder / "shards"
    other = aggregate(*round_args(folder, "fedavg"), "--shard", "1/2", "--wait", "0",
                      "--out", shards)  # fmt: skip
    assert other.returncode == 2  # shard 0 never ran: it waited, and gave up
    proc = aggregate(*round_args(folder), "--shard", "0/2", "--wait", "0", "--out", shards)
    assert proc.returncode == 2
    assert proc.stderr == (
        f"error: --shard 0/2: {shards}/shard-0001-of-0002.stats.json: written for another "
        "round or plan (its strategy is not 'dp-fixed-clipping')\n"
    )


def test_merge_refuses_the_flags_of_a_round(folder):
    proc = aggregate("--merge", folder, "--round", "1", "--out", folder / "m.safetensors")
    assert proc.returncode == 2
    assert proc.stderr == (
        "error: --merge: --round not used (the shards' files hold the round); drop them\n"
    )


def test_without_merge_the_round_flags_are_required(folder):
    proc = aggregate("--out", folder / "m.safetensors")
    assert proc.returncode == 2
    assert proc.stderr == (
        "error: --model, --updates, --round, --strategy: required (or --merge DIR to merge "
        "shards)\n"
    )


def test_merge_writes_the_strategy_state_one_pod_writes(folder):
    plain_store, shard_store = folder / "one-store", folder / "shard-store"
    args = round_args(folder, "fedadam")
    plain = aggregate(*args, "--state", plain_store, "--out", folder / "one.safetensors")
    assert plain.returncode == 0, plain.stderr
    shards = folder / "shards"
    procs = [
        subprocess.Popen(
            command(*args, "--state", shard_store, "--shard", f"{i}/2", "--out", shards),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    merged = aggregate("--merge", shards, "--state", shard_store, "--out", folder / "m.st")
    assert merged.stdout == plain.stdout
    state = Path("state") / "fedadam" / "round-1.safetensors"
    assert (shard_store / state).read_bytes() == (plain_store / state).read_bytes()
