"""`fl-gitops verify` over `fl-gitops simulate` work dirs as the simulation leaves them."""

from __future__ import annotations

import json

from fl_gitops.cli import main
from tests.verify.conftest import PATH, STOCK, verify_work


def _verify(capsys, work, tmp_path, *args: str) -> tuple[int, list[str]]:
    code, out = verify_work(capsys, work, tmp_path, *args)
    return code, out.splitlines()


def test_a_simulated_run_verifies_as_it_is_with_and_without_reaggregation(
    simulated, tmp_path, capsys
):
    # Signed with the simulation's own key; the store is the one its blueprint names.
    signers = ["--allowed-signers", str(simulated / "allowed_signers")]
    for extra in ([], ["--reaggregate"]):
        code, lines = _verify(capsys, simulated, tmp_path, *signers, *extra)
        assert code == 0, "\n".join(lines)
        assert "signatures checked against" in lines[0]
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


def test_without_allowed_signers_the_simulations_own_file_is_named_but_not_used(
    simulated, tmp_path, capsys
):
    code, lines = _verify(capsys, simulated, tmp_path)
    assert code == 0
    assert lines[0].endswith(
        "signatures NOT checked (no --allowed-signers given; "
        f"{simulated / 'allowed_signers'} lies beside the repo)"
    )
    assert lines[-1].endswith("(signatures not checked)")


def test_a_robust_round_with_byzantine_clusters_reaggregates_to_its_model(tmp_path, capsys):
    # Multi-Krum keeps some of the updates it chose among: the round is redone over the
    # same candidates (the succeeded clusters not rejected), and gives the same model.
    work = tmp_path / "krum"
    blueprint = STOCK.parent / "digits-krum-robust.yaml"
    simulate = ["simulate", str(blueprint), "--clusters", "10", "--rounds", "1"]
    main([*simulate, "--byzantine", "3", "--workdir", str(work), "--no-plot"])
    capsys.readouterr()
    signers = ["--allowed-signers", str(work / "allowed_signers")]
    code = main(
        [
            "verify",
            "--repo",
            str(work / "config-repo.git"),
            "--path",
            "experiments/digits-krum",
            "--workdir",
            str(tmp_path / "clone"),
            "--reaggregate",
            *signers,
            "-o",
            "json",
        ]
    )
    doc = json.loads(capsys.readouterr().out)
    assert code == 0 and doc["ok"] is True, doc["problems"]
    (aggregated,) = [e for e in doc["entries"] if e["kind"] == "round"]
    assert aggregated["round"] == 1 and 0 < aggregated["contributors"] < 10


def test_rounds_with_failed_jobs_verify_and_reaggregate_over_the_clusters_that_succeeded(
    tmp_path, capsys
):
    work = tmp_path / "failing"
    simulate = ["simulate", str(STOCK), "--clusters", "10", "--rounds", "3", "--seed", "0"]
    assert main([*simulate, "--fail-rate", "0.2", "--workdir", str(work), "--no-plot"]) == 0
    signers = ["--allowed-signers", str(work / "allowed_signers")]
    code, lines = _verify(capsys, work, tmp_path, *signers, "--reaggregate", "-o", "json")
    doc = json.loads("\n".join(lines))
    assert code == 0 and doc["ok"] is True, doc["problems"]
    contributors = [e["contributors"] for e in doc["entries"] if e["kind"] == "round"]
    assert len(contributors) == 3 and min(contributors) < 10  # some Jobs failed


def test_a_run_whose_store_was_tampered_with_verifies_because_the_pass_refused_them(
    tmp_path, capsys
):
    # --tamper-store 2: two clusters' updates replaced in the bucket each round, metadata
    # rewritten to match; the pass refused them by the hub's digests, so what was
    # committed holds, and the rounds re-aggregate without them.
    work = tmp_path / "tampered"
    simulate = ["simulate", str(STOCK), "--clusters", "10", "--rounds", "2"]
    assert main([*simulate, "--tamper-store", "2", "--workdir", str(work), "--no-plot"]) == 0
    signers = ["--allowed-signers", str(work / "allowed_signers")]
    code, lines = _verify(capsys, work, tmp_path, *signers, "--reaggregate", "-o", "json")
    doc = json.loads("\n".join(lines))
    assert code == 0 and doc["ok"] is True, doc["problems"]
    assert [e["contributors"] for e in doc["entries"] if e["kind"] == "round"] == [8, 8]
