"""Re-aggregation over strategies that keep server state or draw DP noise, bit for bit."""

from __future__ import annotations

import json
import shutil

from fl_gitops.cli import main
from tests.verify.conftest import STOCK, verify_work


def _run(tmp_path, name: str, old: str, new: str):
    text = STOCK.read_text()
    assert old in text
    blueprint = tmp_path / f"{name}.yaml"
    blueprint.write_text(text.replace(old, new, 1))
    work = tmp_path / name
    args = ["simulate", str(blueprint), "--clusters", "3", "--rounds", "2", "--no-plot"]
    assert main([*args, "--workdir", str(work)]) == 0
    return work


def _verify(capsys, work, tmp_path) -> dict:
    signers = ["--allowed-signers", str(work / "allowed_signers")]
    code, out = verify_work(capsys, work, tmp_path, *signers, "--reaggregate", "-o", "json")
    doc = json.loads(out)
    assert code == (0 if doc["ok"] else 1)
    return doc


def test_fedadam_rounds_reaggregate_from_the_stored_state_and_a_swapped_state_is_found(
    tmp_path, capsys
):
    work = _run(tmp_path, "adam", "name: fedavg ", "name: fedadam ")
    doc = _verify(capsys, work, tmp_path)
    assert doc["ok"] is True, doc["problems"]
    # The server state after round 1 (FedAdam's moments) replaced by another valid one.
    state = work / "store" / "state" / "fedadam"
    shutil.copyfile(state / "round-2.safetensors", state / "round-1.safetensors")
    doc = _verify(capsys, work, tmp_path)
    (problem,) = doc["problems"]
    assert problem["round"] == 2 and problem["what"].startswith("re-aggregated model is sha256:")


def test_dp_rounds_reaggregate_to_the_same_noisy_model(tmp_path, capsys):
    dp = "options: {}\n    dp: {clipNorm: 5.0, noiseMultiplier: 0.05, seed: 7}\n"
    work = _run(tmp_path, "dp", "options: {}\n", dp)
    doc = _verify(capsys, work, tmp_path)
    assert doc["ok"] is True, doc["problems"]
    assert doc["rounds"] == 2
