"""A DP experiment in `fl-gitops simulate`: epsilon in every round record, in `history` and
its plot; targetEpsilon stops the run Completed before the budget is exceeded; adaptive
clipping's clip carried round to round in Git; `verify --reaggregate` redoes every model."""

from __future__ import annotations

import itertools
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from fl_gitops.aggregate.strategies._accountant import epsilon, epsilon_of_runs
from fl_gitops.cli import main

REPO = Path(__file__).resolve().parents[2]
STOCK = REPO / "blueprints" / "digits-fedavg.yaml"
PATH = "experiments/digits-dp"
# noiseMultiplier 1 at sampling rate 1: epsilon 4.73, 7.08, 9.01, 10.73, 12.30 after
# rounds 1 to 5 at delta 1e-5, so a target of 12 lets four rounds run and stops the fifth.
DP = (
    "    dp: {clipNorm: 1.0, noiseMultiplier: 1.0, seed: 3, targetEpsilon: 12,\n"
    "         adaptive: {clippedCountStddev: 1.0}}\n"
)


def _blueprint(tmp: Path) -> Path:
    text = STOCK.read_text()
    text = text.replace("name: digits-fedavg ", "name: digits-dp ")
    text = text.replace("path: experiments/digits-fedavg", f"path: {PATH}")
    text = text.replace("epochs: 5", "epochs: 1")
    text = text.replace("    options: {}\n", "    options: {}\n" + DP)
    path = tmp / "digits-dp.yaml"
    path.write_text(text)
    return path


def _show(git_dir: Path, rel: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), "show", f"main:{PATH}/{rel}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dp")
    work = tmp / "sim"
    args = ["simulate", str(_blueprint(tmp)), "--clusters", "4", "--rounds", "10"]
    assert main([*args, "--workdir", str(work)]) == 0
    return tmp, work, json.loads((work / "report.json").read_text())


def test_target_epsilon_stops_the_run_completed_before_the_budget_is_exceeded(run):
    _, work, report = run
    assert report["phase"] == "Completed"
    assert report["message"] == (
        "privacy budget reached: round 5 would spend epsilon 12.3 > targetEpsilon 12"
    )
    assert [r["round"] for r in report["rounds"]] == [1, 2, 3, 4]
    git_dir = work / "config-repo.git"
    state = yaml.safe_load(_show(git_dir, "hub/round-state.yaml"))["data"]
    assert (state["phase"], state["round"], state["message"]) == (
        "Completed",
        "4",
        report["message"],
    )
    body = subprocess.run(
        ["git", "--git-dir", str(git_dir), "log", "-1", "--format=%s%n%b", "main"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert body.startswith("fl(digits-dp): round 4 -> completed\n")
    assert report["message"] in body


def test_simulates_report_and_its_json_summary_carry_each_rounds_epsilon(run, capsys):
    tmp, work, report = run
    spent = [r["epsilon"] for r in report["rounds"]]
    assert spent == sorted(spent) and spent[0] > 0
    assert spent[-1] == pytest.approx(epsilon([(1.0, 1.0)] * 4, 1e-5))
    # Run again on the finished workdir: the summary answers from Git at once.
    args = ["simulate", str(tmp / "digits-dp.yaml"), "--clusters", "4", "--rounds", "10"]
    capsys.readouterr()
    assert main([*args, "--workdir", str(work), "-o", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["already_finished"] is True


def test_each_record_holds_the_epsilon_and_what_recomputes_it(run):
    _, work, _ = run
    git_dir = work / "config-repo.git"
    spent = []
    for n in range(1, 5):
        dp = yaml.safe_load(_show(git_dir, f".history/round-{n}.yaml"))["dp"]
        assert dp["accounting"] == [[1.0, 1.0, n]]
        assert (dp["delta"], dp["samplingRate"], dp["targetEpsilon"]) == (1e-5, 1.0, 12)
        runs = [tuple(r) for r in dp["accounting"]]
        assert dp["epsilon"] == round(epsilon_of_runs(runs, dp["delta"]), 6)
        assert dp["epsilon"] == round(epsilon([(1.0, 1.0)] * n, 1e-5), 6)
        spent.append(dp["epsilon"])
    assert spent == sorted(spent) and spent[-1] <= 12


def test_the_adaptive_clip_of_each_round_is_the_one_the_round_before_chose(run):
    _, work, _ = run
    git_dir = work / "config-repo.git"
    records = [
        yaml.safe_load(_show(git_dir, f".history/round-{n}.yaml"))["dp"] for n in range(1, 5)
    ]
    assert records[0]["clipNorm"] == 1.0  # the blueprint's clipNorm starts it
    for before, after in itertools.pairwise(records):
        assert after["clipNorm"] == before["nextClipNorm"]
    for dp in records:
        assert dp["noiseMultiplier"] == 1.0
        assert dp["sumNoiseMultiplier"] == pytest.approx((1.0 - 0.25) ** -0.5)
        # Only the noisy fraction is published, never the true one nor who was clipped.
        assert "unclippedFraction" not in dp and "clipped" not in dp


def test_verify_reaggregates_every_dp_round_bit_for_bit(run, capsys):
    tmp, work, _ = run
    capsys.readouterr()
    args = ["verify", "--repo", str(work / "config-repo.git"), "--path", PATH]
    args += ["--store", str(work / "store"), "--workdir", str(tmp / "v"), "--reaggregate"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "verified 4 rounds of digits-dp: all checks hold" in out
    assert "problem" not in out


def test_history_shows_the_epsilon_in_its_table_json_and_plot(run, capsys):
    tmp, work, _ = run
    capsys.readouterr()
    base = ["history", "--repo", str(work / "config-repo.git"), "--path", PATH]
    plot = tmp / "h.png"
    base += ["--workdir", str(tmp / "h")]
    assert main([*base, "-o", "json", "--plot", str(plot)]) == 0
    document = json.loads(capsys.readouterr().out)
    eps = [r["epsilon"] for r in document["rounds"]]
    assert eps == [round(epsilon([(1.0, 1.0)] * n, 1e-5), 6) for n in range(1, 5)]
    assert {r["delta"] for r in document["rounds"]} == {1e-5}
    from PIL import Image

    with Image.open(plot) as image:
        description = image.text["Description"]
    assert f"epsilon {eps[-1]:.4g} after round 4" in description
    assert main(base) == 0
    table = capsys.readouterr().out
    assert "epsilon" in table and f"{eps[-1]:.3f}" in table


def test_sharded_aggregation_makes_the_same_models_and_dp_records(run, tmp_path):
    tmp, work, report = run
    sharded = tmp_path / "sim"
    args = ["simulate", str(tmp / "digits-dp.yaml"), "--clusters", "4", "--rounds", "10"]
    args += ["--aggregation-shards", "2", "--workdir", str(sharded), "--no-plot"]
    assert main(args) == 0
    again = json.loads((sharded / "report.json").read_text())
    assert (again["phase"], again["message"]) == (report["phase"], report["message"])
    assert again["final_model"] == report["final_model"]
    for n in range(1, 5):
        one = yaml.safe_load(_show(work / "config-repo.git", f".history/round-{n}.yaml"))
        two = yaml.safe_load(_show(sharded / "config-repo.git", f".history/round-{n}.yaml"))
        assert one["dp"] == two["dp"]
