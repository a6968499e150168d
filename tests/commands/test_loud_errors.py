"""Loud failures: an experiment that is not there, a round past the last, a drifted bootstrap."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from fl_gitops.blueprint import load_blueprint
from fl_gitops.cli import main
from fl_gitops.placement import generate_inventory, inventory_list

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "blueprints" / "digits-fedavg.yaml"
NOW = "2026-11-28T00:00:00Z"
BLUEPRINT = (REPO / "blueprints" / "digits-fedavg.yaml").read_text()


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def make_remote(tmp: Path, experiments: list[str]) -> Path:
    """A bare remote whose main branch holds a blueprint in each of ``experiments``."""
    remote = tmp / "remote.git"
    git(tmp, "init", "-q", "--bare", "-b", "main", str(remote))
    seed = tmp / "seed"
    git(tmp, "clone", "-q", str(remote), str(seed))
    (seed / "README.md").write_text("config repo\n")
    for path in experiments:
        (seed / path).mkdir(parents=True)
        (seed / path / "blueprint.yaml").write_text(BLUEPRINT)
    git(seed, "add", "-A")
    git(seed, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "seed")
    git(seed, "push", "-q", "origin", "main")
    return remote


COMMANDS = [
    ["history"],
    ["status", "--no-hub"],
    ["rollback", "--to-round", "1"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_path_with_no_experiment_lists_the_experiments_the_repo_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    remote = make_remote(tmp_path, ["experiments/digits", "experiments/mnist"])
    before = git(remote, "rev-parse", "main")
    argv = [*command, "--repo", str(remote), "--path", "experiments/digit"]
    assert main([*argv, "--workdir", str(tmp_path / "w")]) == 2
    assert capsys.readouterr().err == (
        f"error: --path experiments/digit: no experiment (blueprint.yaml) in {remote} (main); "
        "the repo holds: experiments/digits, experiments/mnist\n"
    )
    assert git(remote, "rev-parse", "main") == before


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
def test_a_repo_with_no_experiment_says_it_holds_none(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    remote = make_remote(tmp_path, [])
    argv = [*command, "--repo", str(remote), "--path", "experiments/digits"]
    assert main([*argv, "--workdir", str(tmp_path / "w")]) == 2
    assert capsys.readouterr().err == (
        f"error: --path experiments/digits: no experiment (blueprint.yaml) in {remote} (main); "
        "the repo holds no experiment\n"
    )


def test_a_path_that_leaves_the_repo_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    remote = make_remote(tmp_path, ["experiments/digits"])
    argv = ["history", "--repo", str(remote), "--path", "../..", "--workdir", str(tmp_path / "w")]
    assert main(argv) == 2
    assert capsys.readouterr().err == (
        "error: --path '../..': expected a folder inside the repo, e.g. experiments/digits\n"
    )


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    blueprint = load_blueprint(REFERENCE)
    clusters = generate_inventory(20, spec=blueprint.placement, seed=3)
    path = tmp_path_factory.mktemp("inv") / "managedclusters.yaml"
    path.write_text(yaml.safe_dump(inventory_list(clusters)))
    return path


def _render(out: Path, inventory: Path, *extra: str) -> int:
    argv = ["render", str(REFERENCE), "--inventory", str(inventory), "--out", str(out)]
    return main([*argv, "--now", NOW, *extra])


def test_render_refuses_a_round_past_the_last(
    tmp_path: Path, inventory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rounds = load_blueprint(REFERENCE).rounds
    assert _render(tmp_path, inventory, "--round", str(rounds + 1)) == 2
    assert capsys.readouterr().err == (
        f"error: --round {rounds + 1}: past the last round of {REFERENCE} "
        f"(spec.rounds is {rounds})\n"
    )
    assert list(tmp_path.iterdir()) == []
    assert _render(tmp_path, inventory, "--round", str(rounds)) == 0


def test_render_check_covers_the_bootstrap_when_it_is_there(
    tmp_path: Path, inventory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _render(tmp_path, inventory, "--bootstrap") == 0
    assert _render(tmp_path, inventory, "--check") == 0
    capsys.readouterr()
    appset = tmp_path / "bootstrap" / "applicationset.yaml"
    appset.write_text(appset.read_text() + "# edited by hand\n")
    assert _render(tmp_path, inventory, "--check") == 1
    captured = capsys.readouterr()
    assert "bootstrap/applicationset.yaml" in captured.out
    assert "# edited by hand" in captured.out
    # without a bootstrap/ the check is what it was: the experiment's files only
    other = tmp_path / "other"
    assert _render(other, inventory) == 0
    assert _render(other, inventory, "--check") == 0
    assert not (other / "bootstrap").exists()
