"""`fl-gitops inventory -o yaml|json`, as `kubectl get managedclusters -o ...` prints a fleet;
the old --json means -o json, and `--json -o yaml` is refused rather than one of them ignored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from fl_gitops.cli import main

BLUEPRINT = Path(__file__).resolve().parents[2] / "blueprints" / "digits-fedavg.yaml"
FLEET = ["inventory", str(BLUEPRINT), "--clusters", "3"]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main([*FLEET, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_o_json_prints_the_fleet_as_a_json_list_as_json_did(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = _run(capsys, "-o", "json")
    assert code == 0
    listing = json.loads(out)
    assert (listing["kind"], len(listing["items"])) == ("List", 3)
    assert _run(capsys, "--json")[1] == out
    assert yaml.safe_load(_run(capsys)[1]) == listing  # yaml by default, the same fleet
    assert _run(capsys, "-o", "yaml")[1] == _run(capsys)[1]


def test_json_with_o_yaml_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(capsys, "--json", "-o", "yaml") == (
        2,
        "",
        "error: --json conflicts with -o yaml: give one of them\n",
    )


def test_quiet_leaves_out_the_wrote_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fleet.yaml"
    assert _run(capsys, "--out", str(out)) == (0, "", f"wrote 3 ManagedClusters to {out}\n")
    assert _run(capsys, "--out", str(out), "-q") == (0, "", "")
    assert len(yaml.safe_load(out.read_text())["items"]) == 3
