"""`fl-gitops verify` reports through the shared output contract: -o yaml is the same document
as -o json, -q prints only the problems and the verdict, and the exit code says the same
in every format."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from fl_gitops.cli import main
from tests.commands.test_loud_errors import make_remote

PATH = "experiments/digits"


def _verify(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], remote: Path, *args: str
) -> tuple[int, str]:
    workdir = tmp_path / f"clone-{len(list(tmp_path.glob('clone-*')))}"
    argv = ["verify", "--repo", str(remote), "--path", PATH, "--workdir", str(workdir), *args]
    code = main(argv)
    return code, capsys.readouterr().out


def _edit_a_record_outside_a_round_commit(tmp_path: Path, remote: Path) -> str:
    clone = tmp_path / "edit"
    subprocess.run(["git", "clone", "-q", str(remote), str(clone)], check=True)
    (clone / PATH / ".history").mkdir()
    (clone / PATH / ".history" / "round-1.yaml").write_text("round: 1\n")
    person = ["-c", "user.name=M", "-c", "user.email=m@example.com"]
    for argv in (["add", "-A"], [*person, "commit", "-q", "-m", "tidy"], ["push", "-q"]):
        subprocess.run(["git", *argv], cwd=clone, check=True)
    done = subprocess.run(
        ["git", "rev-parse", "--short=7", "HEAD"], cwd=clone, check=True, capture_output=True
    )
    return done.stdout.decode().strip()


def test_yaml_is_the_same_document_as_json_in_the_same_key_order(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    remote = make_remote(tmp_path, [PATH])
    code_json, out_json = _verify(tmp_path, capsys, remote, "-o", "json")
    code_yaml, out_yaml = _verify(tmp_path, capsys, remote, "-o", "yaml")
    assert (code_json, code_yaml) == (0, 0)
    doc = json.loads(out_json)
    assert yaml.safe_load(out_yaml) == doc
    assert list(doc) == [
        "experiment",
        "path",
        "store",
        "signatures",
        "reaggregated",
        "ok",
        "rounds",
        "aggregations",
        "entries",
        "problems",
    ]
    assert out_yaml.startswith("experiment: digits-fedavg\npath: experiments/digits\n")


def test_quiet_prints_only_the_problems_and_the_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    remote = make_remote(tmp_path, [PATH])
    assert _verify(tmp_path, capsys, remote, "-q") == (
        0,
        "verified 0 rounds of digits-fedavg: all checks hold (signatures not checked)\n",
    )
    sha = _edit_a_record_outside_a_round_commit(tmp_path, remote)
    assert _verify(tmp_path, capsys, remote, "-q") == (
        1,
        f"  problem  -  {sha}  -  the record of round 1 changed outside a round commit\n"
        "verified 0 rounds of digits-fedavg: 1 problem (signatures not checked)\n",
    )
    code, out = _verify(tmp_path, capsys, remote, "-o", "yaml")
    assert code == 1
    assert yaml.safe_load(out)["ok"] is False
