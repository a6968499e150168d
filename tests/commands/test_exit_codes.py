"""One exit-code scheme, and no traceback for a user: 0 ok, 1 a problem, 2 bad input, 141 a
closed pipe; a bad --repo, an unwritable output path and `| head` each end with a clean line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from fl_gitops.cli import main
from tests.commands.test_loud_errors import make_remote

BLUEPRINT = Path(__file__).resolve().parents[2] / "blueprints" / "digits-fedavg.yaml"
PATH = "experiments/digits"


def _closed_pipe(*argv: str) -> subprocess.CompletedProcess[bytes]:
    """Run the CLI with its stdout a pipe whose reader has already gone (`| head` done)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "fl_gitops.cli", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read()
    proc.stderr.close()
    return subprocess.CompletedProcess(proc.args, proc.wait(timeout=300), b"", err)


def test_schema_into_a_closed_pipe_ends_quietly() -> None:
    done = _closed_pipe("schema")
    assert (done.returncode, done.stderr) == (141, b"")


def test_history_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    remote = make_remote(tmp_path, [PATH])
    argv = ["history", "--repo", str(remote), "--path", PATH, "--workdir", str(tmp_path / "w")]
    done = _closed_pipe(*argv)
    assert (done.returncode, done.stderr) == (141, b"")


def test_history_plot_into_a_missing_directory_is_refused_before_cloning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    remote = make_remote(tmp_path, [PATH])
    plot = tmp_path / "no-such-dir" / "h.png"
    argv = ["history", "--repo", str(remote), "--path", PATH, "--workdir", str(tmp_path / "w")]
    assert main([*argv, "--plot", str(plot)]) == 2
    assert capsys.readouterr().err == (f"error: --plot {plot}: no such directory {plot.parent}\n")
    assert not (tmp_path / "w").exists()
    assert main([*argv, "--plot", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"error: --plot {tmp_path}: is a directory; expected a PNG file to write\n"
    )


def test_history_plot_with_no_round_draws_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    remote = make_remote(tmp_path, [PATH])
    plot = tmp_path / "h.png"
    argv = ["history", "--repo", str(remote), "--path", PATH, "--workdir", str(tmp_path / "w")]
    assert main([*argv, "--json", "--plot", str(plot)]) == 0
    assert capsys.readouterr().out == ("[]\nplot: none drawn, no round has been aggregated yet\n")
    assert not plot.exists()


def test_inventory_out_that_cannot_be_written_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "no-such-dir" / "inv.yaml"
    assert main(["inventory", str(BLUEPRINT), "--clusters", "3", "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"error: --out {out}: no such directory {out.parent}\n"
    assert main(["inventory", str(BLUEPRINT), "--clusters", "3", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        f"error: --out {tmp_path}: is a directory; expected a file to write\n"
    )


REPO_COMMANDS = [
    ["history"],
    ["status", "--no-hub"],
    ["rollback", "--to-round", "1"],
    ["reconcile", "--once"],
    ["verify"],
]


def _bad_repo_cases(tmp: Path) -> list[tuple[str, str]]:
    plain = tmp / "plain"
    plain.mkdir()
    missing = tmp / "missing"
    return [
        (str(missing), f"--repo {missing}: no such directory; expected a git repo (path or URL)"),
        (str(plain), f"--repo {plain}: not a git repository (no .git, not a bare repo)"),
        (
            f"file://{missing}",
            f"--repo file://{missing}: no such directory; expected a git repo (path or URL)",
        ),
    ]


@pytest.mark.parametrize("command", REPO_COMMANDS, ids=lambda c: c[0])
def test_a_bad_repo_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    if command[0] == "reconcile":
        command = [*command, "--local-hub", str(tmp_path / "hub")]
    for repo, message in _bad_repo_cases(tmp_path):
        argv = [*command, "--repo", repo, "--path", PATH, "--workdir", str(tmp_path / "w")]
        assert main(argv) == 2, repo
        assert capsys.readouterr().err == f"error: {message}\n"


@pytest.mark.parametrize("command", REPO_COMMANDS[:3], ids=lambda c: c[0])
def test_an_unreachable_repo_url_or_branch_exits_2_naming_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    url = "https://127.0.0.1:1/config.git"  # nothing listens on port 1
    argv = [*command, "--repo", url, "--path", PATH, "--workdir", str(tmp_path / "w")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --repo {url} (branch main): cannot be read: fetch of ")
    assert err.count("\n") >= 1 and "Traceback" not in err
    remote = make_remote(tmp_path, [PATH])
    argv = [*command, "--repo", str(remote), "--branch", "nope", "--path", PATH]
    assert main([*argv, "--workdir", str(tmp_path / "w2")]) == 2
    assert capsys.readouterr().err == (
        f"error: --repo {remote} (branch nope): cannot be read: "
        f"branch nope not found on remote {remote}\n"
    )


def test_status_with_a_local_hub_that_is_not_there_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    remote = make_remote(tmp_path, [PATH])
    hub = tmp_path / "no-hub"
    argv = ["status", "--repo", str(remote), "--path", PATH, "--workdir", str(tmp_path / "w")]
    assert main([*argv, "--local-hub", str(hub)]) == 2
    assert capsys.readouterr().err == (
        f"error: --local-hub {hub}: no such directory (a local hub's dir)\n"
    )


def test_dev_hub_dir_that_is_a_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "a-file"
    file.write_text("")
    assert main(["dev-hub", "--dir", str(file)]) == 2
    assert capsys.readouterr().err == (
        f"error: --dir {file}: not a directory; expected a folder for the dev hub\n"
    )
