"""`fl-gitops verify` over a securely aggregated run: no update is stored in the clear, so
each survivor's masked input is checked against the round record's digest, and with
``--reaggregate`` the round is unmasked again from the store and its model compared."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fl_gitops.cli import main
from tests.verify.conftest import STOCK, verify_work

SECURE = "    secureAggregation: {threshold: 4, neighbours: 5, clipRange: 0.5}\n"


@pytest.fixture(scope="module")
def secure_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("secure")
    text = STOCK.read_text()
    text = text.replace("    options: {}\n", "    options: {}\n" + SECURE, 1)
    text = text.replace("    minClusters: 8 ", "    minClusters: 4 ", 1)
    assert SECURE in text and "minClusters: 4" in text
    blueprint = root / "secure.yaml"
    blueprint.write_text(text)
    work = root / "work"
    args = ["simulate", str(blueprint), "--clusters", "6", "--rounds", "2", "--workdir", str(work)]
    assert main([*args, "--no-plot"]) == 0
    return work


def _copy(run: Path, to: Path) -> Path:
    shutil.copytree(run / "config-repo.git", to / "config-repo.git")
    shutil.copytree(run / "store", to / "store")
    shutil.copy(run / "allowed_signers", to / "allowed_signers")
    return to


def _verify(capsys, work: Path, tmp_path: Path) -> tuple[int, dict]:
    store = ["--store", str(work / "store")]
    signers = ["--allowed-signers", str(work / "allowed_signers")]
    code, out = verify_work(capsys, work, tmp_path, *store, *signers, "--reaggregate", "-o", "json")
    return code, json.loads(out)


def _messages(work: Path, round_: int, kind: str) -> list[Path]:
    folder = work / "store" / "rounds" / str(round_) / "aggregation"
    return sorted(p for p in folder.iterdir() if f"-{kind}-" in p.name)


def test_a_secure_run_verifies_and_reaggregates_bit_for_bit(secure_run, tmp_path, capsys):
    code, doc = _verify(capsys, secure_run, tmp_path)
    assert code == 0 and doc["ok"] is True, doc["problems"]
    rounds = [e for e in doc["entries"] if e["kind"] == "round"]
    assert [e["round"] for e in rounds] == [1, 2]
    assert all(e["contributors"] == 6 and not e["problems"] for e in rounds)


def test_a_replaced_masked_input_is_named_with_the_digest_the_record_holds(
    secure_run, tmp_path, capsys
):
    work = _copy(secure_run, tmp_path / "w")
    first, second = _messages(work, 1, "masked")[:2]
    first.write_bytes(second.read_bytes())  # a valid-looking masked input, another's
    code, doc = _verify(capsys, work, tmp_path)
    assert code == 1
    problems = [p for p in doc["problems"] if p["round"] == 1]
    cluster = first.name.rsplit("-masked-", 1)[1]
    assert any(
        p["cluster"] == cluster
        and "no masked input of round 1 in the store hashing to" in p["what"]
        for p in problems
    ), problems


def test_a_replaced_reveal_makes_the_rebuilt_model_differ(secure_run, tmp_path, capsys):
    work = _copy(secure_run, tmp_path / "w")
    reveals = _messages(work, 2, "reveal")
    doc = json.loads(reveals[0].read_text())
    # Every share it reveals altered in its last byte: a wrong secret, silently, since Git
    # does not hold the reveals' digests; the model rebuilt from it cannot be the round's.
    for item in doc:
        share = bytearray.fromhex(item[2])
        share[-1] ^= 1
        item[2] = share.hex()
    reveals[0].write_text(json.dumps(doc))
    code, out = _verify(capsys, work, tmp_path)
    assert code == 1
    texts = [p["what"] for p in out["problems"] if p["round"] == 2]
    assert any(
        t.startswith("re-aggregated model is") or t.startswith("re-aggregation failed")
        for t in texts
    ), texts
    assert not [p for p in out["problems"] if p["round"] == 1]
