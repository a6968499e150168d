"""`fl-gitops simulate` says so when a run fails, a work dir is not this run's, or a flag
would do nothing: real runs of the CLI (in process) over the stock blueprint."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from fl_gitops.cli import main

REPO = Path(__file__).resolve().parents[2]
STOCK = REPO / "blueprints" / "digits-fedavg.yaml"


def _quick(tmp: Path) -> Path:
    """The stock blueprint with one local epoch a round."""
    path = tmp / "digits.yaml"
    path.write_text(STOCK.read_text().replace("epochs: 5", "epochs: 1"))
    return path


def _tip(work: Path) -> str:
    git_dir = work / "config-repo.git"
    done = subprocess.run(
        ["git", "--git-dir", str(git_dir), "rev-parse", "main"],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_a_run_that_fails_by_quorum_says_why_exits_1_and_draws_no_empty_plot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "sim"
    args = ["simulate", str(_quick(tmp_path)), "--workdir", str(work), "--rounds", "3"]

    assert main([*args, "--fail-rate", "0.6"]) == 1

    out = capsys.readouterr().out
    reason = "round 1: 4 of 10 clusters succeeded, 6 failed; quorum is 8"
    assert f"digits-fedavg: Failed: {reason}" in out
    assert "final model" not in out
    assert "plot:" not in out
    assert not (work / "rounds.png").exists()  # no round aggregated: nothing to draw
    report = json.loads((work / "report.json").read_text())
    assert (report["phase"], report["message"], report["rounds"]) == ("Failed", reason, [])


def test_a_failed_work_dir_run_again_answers_already_failed_and_keeps_its_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "sim"
    args = ["simulate", str(_quick(tmp_path)), "--workdir", str(work), "--rounds", "3"]
    args += ["--fail-rate", "0.6", "--no-plot"]
    assert main(args) == 1
    report = (work / "report.json").read_bytes()
    capsys.readouterr()

    assert main(args) == 1

    assert capsys.readouterr().out.splitlines()[-3:] == [
        f"digits-fedavg: already failed in {work}",
        "reason: round 1: 4 of 10 clusters succeeded, 6 failed; quorum is 8",
        f"report: {work / 'report.json'}",
    ]
    assert (work / "report.json").read_bytes() == report


@pytest.fixture(scope="module")
def completed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A blueprint and the work dir of its completed run: 3 clusters, 1 round."""
    tmp = tmp_path_factory.mktemp("done")
    blueprint, work = _quick(tmp), tmp / "sim"
    args = ["simulate", str(blueprint), "--clusters", "3", "--rounds", "1", "--no-plot"]
    assert main([*args, "--workdir", str(work)]) == 0
    return blueprint, work


def test_a_completed_work_dir_answers_already_completed_and_keeps_its_report(
    completed: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    blueprint, work = completed
    report, tip = (work / "report.json").read_bytes(), _tip(work)
    capsys.readouterr()
    args = ["simulate", str(blueprint), "--clusters", "3", "--rounds", "1"]

    assert main([*args, "--workdir", str(work)]) == 0

    out = capsys.readouterr().out
    assert out.split("\n")[-3:] == [
        f"digits-fedavg: already completed in {work}",
        f"report: {work / 'report.json'}",
        "",
    ]
    assert "resuming" not in out and "round   1" not in out
    assert (work / "report.json").read_bytes() == report
    assert _tip(work) == tip
    assert not (work / "rounds.png").exists()  # nothing redrawn either


@pytest.mark.parametrize(
    ("change", "flags", "why"),
    [
        ("", ["--rounds", "2"], "was started with --rounds 1, not 2"),
        ("", ["--clusters", "4"], "was started with --clusters 3, not 4"),
        ("batchSize: 32", [], "was started from another version of {file}"),
        ("other", [], "holds another experiment than {file}'s"),
    ],
    ids=["rounds", "clusters", "edited", "other-experiment"],
)
def test_a_work_dir_of_another_run_is_refused_naming_workdir(
    completed: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: str,
    flags: list[str],
    why: str,
) -> None:
    blueprint, work = completed
    text = blueprint.read_text()
    if change == "other":
        text = text.replace("name: digits-fedavg ", "name: other ")
    elif change:
        assert "batchSize: 16" in text
        text = text.replace("batchSize: 16", change)
    mine = tmp_path / "mine.yaml"
    mine.write_text(text)
    tip = _tip(work)
    args = ["simulate", str(mine), "--workdir", str(work), "--clusters", "3", "--rounds", "1"]
    args = [*args, *flags]  # a later flag wins in argparse

    assert main(args) == 2

    err = capsys.readouterr().err
    assert err == (
        f"error: --workdir {work}: {why.format(file=mine)}; run it again as it was started, "
        "or use another --workdir\n"
    )
    assert _tip(work) == tip


def test_a_work_dir_whose_config_repo_is_not_a_simulations_is_refused_without_git_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "sim"
    (work / "config-repo.git").mkdir(parents=True)
    (work / "config-repo.git" / "HEAD").write_text("not a ref\n")

    assert main(["simulate", str(STOCK), "--workdir", str(work), "--no-plot"]) == 2

    assert capsys.readouterr().err == (
        f"error: --workdir {work}: its config-repo.git is not a bare git repository a "
        "simulation made; use another --workdir\n"
    )
    assert sorted(p.name for p in work.iterdir()) == ["config-repo.git"]  # nothing written


def test_a_work_dir_that_is_a_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "sim"
    work.write_text("")

    assert main(["simulate", str(STOCK), "--workdir", str(work)]) == 2

    assert capsys.readouterr().err == f"error: --workdir {work}: exists and is not a directory\n"


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--straggler-delay", "5m"], "--straggler-delay: only used with --stragglers K (K >= 1)"),
        (
            ["--stragglers", "2", "--straggler-delay", "soon"],
            "--straggler-delay: expected a duration such as 90s, 5m or 2h, got 'soon'",
        ),
        (["--jobs", "0"], "--jobs: expected at least 1, got 0"),
        (["--jobs", "-2"], "--jobs: expected at least 1, got -2"),
        (["--byzantine-factor", "3"], "--byzantine-factor: only used with --byzantine K (K >= 1)"),
        (["--kubeconfig", "kc.yaml"], "--kubeconfig: only used with --hub kubernetes"),
        (["--context", "kind"], "--context: only used with --hub kubernetes"),
        (["--fail-rate", "-0.1"], "--fail-rate: expected 0 <= rate < 1, got -0.1"),
        (["--clusters", "0"], "--clusters: expected 1 to 10000, got 0"),
    ],
    ids=[
        "delay-without-stragglers",
        "delay-not-a-duration",
        "jobs-0",
        "jobs-negative",
        "factor-without-byzantine",
        "kubeconfig-local-hub",
        "context-local-hub",
        "fail-rate-negative",
        "clusters-0",
    ],
)
def test_a_flag_that_conflicts_or_would_be_ignored_is_refused_by_its_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    work = tmp_path / "sim"

    assert main(["simulate", str(STOCK), "--workdir", str(work), *flags]) == 2

    assert capsys.readouterr().err == f"error: {message}\n"
    assert not work.exists()


def test_a_run_that_fails_after_two_rounds_plots_them_and_prints_no_final_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work = tmp_path / "sim"
    args = ["simulate", str(STOCK), "--workdir", str(work), "--rounds", "3", "--byzantine", "3"]

    assert main(args) == 1

    out = capsys.readouterr().out
    report = json.loads((work / "report.json").read_text())
    assert report["phase"] == "Failed"
    assert report["message"].startswith("round 3: ")
    assert "at least 8 needed" in report["message"]
    assert [r["round"] for r in report["rounds"]] == [1, 2]
    assert "digits-fedavg: Failed: round 3: " in out
    assert "final model" not in out
    assert f"plot: {work / 'rounds.png'}" in out
    assert (work / "rounds.png").read_bytes()[:4] == b"\x89PNG"


def test_a_completed_work_dir_without_its_report_says_it_was_removed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    work, blueprint = tmp_path / "sim", _quick(tmp_path)
    args = ["simulate", str(blueprint), "--clusters", "3", "--rounds", "1", "--no-plot"]
    args += ["--workdir", str(work)]
    assert main(args) == 0
    (work / "report.json").unlink()
    capsys.readouterr()

    assert main(args) == 0

    assert capsys.readouterr().out.splitlines()[-1] == (
        f"report: none, {work / 'report.json'} was removed"
    )


def test_a_work_dir_moved_elsewhere_is_refused_as_made_in_another_directory(
    completed: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blueprint, done = completed
    work = tmp_path / "moved"
    shutil.copytree(done, work)
    args = ["simulate", str(blueprint), "--clusters", "3", "--rounds", "1", "--no-plot"]

    assert main([*args, "--workdir", str(work)]) == 2

    assert capsys.readouterr().err == (
        f"error: --workdir {work}: was made in another directory (its committed blueprint "
        "names the store and repo there); run it there, or use another --workdir\n"
    )
