"""reconcile, status, history and rollback from the command line, on a real bare remote."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from fl_gitops.cli import main

from .fleet import EXP, PATH, Fleet, blueprint_text, git, make_remote

CLUSTERS = ["cluster-a", "cluster-b", "cluster-c"]


def test_reconcile_status_history_and_rollback_through_the_cli(tmp_path: Path, capsys):
    store = tmp_path / "store"
    remote = make_remote(tmp_path, blueprint_text(store, clusters=3, min_clusters=2))
    hub_dir = tmp_path / "hub"
    fleet = Fleet(tmp_path, remote, store, CLUSTERS, hub_dir=hub_dir)
    common = ["--repo", str(remote), "--path", PATH, "--workdir", str(tmp_path / "w")]
    hub = ["--local-hub", str(hub_dir)]

    assert main(["reconcile", *common, *hub, "--once"]) == 0
    assert capsys.readouterr().out.startswith("StartRound: round 1: 3 clusters placed")
    fleet.run_jobs()
    assert main(["reconcile", *common, *hub]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Aggregate: round 1 aggregated from 3 clusters [main ")

    assert main(["status", *common, *hub]) == 0
    out = capsys.readouterr().out
    assert f"{EXP}: Running, round 2 of 3 (attempt 1)" in out
    assert "cluster-a" in out and "last aggregated: round 1, 3 contributors, 0 rejected" in out

    assert main(["history", *common, "--json", "--plot", str(tmp_path / "h.png")]) == 0
    rows = json.loads(capsys.readouterr().out.split("plot:")[0])
    assert [(r["round"], r["contributors"], r["rejected"]) for r in rows] == [(1, 3, 0)]
    assert (
        rows[0]["model"]
        == yaml.safe_load(git(remote, "show", f"main:{PATH}/hub/round-state.yaml"))["data"][
            "globalModelDigest"
        ]
    )
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"

    before = git(remote, "rev-list", "--count", "main")
    assert main(["rollback", *common, "--to-round", "1"]) == 0
    assert git(remote, "rev-list", "--count", "main") == str(int(before) + 1)
    assert git(remote, "log", "-1", "--format=%s", "main") == f"fl({EXP}): rollback to round 1"
    state = yaml.safe_load(git(remote, "show", f"main:{PATH}/hub/round-state.yaml"))["data"]
    assert (state["round"], state["attempt"]) == ("1", "2")
    assert git(remote, "rev-list", "--merges", "main") == ""


def test_rollback_to_a_round_that_never_started_exits_2(tmp_path: Path, capsys):
    store = tmp_path / "store"
    remote = make_remote(tmp_path, blueprint_text(store))
    common = ["--repo", str(remote), "--path", PATH, "--workdir", str(tmp_path / "w")]
    assert main(["rollback", *common, "--to-round", "5"]) == 2
    err = capsys.readouterr().err
    assert f"error: {PATH}: no commit started round 5" in err
