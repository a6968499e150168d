"""``simulate --aggregation-shards N``: the rounds aggregated by the hub's shards, run as
the shard Job's indexes in local worker processes (``LocalHub``'s Job runner), end to end
with real training: the same final model and the same history as one pod's run."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from fl_gitops.cli import main

REPO = Path(__file__).resolve().parents[2]
STOCK = REPO / "blueprints" / "digits-fedavg.yaml"


def _simulate(work: Path, *extra: str) -> dict[str, Any]:
    args = ["simulate", str(STOCK), "--clusters", "3", "--rounds", "2", "--workdir", str(work)]
    assert main([*args, "--no-plot", "-q", *extra]) == 0
    return dict(json.loads((work / "report.json").read_text()))


def _history(report: dict[str, Any]) -> list[dict[str, Any]]:
    """What each round made and how it went, as Git records it (not its wall time)."""
    keep = ("round", "model", "accuracy", "loss", "contributors", "rejected", "rejected_reasons")
    return [{k: row[k] for k in keep} for row in report["rounds"]]


def _records(work: Path) -> list[dict[str, Any]]:
    import yaml

    git_dir = work / "config-repo.git"
    out = []
    for r in (1, 2):
        text = subprocess.run(
            ["git", "--git-dir", str(git_dir), "show",
             f"main:experiments/digits-fedavg/.history/round-{r}.yaml"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        out.append(yaml.safe_load(text))
    return out


def test_three_shards_give_the_final_model_and_history_of_one(tmp_path, capsys):
    one = _simulate(tmp_path / "one", "--aggregation-shards", "1")
    three = _simulate(tmp_path / "three", "--aggregation-shards", "3")
    assert three["phase"] == one["phase"] == "Completed"
    assert three["final_model"] == one["final_model"]
    assert _history(three) == _history(one)
    sharded = _records(tmp_path / "three")
    assert [r["aggregation"]["shards"] for r in sharded] == [3, 3]
    plain = _records(tmp_path / "one")
    assert "aggregation" not in plain[0]
    assert [{k: v for k, v in r.items() if k != "aggregation"} for r in sharded] == plain
    # The work dir is that run's: resumed with other shards, it is refused by the flag.
    capsys.readouterr()
    args = ["simulate", str(STOCK), "--clusters", "3", "--rounds", "2"]
    code = main([*args, "--workdir", str(tmp_path / "three"), "--aggregation-shards", "2"])
    assert code == 2
    assert "was started with --aggregation-shards 3, not 2" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "65"])
def test_aggregation_shards_out_of_range_exits_2(tmp_path, capsys, value):
    work = tmp_path / "sim"
    code = main(["simulate", str(STOCK), "--workdir", str(work), "--aggregation-shards", value])
    assert code == 2
    err = capsys.readouterr().err
    assert f"--aggregation-shards: expected 1 to 64, got {value}" in err
    assert "Traceback" not in err
