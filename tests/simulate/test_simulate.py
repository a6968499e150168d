"""`fl-gitops simulate`: the real loop on one machine, from the user's side."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from fl_gitops.cli import main

REPO = Path(__file__).resolve().parents[2]
STOCK = REPO / "blueprints" / "digits-fedavg.yaml"


def _git(git_dir: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), *args], capture_output=True, text=True, check=True
    ).stdout


def _small_blueprint(tmp: Path, *, name: str = "digits-small", **spec: str) -> Path:
    text = STOCK.read_text()
    text = text.replace("name: digits-fedavg ", f"name: {name} ")
    text = text.replace("path: experiments/digits-fedavg", f"path: experiments/{name}")
    for old, new in spec.items():
        assert old in text, old
        text = text.replace(old, new)
    path = tmp / f"{name}.yaml"
    path.write_text(text)
    return path


def test_simulate_runs_the_stock_blueprint_with_one_commit_per_round(tmp_path, capsys):
    work = tmp_path / "sim"
    args = ["simulate", str(STOCK), "--clusters", "4", "--rounds", "3", "--workdir", str(work)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "digits-fedavg: Completed" in out
    report = json.loads((work / "report.json").read_text())
    assert [r["round"] for r in report["rounds"]] == [1, 2, 3]
    for row in report["rounds"]:
        assert 0.0 <= row["accuracy"] <= 1.0
        assert row["contributors"] == 4 and row["rejected"] == 0
        assert row["seconds"] > 0 and row["loss"] > 0
    assert report["final_model"].startswith("sha256:")
    assert Path(report["final_model_path"]).is_file()
    assert report["config_repo"] == str((work / "config-repo.git").resolve())
    assert (work / "rounds.png").read_bytes()[:4] == b"\x89PNG"
    git_dir = Path(report["config_repo"])
    subjects = _git(git_dir, "log", "--format=%s", "main").splitlines()
    assert subjects[:4] == [
        "fl(digits-fedavg): round 3 -> completed",
        "fl(digits-fedavg): round 2 -> 3",
        "fl(digits-fedavg): round 1 -> 2",
        "fl(digits-fedavg): round 1 roster",
    ]
    for n, sha in enumerate(_git(git_dir, "log", "--format=%H", "-3", "main").split(), 1):
        trailers = _git(git_dir, "log", "-1", "--format=%(trailers:only)", sha)
        for key in ("FL-Experiment", "FL-Round", "FL-Model", "FL-Blueprint"):
            assert f"{key}: " in trailers, (n, trailers)
    # `fl-gitops history` on that repo reproduces the table.
    history = [
        "history",
        "--repo",
        str(git_dir),
        "--path",
        "experiments/digits-fedavg",
        "--workdir",
        str(tmp_path / "h"),
        "--json",
    ]
    assert main(history) == 0
    rows = json.loads(capsys.readouterr().out)
    keys = ("round", "accuracy", "loss", "contributors", "rejected", "model")
    assert [{k: r[k] for k in keys} for r in rows] == [
        {k: r[k] for k in keys} for r in report["rounds"]
    ]


def test_interrupted_simulation_resumes_without_repeating_a_committed_round(tmp_path):
    work = tmp_path / "sim"
    blueprint = _small_blueprint(tmp_path, **{"epochs: 5": "epochs: 1"})
    argv = [
        sys.executable,
        "-m",
        "fl_gitops.cli",
        "simulate",
        str(blueprint),
        "--clusters",
        "3",
        "--rounds",
        "6",
        "--workdir",
        str(work),
        "--no-plot",
    ]
    # Interrupt once round 2 is aggregated: the simulation prints that line after the pass
    # that pushed "round 2 -> 3", and reading it blocks until then (nothing is polled).
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    git_dir = work / "config-repo.git"
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.split(":")[0].split() == ["round", "2"]:
            break
    else:
        raise AssertionError(f"the simulation ended before round 2: {''.join(seen)}")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    done_before = _git(git_dir, "log", "--format=%s", "main").count(" -> ")
    assert 2 <= done_before < 6
    assert subprocess.run(argv, capture_output=True, text=True, timeout=300).returncode == 0
    subjects = _git(git_dir, "log", "--format=%s", "main").splitlines()
    transitions = [s for s in subjects if " -> " in s]
    assert len(transitions) == len(set(transitions)) == 6  # 5 round changes + completed
    assert sum("roster" in s for s in subjects) == 1


def _quick_run(tmp_path: Path, rounds: int, *flags: str) -> list[dict]:
    """Ten clusters, one local epoch: the report's rounds after a run with ``flags``."""
    work = tmp_path / "sim"
    blueprint = _small_blueprint(tmp_path, **{"epochs: 5": "epochs: 1"})
    args = ["simulate", str(blueprint), "--clusters", "10", "--rounds", str(rounds)]
    assert main([*args, "--workdir", str(work), "--no-plot", *flags]) == 0
    return json.loads((work / "report.json").read_text())["rounds"]


@pytest.mark.parametrize(
    ("stragglers", "delay", "contributors"),
    [
        # minClusters is 8: two stragglers miss the 30m timeout each round, quorum holds.
        ("2", "2h", [8, 8]),
        # Stragglers inside the timeout are waited for.
        ("3", "5m", [10, 10]),
    ],
)
def test_stragglers_are_waited_for_until_the_timeout_then_quorum_decides(
    tmp_path, stragglers, delay, contributors
):
    rounds = _quick_run(tmp_path, 2, "--stragglers", stragglers, "--straggler-delay", delay)
    assert [r["contributors"] for r in rounds] == contributors


def test_failed_jobs_count_as_failed_and_the_round_goes_on_with_a_quorum(tmp_path):
    rounds = _quick_run(tmp_path, 3, "--fail-rate", "0.15", "--seed", "4")
    assert len(rounds) == 3
    contributors = [r["contributors"] for r in rounds]
    assert all(8 <= c <= 10 for c in contributors) and min(contributors) < 10, contributors


def test_a_hundred_simulated_clusters_complete_three_rounds(tmp_path):
    work = tmp_path / "sim"
    blueprint = _small_blueprint(
        tmp_path,
        **{
            "builtin: mlp": "builtin: logreg",
            "args: {hidden: 32}": "args: {}",
            "epochs: 5": "epochs: 1",
            "kind: dirichlet, alpha: 0.5, seed: 7": "kind: iid, seed: 7",
        },
    )
    args = [
        "simulate",
        str(blueprint),
        "--clusters",
        "100",
        "--rounds",
        "3",
        "--workdir",
        str(work),
        "--no-plot",
    ]
    assert main(args) == 0
    report = json.loads((work / "report.json").read_text())
    assert [r["contributors"] for r in report["rounds"]] == [100, 100, 100]
    works = _git(
        work / "config-repo.git", "ls-tree", "--name-only", "main~1:experiments/digits-small/works"
    )
    assert len(works.split()) == 100


@pytest.mark.slow
@pytest.mark.parametrize(
    ("partition", "points"),
    [("kind: iid, seed: 7", 1.0), ("kind: dirichlet, alpha: 0.5, seed: 7", 2.0)],
)
def test_digits_reaches_centralized_accuracy(tmp_path, partition, points):
    """The issue's protocol: 10 clusters, 30 rounds, 5 local epochs, against centralized."""
    blueprint = _small_blueprint(tmp_path, **{"kind: dirichlet, alpha: 0.5, seed: 7": partition})
    work = tmp_path / "sim"
    args = ["simulate", str(blueprint), "--workdir", str(work), "--centralized", "--no-plot"]
    assert main(args) == 0
    report = json.loads((work / "report.json").read_text())
    final = report["rounds"][-1]["accuracy"]
    assert len(report["rounds"]) == 30
    assert report["centralized_accuracy"] - final <= points / 100, report


@pytest.mark.slow
def test_a_robust_strategy_under_byzantine_attack_stays_within_two_points(tmp_path):
    changes = {
        "name: fedavg ": "name: multikrum ",
        "    options: {}": "    options:\n      f: 3",
        "kind: dirichlet, alpha: 0.5, seed: 7": "kind: iid, seed: 7",
        "minClusters: 8": "minClusters: 9",
    }
    blueprint = _small_blueprint(tmp_path, **changes)
    common = ["--clusters", "13", "--rounds", "15", "--no-plot"]
    assert main(["simulate", str(blueprint), "--workdir", str(tmp_path / "clean"), *common]) == 0
    attacked = ["--byzantine", "3", "--byzantine-kind", "signflip"]
    assert (
        main(["simulate", str(blueprint), "--workdir", str(tmp_path / "bad"), *common, *attacked])
        == 0
    )
    clean = json.loads((tmp_path / "clean/report.json").read_text())["rounds"][-1]["accuracy"]
    bad = json.loads((tmp_path / "bad/report.json").read_text())["rounds"][-1]["accuracy"]
    assert clean - bad <= 0.02, (clean, bad)


def test_bad_simulation_flags_exit_2_without_a_traceback(tmp_path, capsys):
    args = ["simulate", str(STOCK), "--workdir", str(tmp_path / "s"), "--fail-rate", "1.5"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.strip() == "error: --fail-rate: expected 0 <= rate < 1, got 1.5"
    assert not os.path.exists(tmp_path / "s")
