"""`fl-gitops verify` over `fl-gitops simulate` work dirs as the simulation leaves them."""

from __future__ import annotations

import json

from fl_gitops.cli import main
from tests.verify.conftest import PATH, STOCK


def _verify(capsys, work, tmp_path, *args: str) -> tuple[int, list[str]]:
    capsys.readouterr()
    code = main(
        [
            "verify",
            "--repo",
            str(work / "config-repo.git"),
            "--path",
            PATH,
            "--workdir",
            str(tmp_path / f"clone{len(list(tmp_path.iterdir()))}"),
            *args,
        ]
    )
    return code, capsys.readouterr().out.splitlines()


def _signers(work) -> list[str]:
    """The simulation's own allowed_signers, when it signs its round commits."""
    allowed = work / "allowed_signers"
    return ["--allowed-signers", str(allowed)] if allowed.is_file() else []


def test_a_simulated_run_verifies_as_it_is_with_and_without_reaggregation(
    simulated, tmp_path, capsys
):
    # The store is the one the committed blueprint names (no --store).
    for extra in ([], ["--reaggregate"]):
        code, lines = _verify(capsys, simulated, tmp_path, *_signers(simulated), *extra)
        assert code == 0, "\n".join(lines)
        rounds = [line for line in lines if line.startswith("round ") and "aggregated" in line]
        assert len(rounds) == 2 and all("  OK  " in line for line in rounds)
        assert lines[-1].startswith("verified 2 rounds of digits-fedavg: all checks hold")


def test_a_rollback_and_the_rounds_run_again_verify_with_the_first_attempt_noted(tmp_path, capsys):
    work = tmp_path / "sim"
    simulate = ["simulate", str(STOCK), "--clusters", "3", "--rounds", "3", "--workdir", str(work)]
    assert main([*simulate, "--no-plot"]) == 0
    rollback = ["rollback", "--repo", str(work / "config-repo.git"), "--path", PATH]
    assert main([*rollback, "--to-round", "2", "--workdir", str(tmp_path / "rb")]) == 0
    assert main([*simulate, "--no-plot"]) == 0  # resumes: rounds 2 and 3 again
    code, lines = _verify(capsys, work, tmp_path, "--reaggregate", "-o", "json")
    doc = json.loads("\n".join(lines))
    assert code == 0 and doc["ok"] is True
    assert (doc["rounds"], doc["aggregations"]) == (3, 5)
    texts = [(e["kind"], e["round"], e["text"]) for e in doc["entries"]]
    assert ("commit", 2, "rolled back to the start of round 2 (attempt 2)") in texts
    noted = [e["round"] for e in doc["entries"] if e["notes"]]
    assert noted == [2, 3]  # the first attempts: the store holds the second's updates
