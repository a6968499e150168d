"""status and history report as the other commands do: -o json|yaml documents with their
documented keys and nothing else on stdout, -q for scripts; and status without a hub says
what Git and the store know, and how to point it at one."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from fl_gitops.cli import main
from fl_gitops.commands.status import HUB_HINT
from tests.commands.stand import PATH, Experiment, no_hub_user, one_round_in

STATUS_KEYS = [
    "experiment",
    "path",
    "repo",
    "branch",
    "state",
    "round",
    "rounds",
    "attempt",
    "model",
    "message",
    "clusters",
    "aggregation",
    "metrics",
    "hub",
]
ROUND_KEYS = [
    "round",
    "commit",
    "committed_at",
    "model",
    "accuracy",
    "loss",
    "held_out",
    "contributors",
    "rejected",
    "seconds",
    "epsilon",
    "delta",
    "metrics",
    "rejected_reasons",
]


@pytest.fixture
def experiment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Experiment:
    no_hub_user(tmp_path, monkeypatch)
    return one_round_in(tmp_path)


def _argv(experiment: Experiment, command: str, *more: str) -> list[str]:
    return [command, "--repo", str(experiment.remote), "--path", PATH, *more]


def _out(capsys: pytest.CaptureFixture[str], argv: list[str], code: int = 0) -> str:
    assert main(argv) == code
    captured = capsys.readouterr()
    return captured.out


def test_status_without_any_hub_reports_git_and_the_store_and_how_to_point_it_at_a_hub(
    experiment: Experiment, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _out(capsys, _argv(experiment, "status"))
    lines = out.splitlines()
    assert lines[0].startswith("digits-small: Running, round 2 of 3 (attempt 1); model sha256:")
    assert "│ cluster-a │ Unknown │ no hub read; its update is in the store │" in lines
    assert "│ cluster-c │ Unknown │ no hub read; no update in the store yet │" in lines
    assert (
        "last aggregated: round 1, 3 contributors, 0 rejected; accuracy 51.06% (on the "
        "clusters' training data), train_accuracy=0.5106"
    ) in lines
    assert lines[-1] == HUB_HINT
    assert "--kubeconfig FILE" in HUB_HINT and "--local-hub DIR" in HUB_HINT
    assert "<workdir>/hub" in HUB_HINT


def test_status_as_json_without_a_hub(
    experiment: Experiment, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = json.loads(_out(capsys, _argv(experiment, "status", "-o", "json")))
    assert list(doc) == STATUS_KEYS
    assert doc["experiment"] == "digits-small" and doc["path"] == PATH
    assert (doc["state"], doc["round"], doc["rounds"], doc["attempt"]) == ("Running", 2, 3, 1)
    assert doc["repo"] == str(experiment.remote) and doc["branch"] == "main"
    assert doc["model"].startswith("sha256:") and len(doc["model"]) == 71
    stored = "no hub read; its update is in the store"
    missing = "no hub read; no update in the store yet"
    assert doc["clusters"] == [
        {"name": "cluster-a", "state": "Unknown", "reason": stored},
        {"name": "cluster-b", "state": "Unknown", "reason": stored},
        {"name": "cluster-c", "state": "Unknown", "reason": missing},
    ]
    assert doc["metrics"] == {
        "round": 1,
        "contributors": 3,
        "rejected": 0,
        "accuracy": doc["metrics"]["values"]["train_accuracy"],
        "loss": None,
        "held_out": False,
        "values": {"train_accuracy": doc["metrics"]["values"]["train_accuracy"]},
    }
    assert doc["hub"] == {"kind": "none", "read": False, "hint": HUB_HINT}


def test_status_as_yaml_is_the_json_document(
    experiment: Experiment, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = _argv(experiment, "status", "--local-hub", str(experiment.hub))
    as_json = json.loads(_out(capsys, [*argv, "-o", "json"]))
    as_yaml = YAML(typ="safe", pure=True).load(io.StringIO(_out(capsys, [*argv, "-o", "yaml"])))
    assert as_yaml == as_json
    assert list(as_yaml) == STATUS_KEYS
    assert [c["state"] for c in as_yaml["clusters"]] == ["Succeeded", "Succeeded", "Unknown"]
    assert as_yaml["hub"] == {"kind": "local", "read": True, "hint": None}


def test_status_with_no_hub_flag_gives_no_hint(
    experiment: Experiment, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = json.loads(_out(capsys, _argv(experiment, "status", "--no-hub", "-o", "json")))
    assert doc["hub"] == {"kind": "none", "read": False, "hint": None}
    assert doc["clusters"][2]["reason"] == "not read (--no-hub); no update in the store yet"


def test_status_quiet_is_one_line(
    experiment: Experiment, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _out(capsys, _argv(experiment, "status", "-q")) == (
        "digits-small: Running, round 2 of 3\n"
    )


def test_a_named_kubeconfig_that_is_broken_stays_an_error_naming_the_flag(
    experiment: Experiment, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-kubeconfig"
    assert main(_argv(experiment, "status", "--kubeconfig", str(missing))) == 2
    assert capsys.readouterr().err == (
        f"error: --kubeconfig {missing}: no such file; expected a kubeconfig\n"
    )
    broken = tmp_path / "kubeconfig"
    broken.write_text("clusters: [\n")
    assert main(_argv(experiment, "status", "--kubeconfig", str(broken))) == 2
    assert capsys.readouterr().err == (
        f"error: --kubeconfig {broken}: not valid YAML at line 2; expected a kubeconfig\n"
    )
    empty = tmp_path / "empty-kubeconfig"
    empty.write_text("apiVersion: v1\nkind: Config\n")
    assert main(_argv(experiment, "status", "--kubeconfig", str(empty))) == 2
    assert capsys.readouterr().err.startswith(f"error: --kubeconfig {empty}: ")


def test_a_kubeconfig_in_home_is_a_hub_to_read(
    experiment: Experiment, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "home" / ".kube").mkdir()
    (tmp_path / "home" / ".kube" / "config").write_text("not: a kubeconfig\n")
    # what the user keeps in ~/.kube/config is used, and its faults are said (not skipped)
    assert main(_argv(experiment, "status")) == 2
    assert capsys.readouterr().err.startswith("error: cannot configure the hub client from ")


def test_history_as_json_and_yaml(
    experiment: Experiment, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = json.loads(_out(capsys, _argv(experiment, "history", "-o", "json")))
    assert list(doc) == ["experiment", "rounds"] and doc["experiment"] == PATH
    (row,) = doc["rounds"]
    assert list(row) == ROUND_KEYS
    assert (row["round"], row["contributors"], row["rejected"], row["held_out"]) == (
        1,
        3,
        0,
        False,
    )
    assert len(row["commit"]) == 40 and row["model"].startswith("sha256:")
    as_yaml: Any = YAML(typ="safe", pure=True).load(
        io.StringIO(_out(capsys, _argv(experiment, "history", "-o", "yaml")))
    )
    assert as_yaml == doc


def test_history_json_alias_keeps_its_bare_list_and_is_hidden(
    experiment: Experiment, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = json.loads(_out(capsys, _argv(experiment, "history", "--json")))
    assert isinstance(rows, list) and [r["round"] for r in rows] == [1]
    assert {"round", "commit", "model", "accuracy", "loss", "contributors"} <= set(rows[0])
    with pytest.raises(SystemExit):
        main(["history", "--help"])
    assert "--json" not in capsys.readouterr().out


def test_history_document_keeps_stdout_to_itself_with_a_plot(
    experiment: Experiment, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    plot = tmp_path / "h.png"
    assert main(_argv(experiment, "history", "-o", "json", "--plot", str(plot))) == 0
    captured = capsys.readouterr()
    assert [r["round"] for r in json.loads(captured.out)["rounds"]] == [1]
    assert captured.err == f"plot: {plot}\n"
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_history_quiet_prints_a_round_and_its_model_per_line(
    experiment: Experiment, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = json.loads(_out(capsys, _argv(experiment, "history", "-o", "json")))
    model = doc["rounds"][0]["model"]
    assert _out(capsys, _argv(experiment, "history", "-q")) == f"1 {model}\n"


def test_history_plot_is_titled_with_the_experiments_name_not_its_path(
    experiment: Experiment, tmp_path: Path
) -> None:
    pytest.importorskip("matplotlib")
    from PIL import Image

    plot = tmp_path / "h.png"
    assert main(_argv(experiment, "history", "--plot", str(plot))) == 0
    with Image.open(plot) as image:
        title = image.text["Title"]
    assert title != PATH and "/" not in title
    assert title == "digits-small"  # the blueprint's metadata.name
