"""`simulate` killed or damaged at its worst moments resumes; its round commits are signed.

Real runs of the CLI (in process, or as a child process for the signals) over the stock
blueprint with small fleets, checked through the bare repo they leave, with git itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from fl_gitops.cli import main

REPO = Path(__file__).resolve().parents[2]
STOCK = REPO / "blueprints" / "digits-fedavg.yaml"


def _git(git_dir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), *args], capture_output=True, text=True, check=check
    )


def _blueprint(tmp: Path) -> Path:
    path = tmp / "digits.yaml"
    path.write_text(STOCK.read_text().replace("epochs: 5", "epochs: 1"))
    return path


def _simulate(blueprint: Path, work: Path, rounds: int = 2) -> int:
    args = ["simulate", str(blueprint), "--clusters", "3", "--rounds", str(rounds)]
    return main([*args, "--workdir", str(work), "--no-plot"])


def _subjects(git_dir: Path) -> list[str]:
    return _git(git_dir, "log", "--format=%s", "main").stdout.splitlines()


def test_every_round_commit_verifies_against_the_work_dirs_allowed_signers(
    tmp_path: Path,
) -> None:
    work = tmp_path / "sim"
    assert _simulate(_blueprint(tmp_path), work) == 0

    git_dir = work / "config-repo.git"
    allowed = work / "allowed_signers"
    shas = _git(git_dir, "rev-list", "main").stdout.split()
    first = shas.pop()  # "add experiment": the person's commit, not the pass's
    assert _git(git_dir, "log", "-1", "--format=%s", first).stdout.startswith("add experiment")
    assert len(shas) >= 3
    for sha in shas:
        done = _git(
            git_dir, "-c", f"gpg.ssh.allowedSignersFile={allowed}", "verify-commit", sha,
            check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert 'Good "git" signature for simulate@localhost with ED25519 key' in done.stderr
    shown = _git(
        git_dir, "-c", f"gpg.ssh.allowedSignersFile={allowed}", "log", "--show-signature", "-1"
    ).stdout
    assert 'Good "git" signature for simulate@localhost' in shown
    assert (work / "signing-key").stat().st_mode & 0o077 == 0
    assert (work / "signing-key").read_bytes() not in (work / "reconciler/.git/config").read_bytes()


def test_a_work_dir_killed_after_git_init_and_before_the_first_commit_resumes(
    tmp_path: Path,
) -> None:
    work = tmp_path / "sim"
    work.mkdir()
    # What a simulation killed in its first second left: an empty bare repo, no branch.
    subprocess.run(
        ["git", "init", "-q", "--bare", "-b", "main", str(work / "config-repo.git")], check=True
    )

    assert _simulate(_blueprint(tmp_path), work) == 0

    subjects = _subjects(work / "config-repo.git")
    assert subjects[0] == "fl(digits-fedavg): round 2 -> completed"
    assert subjects[-1] == "add experiment digits-fedavg"


def test_a_config_repo_whose_branch_was_deleted_resumes_at_its_last_tip(tmp_path: Path) -> None:
    work = tmp_path / "sim"
    blueprint = _blueprint(tmp_path)
    assert _simulate(blueprint, work, rounds=3) == 0
    git_dir = work / "config-repo.git"
    tip = _git(git_dir, "rev-parse", "main").stdout.strip()
    _git(git_dir, "update-ref", "-d", "refs/heads/main")

    assert _simulate(blueprint, work, rounds=3) == 0

    assert _git(git_dir, "rev-parse", "main").stdout.strip() == tip  # nothing redone
    assert sum(" -> " in s for s in _subjects(git_dir)) == 3


def test_sigterm_stops_the_simulation_cleanly_with_143_and_the_run_resumes(
    tmp_path: Path,
) -> None:
    work = tmp_path / "sim"
    blueprint = _blueprint(tmp_path)
    argv = [sys.executable, "-m", "fl_gitops.cli", "simulate", str(blueprint)]
    argv += ["--clusters", "3", "--rounds", "5", "--workdir", str(work), "--no-plot"]
    # Its own process group, signalled as a whole (what `kill -TERM -PGID`, a service
    # manager or a container runtime does): the workers get SIGTERM too.
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.split(":")[0].split() == ["round", "1"]:
            break
    else:
        raise AssertionError(f"the simulation ended before round 1: {''.join(seen)}")
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)

    assert proc.returncode == 143, err
    assert "Traceback" not in err
    assert subprocess.run(argv, capture_output=True, text=True, timeout=300).returncode == 0
    subjects = _subjects(work / "config-repo.git")
    transitions = [s for s in subjects if " -> " in s]
    assert len(transitions) == len(set(transitions)) == 5
