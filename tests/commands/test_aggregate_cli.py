"""``fl-gitops aggregate`` run as a subprocess: output and exit codes 0, 1 and 2."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fl_gitops.tensors import load_bytes, serialize, sha256_digest


def aggregate(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fl_gitops.cli", "aggregate", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def folder(tmp_path: Path):
    """A base model and a folder of updates: two honest, one NaN, one incomplete."""
    base = serialize({"w": np.zeros(4, np.float32)})
    (tmp_path / "base.safetensors").write_bytes(base)
    updates = tmp_path / "updates"
    updates.mkdir()

    def put(cluster: str, values: list[float], n: int, with_json: bool = True) -> None:
        data = serialize({"w": np.array(values, np.float32)})
        (updates / f"{cluster}.safetensors").write_bytes(data)
        if with_json:
            meta = {
                "round": 1,
                "cluster": cluster,
                "base_model": sha256_digest(base),
                "num_examples": n,
                "metrics": {"accuracy": 0.5},
                "sha256": sha256_digest(data),
            }
            (updates / f"{cluster}.json").write_text(json.dumps(meta))

    put("east", [1, 2, 3, 4], 1)
    put("west", [3, 4, 5, 6], 3)
    put("bad", [1, float("nan"), 0, 0], 1)
    put("late", [9, 9, 9, 9], 1, with_json=False)
    return tmp_path


def test_writes_the_model_prints_its_digest_and_each_rejection(folder: Path):
    out = folder / "new.safetensors"
    proc = aggregate(
        "--model", folder / "base.safetensors", "--updates", folder / "updates",
        "--round", "1", "--strategy", "fedavg", "--out", out,
        "--record", folder / "record.json",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    data = out.read_bytes()
    assert proc.stdout == f"sha256:{hashlib.sha256(data).hexdigest()}\n"
    assert proc.stderr == (
        "skipped late: no late.json yet (incomplete update)\n"
        "rejected bad: tensor 'w' holds NaN or Inf\n"
    )
    np.testing.assert_array_equal(load_bytes(data)["w"], np.float32([2.5, 3.5, 4.5, 5.5]))
    record = json.loads((folder / "record.json").read_text())
    assert record["contributors"] == ["east", "west"]
    assert record["rejected"] == {"bad": "tensor 'w' holds NaN or Inf"}


def test_too_few_valid_updates_exits_1_with_the_reasons(folder: Path):
    out = folder / "new.safetensors"
    proc = aggregate(
        "--model", folder / "base.safetensors", "--updates", folder / "updates",
        "--round", "1", "--strategy", "fedavg", "--min-updates", "3", "--out", out,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr == (
        "skipped late: no late.json yet (incomplete update)\n"
        "error: round 1: 2 valid update(s), at least 3 needed\n"
        "error: rejected bad: tensor 'w' holds NaN or Inf\n"
    )
    assert not out.exists()


def test_the_roster_limits_who_contributes(folder: Path):
    proc = aggregate(
        "--model", folder / "base.safetensors", "--updates", folder / "updates",
        "--round", "1", "--strategy", "fedavg", "--roster", "east,bad",
        "--out", folder / "new.safetensors",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "rejected west: cluster is not on the roster of round 1\n" in proc.stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"--options": "{not json"},
            "error: --options: not valid JSON: Expecting property name enclosed in double "
            "quotes: line 1 column 2 (char 1)\n",
        ),
        (
            {"--options": '{"beta_1": 2}', "--strategy": "fedadam"},
            "error: strategy 'fedadam': options.beta_1: expected a number >= 0 and < 1, got 2\n",
        ),
        (
            {"--strategy": "fedsgd"},
            "error: strategy 'fedsgd': unknown; expected one of dp-fixed-clipping, fedadagrad, "
            "fedadam, fedavg, fedavgm, fedmedian, fedprox, fedtrimmedavg, fedyogi, krum, "
            "multikrum\n",
        ),
        ({"--model": "missing.safetensors"}, "error: --model missing.safetensors: no such file\n"),
        ({"--round": "-1"}, "error: --round: expected an integer >= 0, got -1\n"),
        (
            {"--median-distance-multiple": "0"},
            "error: --median-distance-multiple: expected a finite number > 0\n",
        ),
        (
            {"--max-num-examples": "many"},
            "error: --max-num-examples: expected an integer or 'off', got 'many'\n",
        ),
    ],
)
def test_bad_input_exits_2_with_one_line(folder: Path, change: dict[str, str], message: str):
    args = {
        "--model": str(folder / "base.safetensors"),
        "--updates": str(folder / "updates"),
        "--round": "1",
        "--strategy": "fedavg",
        "--out": str(folder / "new.safetensors"),
    } | change
    proc = aggregate(*[x for pair in args.items() for x in pair])
    assert proc.returncode == 2
    assert proc.stderr == message


def test_a_model_that_is_a_pickle_is_bad_input(folder: Path):
    (folder / "model.pt").write_bytes(b"\x80\x04\x95\x00")
    proc = aggregate(
        "--model", folder / "model.pt", "--updates", folder / "updates",
        "--round", "1", "--strategy", "fedavg", "--out", folder / "new.safetensors",
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr == (
        f"error: --model {folder / 'model.pt'}: not a safetensors file: it is a Python "
        "pickle, not safetensors (never unpickled)\n"
    )


def test_state_is_read_from_and_written_to_the_state_directory(folder: Path):
    state = folder / "store"
    common = ["--updates", folder / "updates", "--strategy", "fedavgm", "--state", state]
    first = aggregate(
        "--model", folder / "base.safetensors", "--round", "1", *common,
        "--out", folder / "r1.safetensors",
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert (state / "state" / "fedavgm" / "round-1.safetensors").is_file()
    # Round 2 (same updates relabelled) starts from round 1's momentum.
    for meta_path in (folder / "updates").glob("*.json"):
        meta = json.loads(meta_path.read_text())
        meta["round"] = 2
        meta["base_model"] = first.stdout.strip()
        meta_path.write_text(json.dumps(meta))
    second = aggregate(
        "--model", folder / "r1.safetensors", "--round", "2", *common,
        "--out", folder / "r2.safetensors",
    )  # fmt: skip
    assert second.returncode == 0, second.stderr
    # v1 = Δ1 = [2.5, 3.5, 4.5, 5.5]; Δ2 = mean - r1 = 0; v2 = 0.9 v1; r2 = r1 + v2.
    r2 = load_bytes((folder / "r2.safetensors").read_bytes())["w"]
    np.testing.assert_allclose(r2, 1.9 * np.array([2.5, 3.5, 4.5, 5.5]), rtol=1e-6)


def test_the_influence_bounds_are_on_by_default_and_can_be_changed(folder: Path):
    """west claims 3 examples: over a ceiling of 2 it is refused, or weighs 2 when capped."""
    common = (
        "--model", folder / "base.safetensors", "--updates", folder / "updates",
        "--round", "1", "--strategy", "fedavg", "--out", folder / "new.safetensors",
    )  # fmt: skip
    proc = aggregate(*common, "--max-num-examples", "2")
    assert proc.returncode == 0, proc.stderr
    assert "rejected west: num_examples is over the ceiling of 2 for one cluster\n" in proc.stderr
    proc = aggregate(*common, "--max-num-examples", "2", "--cap-num-examples")
    assert proc.returncode == 0, proc.stderr
    assert "rejected west" not in proc.stderr
    # east (1 example) and west (capped at 2): (1*[1,2,3,4] + 2*[3,4,5,6]) / 3
    want = np.float32([7 / 3, 10 / 3, 13 / 3, 16 / 3])
    got = load_bytes((folder / "new.safetensors").read_bytes())["w"]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    # west is 1.7x as far from the zero base as east: a multiple of 1.5 refuses it, 'off' not.
    proc = aggregate(*common, "--median-distance-multiple", "1.5")
    assert (
        "rejected west: L2 distance to the global model is 9.27362, over 1.5 x the round's "
        "median distance of 5.47723\n"
    ) in proc.stderr
    proc = aggregate(*common, "--median-distance-multiple", "off")
    assert "rejected west" not in proc.stderr


def test_a_fifo_or_a_link_in_the_folder_rejects_that_cluster_and_never_blocks(folder: Path):
    import os

    updates = folder / "updates"
    (updates / "late.safetensors").unlink()
    os.mkfifo(updates / "late.json")  # reading it would wait for a writer for ever
    (updates / "copy.safetensors").symlink_to(updates / "east.safetensors")
    (updates / "copy.json").symlink_to(updates / "east.json")
    proc = aggregate(
        "--model", folder / "base.safetensors", "--updates", updates,
        "--round", "1", "--strategy", "fedavg", "--out", folder / "new.safetensors",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == (
        "rejected bad: tensor 'w' holds NaN or Inf\n"
        "rejected copy: copy.json is a symbolic link or under one (never followed)\n"
        "rejected late: late.json is a FIFO, not a regular file\n"
    )
