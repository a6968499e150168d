"""validate, render and simulate keep the habits kubectl and helm users bring: ``-o
json|yaml`` documents with stable keys and nothing else on stdout, ``-`` for standard
input, ``render --out -`` as one YAML stream, plain unwrapped output to a pipe, a closed
pipe ending quietly (141), and help that gives each flag's unit, format and default.

The CLI runs as a user runs it: a subprocess with real pipes, real files in tmp_path.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from fl_gitops.cli import main

REPO = Path(__file__).resolve().parents[2]
STOCK = REPO / "blueprints" / "digits-fedavg.yaml"


def _cli(
    *argv: str, stdin: bytes | None = None, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "fl_gitops.cli", *argv],
        input=stdin,
        capture_output=True,
        cwd=cwd,
        env={**os.environ, **env},
        timeout=300,
    )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("inv") / "clusters.yaml"
    assert main(["inventory", str(STOCK), "--clusters", "10", "--out", str(path)]) == 0
    return path


def _broken(tmp: Path) -> Path:
    """The stock blueprint with spec.rounds a string: one located error."""
    text = STOCK.read_text()
    assert "  rounds: 30\n" in text
    path = tmp / "broken.yaml"
    path.write_text(text.replace("  rounds: 30\n", "  rounds: many\n"))
    return path


def _rounds_line(path: Path) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if "rounds:" in line)


# -- validate ------------------------------------------------------------------------------


def test_validate_json_is_one_document_with_the_documented_keys() -> None:
    done = _cli("validate", str(STOCK), "-o", "json")
    assert (done.returncode, done.stderr) == (0, "")
    document = json.loads(done.stdout)
    assert list(document) == ["valid", "blueprints", "rendered"]
    assert document["valid"] is True
    assert document["blueprints"] == [
        {
            "file": str(STOCK),
            "valid": True,
            "experiment": {
                "name": "digits-fedavg",
                "namespace": "fl-system",
                "rounds": 30,
                "strategy": "fedavg",
                "path": "experiments/digits-fedavg",
            },
            "errors": [],
        }
    ]


def test_validate_json_of_a_broken_blueprint_locates_the_error_and_exits_2(
    tmp_path: Path,
) -> None:
    broken = _broken(tmp_path)
    line = _rounds_line(broken)
    done = _cli("validate", str(broken), "-o", "yaml")
    assert done.returncode == 2
    document = yaml.safe_load(done.stdout)  # stdout is the document alone, even on failure
    assert document["valid"] is False
    [result] = document["blueprints"]
    assert (result["file"], result["valid"], result["experiment"]) == (str(broken), False, None)
    [error] = result["errors"]
    assert error == {
        "file": str(broken),
        "line": line,
        "column": 11,
        "document": None,
        "object": None,
        "field": "spec.rounds",
        "message": error["message"],
    }
    # the error still reaches stderr, as an editor reads it
    assert done.stderr.startswith(f"error: {broken}:{line}:11: spec.rounds: ")


def test_validate_dash_reads_the_blueprint_from_stdin_and_names_it_stdin(tmp_path: Path) -> None:
    assert _cli("validate", "-", stdin=STOCK.read_bytes()).stdout == (
        "ok: <stdin>: Experiment fl-system/digits-fedavg\n"
    )
    broken = _broken(tmp_path)
    done = _cli("validate", "-", stdin=broken.read_bytes())
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: <stdin>:{_rounds_line(broken)}:11: spec.rounds: ")
    assert "Traceback" not in done.stderr


def test_validate_dash_twice_is_refused() -> None:
    done = _cli("validate", "-", "-", stdin=STOCK.read_bytes())
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "error: BLUEPRINT: '-' given more than once (standard input is read once)\n"
    )


def test_validate_rendered_json_names_the_file_document_object_and_field(
    tmp_path: Path, inventory: Path
) -> None:
    tree = tmp_path / "repo"
    assert main(["render", str(STOCK), "--inventory", str(inventory), "--out", str(tree)]) == 0
    placement = tree / "experiments/digits-fedavg/placement.yaml"
    placement.write_text(
        placement.read_text().replace("kind: Placement\n", "kind: Placement\nbogus: 1\n")
    )
    done = _cli("validate", "--rendered", str(tree), "-o", "json")
    assert done.returncode == 2
    [rendered] = json.loads(done.stdout)["rendered"]
    assert (rendered["dir"], rendered["valid"], rendered["files"]) == (str(tree), False, 19)
    assert rendered["errors"] == [
        {
            "file": str(placement),
            "line": None,
            "column": None,
            "document": 0,
            "object": "Placement/digits-fedavg",
            "field": "bogus",
            "message": "unknown field; allowed: apiVersion, kind, metadata, spec, status",
        }
    ]
    assert done.stderr == (
        f"error: {placement}#0: Placement/digits-fedavg: bogus: unknown field; allowed: "
        "apiVersion, kind, metadata, spec, status\n"
    )


def test_validate_quiet_prints_nothing_when_valid() -> None:
    done = _cli("validate", str(STOCK), "-q")
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


# -- render --------------------------------------------------------------------------------


def _stream_documents(stream: str) -> dict[str, str]:
    """``# Source: path`` → the text that follows it, up to the next file's ``---``."""
    files: dict[str, str] = {}
    chunks = stream.split("---\n# Source: ")
    assert chunks[0] == ""  # the stream starts with the first file's marker
    for chunk in chunks[1:]:
        path, _, body = chunk.partition("\n")
        files[path] = body
    return files


def test_render_out_dash_streams_the_tree_it_would_write_and_writes_nothing(
    tmp_path: Path, inventory: Path
) -> None:
    here = tmp_path / "cwd"
    here.mkdir()
    done = _cli("render", str(STOCK), "--inventory", str(inventory), "--out", "-", cwd=here)
    assert (done.returncode, done.stderr) == (0, "")
    assert list(here.iterdir()) == []  # nothing written, not even a directory named "-"
    streamed = _stream_documents(done.stdout)

    tree = tmp_path / "tree"
    assert main(["render", str(STOCK), "--inventory", str(inventory), "--out", str(tree)]) == 0
    written = {
        p.relative_to(tree).as_posix(): p.read_text() for p in tree.rglob("*") if p.is_file()
    }
    assert list(streamed) == sorted(written)  # every file, in the tree's path order
    assert streamed == written  # each exactly as it would be written
    # one YAML stream a YAML reader takes whole: 10 ManifestWorks among the objects
    kinds = [d["kind"] for d in yaml.safe_load_all(done.stdout) if d]
    assert kinds.count("ManifestWork") == 10


def test_render_reads_the_blueprint_or_the_inventory_from_stdin(
    tmp_path: Path, inventory: Path
) -> None:
    expected = _cli("render", str(STOCK), "--inventory", str(inventory), "--out", "-").stdout
    from_stdin = _cli(
        "render", "-", "--inventory", str(inventory), "--out", "-", stdin=STOCK.read_bytes()
    )
    assert (from_stdin.returncode, from_stdin.stdout) == (0, expected)
    inventory_stdin = _cli(
        "render", str(STOCK), "--inventory", "-", "--out", "-", stdin=inventory.read_bytes()
    )
    assert (inventory_stdin.returncode, inventory_stdin.stdout) == (0, expected)
    broken = _broken(tmp_path)
    done = _cli(
        "render", "-", "--inventory", str(inventory), "--out", "-", stdin=broken.read_bytes()
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith(f"error: <stdin>:{_rounds_line(broken)}:11: spec.rounds: ")


def test_render_inventory_errors_from_stdin_name_stdin() -> None:
    done = _cli("render", str(STOCK), "--inventory", "-", "--out", "-", stdin=b"[1, 2]\n")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.startswith("error: <stdin>")
    assert "/dev/stdin" not in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["-", "--inventory", "-", "--out", "-"],
            "BLUEPRINT and --inventory: only one of them can be '-' (standard input is read once)",
        ),
        (
            [str(STOCK), "--inventory", "INV", "--out", "-", "--check"],
            "--check and --out -: --check compares with a tree on disk, and --out - writes "
            "none (give --out DIR with --check)",
        ),
        (
            [str(STOCK), "--inventory", "INV", "--out", "-", "-o", "json"],
            "--out - and -o json: --out - prints the manifests themselves on stdout, which "
            "leaves no room for a report document",
        ),
    ],
)
def test_render_flags_that_cannot_work_together_are_refused_by_name(
    inventory: Path, flags: list[str], message: str
) -> None:
    argv = [str(inventory) if f == "INV" else f for f in flags]
    done = _cli("render", *argv, stdin=STOCK.read_bytes())
    assert (done.returncode, done.stdout, done.stderr) == (2, "", f"error: {message}\n")


def test_render_json_reports_what_was_written_then_check_reports_the_drift(
    tmp_path: Path, inventory: Path
) -> None:
    out = tmp_path / "repo"
    argv = ["render", str(STOCK), "--inventory", str(inventory), "--out", str(out)]
    done = _cli(*argv, "-o", "json")
    assert (done.returncode, done.stderr) == (0, "")
    document = json.loads(done.stdout)
    assert list(document) == ["out", "check", "experiments"]
    [exp] = document["experiments"]
    assert list(exp) == [
        "experiment",
        "namespace",
        "path",
        "round",
        "clusters",
        "applied",
        "up_to_date",
        "added",
        "changed",
        "removed",
        "unchanged",
        "files",
    ]
    assert (exp["experiment"], exp["namespace"], exp["round"]) == ("digits-fedavg", "fl-system", 1)
    assert exp["clusters"] == {"placed": 10, "feasible": 10, "inventory": 10, "source": "preview"}
    assert exp["applied"] is True and exp["up_to_date"] is False
    assert exp["added"] == exp["files"] and exp["unchanged"] == 0
    assert len(exp["files"]) == len([p for p in out.rglob("*") if p.is_file()])

    # A hand edit: --check -o json exits 1, the document names the file, no diff on stdout.
    placement = out / "experiments/digits-fedavg/placement.yaml"
    placement.write_text(placement.read_text() + "# edited\n")
    check = _cli(*argv, "--check", "-o", "json")
    assert check.returncode == 1
    document = json.loads(check.stdout)
    [exp] = document["experiments"]
    assert (document["check"], exp["applied"], exp["up_to_date"]) == (True, False, False)
    assert (exp["added"], exp["changed"], exp["removed"]) == (
        [],
        ["experiments/digits-fedavg/placement.yaml"],
        [],
    )
    assert check.stderr == (
        "out of date: experiments/digits-fedavg: 1 files differ from a fresh render\n"
    )


def test_render_text_to_a_pipe_is_one_unwrapped_line_without_colour(
    tmp_path: Path, inventory: Path
) -> None:
    out = tmp_path / "repo"
    argv = ["render", str(STOCK), "--inventory", str(inventory), "--out", str(out)]
    done = _cli(*argv, COLUMNS="40", FORCE_COLOR="", TERM="xterm-256color")
    assert done.returncode == 0
    assert done.stdout == (
        "rendered experiments/digits-fedavg: round 1, 10 clusters placed (10 feasible of "
        "10); 19 files written, 0 removed, 0 unchanged\n"
    )
    assert _cli(*argv, "-q").stdout == ""
    placement = "experiments/digits-fedavg/placement.yaml"
    (out / placement).write_text("# edited\n")
    verbose = _cli(*argv, "-v").stdout.splitlines()
    assert verbose[1:] == [f"  changed: {placement}"]


# -- simulate ------------------------------------------------------------------------------


def _quick(tmp: Path) -> Path:
    path = tmp / "digits.yaml"
    path.write_text(STOCK.read_text().replace("epochs: 5", "epochs: 1"))
    return path


def test_simulate_json_summary_is_stdout_alone_and_the_commentary_goes_to_stderr(
    tmp_path: Path,
) -> None:
    work = tmp_path / "sim"
    argv = ["simulate", str(_quick(tmp_path)), "--clusters", "3", "--rounds", "2"]
    done = _cli(*argv, "--workdir", str(work), "--no-plot", "-o", "json")
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert list(document) == [
        "experiment",
        "state",
        "message",
        "already_finished",
        "rounds",
        "final",
        "centralized_accuracy",
        "tampered",
        "workdir",
        "report",
        "plot",
        "config_repo",
        "seconds",
    ]
    assert (document["experiment"], document["state"]) == ("digits-fedavg", "Completed")
    assert [r["round"] for r in document["rounds"]] == [1, 2]
    report = json.loads((work / "report.json").read_text())
    assert document["final"] == {
        "digest": report["final_model"],
        "path": report["final_model_path"],
        "accuracy": report["rounds"][-1]["accuracy"],
        "loss": report["rounds"][-1]["loss"],
    }
    assert (document["report"], document["plot"]) == (str(work / "report.json"), None)
    assert "round   2: accuracy" in done.stderr
    # run again: answered at once, the same keys, exit 0
    again = _cli(*argv, "--workdir", str(work), "--no-plot", "-o", "yaml")
    assert again.returncode == 0
    document = yaml.safe_load(again.stdout)
    assert (document["already_finished"], document["final"]["digest"]) == (
        True,
        report["final_model"],
    )
    quiet = _cli(*argv, "--workdir", str(work), "--no-plot", "-q")
    assert (quiet.returncode, quiet.stdout) == (0, report["final_model"] + "\n")


def test_simulate_json_of_a_failed_run_is_still_the_document_alone_and_exits_1(
    tmp_path: Path,
) -> None:
    argv = ["simulate", str(_quick(tmp_path)), "--rounds", "2", "--fail-rate", "0.6"]
    done = _cli(*argv, "--workdir", str(tmp_path / "sim"), "--no-plot", "-o", "json")
    assert done.returncode == 1
    document = json.loads(done.stdout)
    reason = "round 1: 4 of 10 clusters succeeded, 6 failed; quorum is 8"
    assert (document["state"], document["message"]) == ("Failed", reason)
    assert (document["rounds"], document["final"], document["plot"]) == ([], None, None)
    assert done.stderr.endswith(f"error: digits-fedavg: Failed: {reason}\n")


def test_simulate_into_a_closed_pipe_ends_quietly_with_141(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "fl_gitops.cli", "simulate", str(_quick(tmp_path))]
    argv += ["--clusters", "3", "--rounds", "2", "--workdir", str(tmp_path / "sim"), "--no-plot"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # `| head -1` done before the run's first line
    err = proc.stderr.read()
    proc.stderr.close()
    assert (proc.wait(timeout=300), err) == (141, b"")


def test_simulate_text_to_a_pipe_is_plain_and_keeps_long_lines_whole(tmp_path: Path) -> None:
    work = tmp_path / ("a-work-dir-whose-path-is-longer-than-eighty-columns-" + "x" * 40)
    argv = ["simulate", str(_quick(tmp_path)), "--clusters", "3", "--rounds", "1"]
    done = _cli(*argv, "--workdir", str(work), "--no-plot", COLUMNS="40", TERM="xterm")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"starting digits-fedavg: 1 rounds over 3 clusters in {work}"
    assert lines[1].startswith("round   1: accuracy ")
    report = json.loads((work / "report.json").read_text())
    assert f"final model: {report['final_model']}" in lines
    assert f"  {report['final_model_path']}" in lines
    assert "\x1b" not in done.stdout + done.stderr  # no colour, no cursor codes, no bar


def test_simulate_on_a_terminal_with_no_color_prints_no_colour(tmp_path: Path) -> None:
    """On a terminal (a pty) with NO_COLOR set: no colour escape sequence at all."""
    import pty

    argv = [sys.executable, "-m", "fl_gitops.cli", "simulate", str(_quick(tmp_path))]
    argv += ["--clusters", "3", "--rounds", "1", "--workdir", str(tmp_path / "sim"), "--no-plot"]
    env = {**os.environ, "NO_COLOR": "1", "TERM": "xterm-256color"}
    env.pop("FORCE_COLOR", None)
    leader, follower = pty.openpty()
    proc = subprocess.Popen(argv, stdout=follower, stderr=follower, env=env)
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed its end
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    assert proc.wait(timeout=300) == 0
    text = seen.decode("utf-8", "replace")
    assert "final model: sha256:" in text
    # SGR colour codes: 30-37/90-97 foreground, 38;5/38;2 extended; none with NO_COLOR
    import re

    assert not re.search(r"\x1b\[[0-9;]*(3[0-8]|9[0-7])[;m]", text), text[:2000]


@pytest.mark.parametrize("gap", [0.0, 0.2, 0.5, 0.9])
def test_simulate_interrupted_twice_exits_130_not_killed_by_sigint(
    tmp_path: Path, gap: float
) -> None:
    """A second Ctrl-C while the first one's exit is under way (a user pressing again,
    ``timeout -s INT`` signalling the command and its group): still "interrupted" and
    130. The interpreter puts SIGINT back to the default once its exit handlers ran, and
    finalizing with torch loaded takes about a second: before the fix, each of these
    runs died by SIGINT (-2) after printing "interrupted"."""
    argv = [sys.executable, "-m", "fl_gitops.cli", "simulate", str(_quick(tmp_path))]
    argv += ["--clusters", "3", "--rounds", "6", "--workdir", str(tmp_path / "sim"), "--no-plot"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:  # blocks until the run is under way; nothing is polled
        if line.startswith("round   1:"):
            break
    else:
        raise AssertionError("the simulation ended before round 1")
    proc.send_signal(signal.SIGINT)
    time.sleep(gap)  # where the second Ctrl-C lands in the first one's exit
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert (proc.returncode, err) == (130, "interrupted\n")


INTERRUPTED_IN_STRING_CODE = """
import os, signal, sys, threading
from fl_gitops.commands._interrupt import interrupt_once

def main():
    try:
        with interrupt_once():
            threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
            while True:  # code compiled from a string, as dataclasses runs it per class
                exec("for _ in range(100_000): pass")
    except KeyboardInterrupt:  # as cli.main does
        print("interrupted", file=sys.stderr)
        return 130

sys.exit(main())
"""


def test_one_ctrl_c_landing_in_code_compiled_from_a_string_still_exits_130(
    tmp_path: Path,
) -> None:
    """Under ``python -m`` (how the tests and `python -m fl_gitops.cli` run it), CPython
    killed the process by SIGINT at exit when the one KeyboardInterrupt had escaped an
    ``exec`` of a string, however it was caught later: the random -2 after "interrupted"
    of an interrupt during imports. Deterministic here: the loop is all exec'd code."""
    (tmp_path / "interrupted_in_exec.py").write_text(INTERRUPTED_IN_STRING_CODE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    for _ in range(3):
        done = subprocess.run(
            [sys.executable, "-m", "interrupted_in_exec"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert (done.returncode, done.stderr) == (130, "interrupted\n")


# -- help ----------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["validate", "render", "simulate"])
def test_every_flag_says_its_default_or_that_it_is_required(command: str) -> None:
    import importlib

    module = importlib.import_module(f"fl_gitops.commands.{command}")
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    for action in parser._actions:
        # -h, and -q/-v whose help is the shared contract's (commands/_output.py)
        if isinstance(action, argparse._HelpAction) or action.dest in ("quiet", "verbose"):
            continue
        assert action.help, action.dest
        if action.option_strings and not action.required:
            assert "default" in action.help, (action.option_strings, action.help)
