"""`simulate --tamper-store K`: a party with write access to the bucket, and nothing else.

After K clusters of a round have reported through the hub, their updates in the store
are replaced by valid-looking ones with metadata rewritten to match. The hub still holds
what each cluster reported, so every tampered update is rejected naming both digests,
the round goes on with the rest, and report.json and the round record say so.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from fl_gitops.cli import main
from fl_gitops.tensors import UPDATE_DIGEST_PATTERN

REPO = Path(__file__).resolve().parents[2]
STOCK = REPO / "blueprints" / "digits-fedavg.yaml"
DIGEST = UPDATE_DIGEST_PATTERN.strip("^$")


def _blueprint(tmp: Path) -> Path:
    text = STOCK.read_text()
    assert "minClusters: 8 " in text
    path = tmp / "blueprint.yaml"
    path.write_text(text.replace("minClusters: 8 ", "minClusters: 2 "))
    return path


def test_tampered_updates_are_rejected_naming_both_digests_and_the_run_goes_on(tmp_path, capsys):
    work = tmp_path / "sim"
    args = ["simulate", str(_blueprint(tmp_path)), "--clusters", "3", "--rounds", "2"]
    assert main([*args, "--workdir", str(work), "--no-plot", "--tamper-store", "1"]) == 0
    out = capsys.readouterr().out
    report = json.loads((work / "report.json").read_text())
    assert report["phase"] == "Completed"
    assert [(r["round"], r["contributors"], r["rejected"]) for r in report["rounds"]] == [
        (1, 2, 1),
        (2, 2, 1),
    ]
    tampered = report["tampered"]
    assert [(t["round"], t["aggregated"]) for t in tampered] == [(1, True), (2, True)]
    for item in tampered:
        reason = item["rejected"]
        match = re.fullmatch(
            f"the store's update hashes to ({DIGEST}), the hub reported ({DIGEST})", reason
        )
        assert match and match.group(1) != match.group(2), reason
        # the digest the hub holds is the one the cluster's Job reported
        round_ = item["round"]
        result = work / "jobs" / item["cluster"] / item["job"] / "result.json"
        assert json.loads(result.read_text())["digest"] == match.group(2)
        # the round record in Git says the same
        record = yaml.safe_load(
            subprocess.run(
                [
                    "git",
                    "--git-dir",
                    str(work / "config-repo.git"),
                    "show",
                    f"main:experiments/digits-fedavg/.history/round-{round_}.yaml",
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        assert record["rejected"] == {item["cluster"]: reason}
        assert item["cluster"] not in record["contributors"]
        assert f"tampered update of {item['cluster']} ({item['job']}): rejected ({reason})" in out


@pytest.mark.parametrize("value", ["-1", "4"])
def test_tamper_store_outside_the_fleet_exits_2_naming_the_flag(tmp_path, capsys, value):
    args = ["simulate", str(STOCK), "--clusters", "3", "--workdir", str(tmp_path / "s")]
    assert main([*args, "--tamper-store", value]) == 2
    assert capsys.readouterr().err.strip() == f"error: --tamper-store: expected 0 to 3, got {value}"
    assert not os.path.exists(tmp_path / "s")
