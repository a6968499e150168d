"""Where you stand is enough: inside a clone, history, status, rollback and reconcile find
the repo (the clone's upstream) and the experiment (the folder you are in, else the repo's
only one); flags, then FL_GITOPS_* variables, override what is found."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from fl_gitops.cli import main
from tests.commands.stand import PATH, clone, git, no_hub_user, one_round_in
from tests.commands.test_loud_errors import make_remote


@pytest.fixture(autouse=True)
def _user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    no_hub_user(tmp_path, monkeypatch)


def _history(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[dict[str, Any], str]:
    assert main(["history", "-o", "json", *argv]) == 0
    captured = capsys.readouterr()
    return json.loads(captured.out), captured.err


def test_history_inside_a_clone_reads_its_upstream_and_the_experiment_you_are_in(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the clone was made before round 1 was aggregated: what it holds is a round behind
    experiment = one_round_in(tmp_path, clone_at="clone")
    inside = tmp_path / "clone" / PATH / "hub"
    monkeypatch.chdir(inside)
    doc, err = _history(capsys)
    assert doc["experiment"] == PATH
    assert [r["round"] for r in doc["rounds"]] == [1]
    assert err == (
        f"repo: {experiment.remote}, the upstream of the work tree {tmp_path / 'clone'}, "
        "branch main; uncommitted or unpushed changes are not seen\n"
    )


def test_status_inside_a_clone_needs_no_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    one_round_in(tmp_path)
    monkeypatch.chdir(clone(tmp_path / "remote.git", tmp_path / "clone"))
    assert main(["status", "-q"]) == 0
    assert capsys.readouterr().out == "digits-small: Running, round 2 of 3\n"


def test_reconcile_and_rollback_inside_a_clone_commit_to_its_upstream(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    experiment = one_round_in(tmp_path)
    mine = clone(experiment.remote, tmp_path / "clone")
    monkeypatch.chdir(mine / PATH)
    before = git(experiment.remote, "rev-parse", "main")
    experiment.fleet.run_jobs()  # cluster-c reports too: round 2 can be aggregated
    assert main(["reconcile", "--local-hub", str(experiment.hub)]) == 0
    assert capsys.readouterr().out.startswith("Aggregate: round 2 aggregated from 3 clusters")
    assert git(experiment.remote, "rev-parse", "main~1") == before
    assert main(["rollback", "--to-round", "2"]) == 0
    assert capsys.readouterr().out.startswith("rolled back to round 2: main ")
    subject = git(experiment.remote, "log", "-1", "--format=%s", "main")
    assert subject == "fl(digits-small): rollback to round 2"
    assert git(mine, "rev-parse", "HEAD") == before  # nothing was committed in the clone


def test_a_worktree_is_found_through_its_git_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    experiment = one_round_in(tmp_path)
    mine = clone(experiment.remote, tmp_path / "clone")
    git(mine, "worktree", "add", "-q", "-b", "feature", str(tmp_path / "wt"), "origin/main")
    assert (tmp_path / "wt" / ".git").is_file()
    monkeypatch.chdir(tmp_path / "wt" / PATH)
    doc, err = _history(capsys)
    assert [r["round"] for r in doc["rounds"]] == [1]
    assert f"repo: {experiment.remote}, the upstream of the work tree {tmp_path / 'wt'}" in err


def test_a_work_tree_with_no_upstream_is_read_itself_without_its_uncommitted_edits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = make_remote(tmp_path, ["experiments/digits"])
    local = tmp_path / "local"
    git(tmp_path, "clone", "-q", str(remote), str(local))
    git(local, "remote", "remove", "origin")
    (local / "experiments" / "draft").mkdir()  # a new experiment, never committed
    (local / "experiments" / "draft" / "blueprint.yaml").write_text("draft: true\n")
    monkeypatch.chdir(local)
    doc, err = _history(capsys)
    assert doc == {"experiment": "experiments/digits", "rounds": []}
    assert err == (
        f"repo: the work tree {local} (it has no upstream), branch main; "
        "uncommitted changes are not seen\n"
    )
    monkeypatch.chdir(local / "experiments" / "draft")
    assert main(["history"]) == 2
    assert capsys.readouterr().err.endswith(
        f"error: --path experiments/draft: no experiment (blueprint.yaml) in {local} (main); "
        "the repo holds: experiments/digits\n"
    )


def test_a_repo_of_several_experiments_asks_for_path_unless_you_are_in_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = make_remote(tmp_path, ["experiments/digits", "experiments/mnist"])
    mine = clone(remote, tmp_path / "clone")
    for command in (["history"], ["status"], ["rollback", "--to-round", "1"]):
        monkeypatch.chdir(mine / "experiments")
        assert main([*command, "-q"] if command[0] != "rollback" else command) == 2, command
        assert capsys.readouterr().err.endswith(
            f"error: --path: not given, and {remote} (main) holds 2 experiments: "
            "experiments/digits, experiments/mnist; name one with --path, or run the "
            "command inside its folder\n"
        )
    monkeypatch.chdir(mine / "experiments" / "mnist")
    doc, _ = _history(capsys)
    assert doc["experiment"] == "experiments/mnist"


def test_flags_override_what_the_work_tree_says(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    one_round_in(tmp_path)
    (tmp_path / "other").mkdir()
    other = make_remote(tmp_path / "other", ["experiments/digits", "experiments/mnist"])
    monkeypatch.chdir(clone(tmp_path / "remote.git", tmp_path / "clone") / PATH)
    doc, err = _history(capsys, "--repo", str(other), "--path", "experiments/mnist")
    assert (doc, err) == ({"experiment": "experiments/mnist", "rounds": []}, "")


def test_environment_defaults_sit_below_flags_and_above_the_work_tree(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    experiment = one_round_in(tmp_path)
    (tmp_path / "other").mkdir()
    other = make_remote(tmp_path / "other", ["experiments/digits", "experiments/mnist"])
    monkeypatch.chdir(tmp_path)  # in no work tree
    monkeypatch.setenv("FL_GITOPS_REPO", str(experiment.remote))
    monkeypatch.setenv("FL_GITOPS_PATH", PATH)
    doc, err = _history(capsys)
    assert ([r["round"] for r in doc["rounds"]], err) == ([1], "")
    # inside a clone of another repo, the variables still win over it
    monkeypatch.chdir(clone(other, tmp_path / "clone-of-other") / "experiments" / "mnist")
    doc, err = _history(capsys)
    assert (doc["experiment"], err) == (PATH, "")
    # and a flag wins over a variable
    doc, _ = _history(capsys, "--repo", str(other), "--path", "experiments/digits")
    assert doc == {"experiment": "experiments/digits", "rounds": []}
    monkeypatch.setenv("FL_GITOPS_BRANCH", "nope")
    assert main(["history"]) == 2
    assert capsys.readouterr().err == (
        f"error: $FL_GITOPS_REPO {experiment.remote} (branch nope): cannot be read: "
        f"branch nope not found on remote {experiment.remote}\n"
    )
    assert main(["history", "--branch", "main"]) == 0
    capsys.readouterr()


def test_a_bad_value_from_a_variable_is_named_by_the_variable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    experiment = one_round_in(tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FL_GITOPS_REPO", str(experiment.remote))
    monkeypatch.setenv("FL_GITOPS_PATH", "experiments/nope")
    assert main(["history"]) == 2
    assert capsys.readouterr().err == (
        f"error: $FL_GITOPS_PATH experiments/nope: no experiment (blueprint.yaml) in "
        f"{experiment.remote} (main); the repo holds: {PATH}\n"
    )
    monkeypatch.setenv("FL_GITOPS_PATH", PATH)
    monkeypatch.setenv("FL_GITOPS_LOCAL_HUB", str(tmp_path / "no-hub"))
    assert main(["status"]) == 2
    assert capsys.readouterr().err == (
        f"error: $FL_GITOPS_LOCAL_HUB {tmp_path / 'no-hub'}: no such directory "
        "(a local hub's dir)\n"
    )
    monkeypatch.delenv("FL_GITOPS_LOCAL_HUB")
    monkeypatch.setenv("FL_GITOPS_KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    assert main(["status"]) == 2
    assert capsys.readouterr().err == (
        f"error: $FL_GITOPS_KUBECONFIG {tmp_path / 'no-kubeconfig'}: no such file; "
        "expected a kubeconfig\n"
    )
    # a hub flag the user typed outranks the variable
    assert main(["status", "--local-hub", str(experiment.hub), "-q"]) == 0
    assert capsys.readouterr().out == "digits-small: Running, round 2 of 3\n"


def test_outside_any_work_tree_without_repo_exits_2_naming_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for command in (["history"], ["status"], ["rollback", "--to-round", "1"], ["reconcile"]):
        assert main(command) == 2
        assert capsys.readouterr().err == (
            f"error: --repo: not given, $FL_GITOPS_REPO is not set and {tmp_path} is in no "
            "git work tree; expected --repo URL (a path, file://, https or ssh) or to run "
            "inside a clone\n"
        )


def test_the_local_hub_variable_is_the_default_of_local_hub(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    experiment = one_round_in(tmp_path)
    monkeypatch.chdir(clone(experiment.remote, tmp_path / "clone"))
    monkeypatch.setenv("FL_GITOPS_LOCAL_HUB", str(experiment.hub))
    assert main(["status", "-o", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["hub"] == {"kind": "local", "read": True, "hint": None}
    states = {c["name"]: c["state"] for c in doc["clusters"]}
    assert states == {"cluster-a": "Succeeded", "cluster-b": "Succeeded", "cluster-c": "Unknown"}


def test_a_round_state_read_from_the_upstream_not_the_stale_clone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    experiment = one_round_in(tmp_path, clone_at="clone")
    stale = yaml.safe_load((tmp_path / "clone" / PATH / "hub" / "round-state.yaml").read_text())
    assert stale["data"]["round"] == "1"
    monkeypatch.chdir(tmp_path / "clone")
    assert main(["status", "--local-hub", str(experiment.hub), "-q"]) == 0
    assert capsys.readouterr().out == "digits-small: Running, round 2 of 3\n"


def test_a_password_in_the_upstream_url_is_never_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = make_remote(tmp_path, ["experiments/digits"])
    mine = clone(remote, tmp_path / "clone")
    url = "https://fl-bot:s3cr3t-token@127.0.0.1:1/config.git"  # nothing listens on port 1
    git(mine, "remote", "set-url", "origin", url)
    monkeypatch.chdir(mine)
    assert main(["history", "--workdir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err
    assert "s3cr3t-token" not in err
    assert err == (
        "repo: https://fl-bot:***@127.0.0.1:1/config.git, the upstream of the work tree "
        f"{mine}, branch main; uncommitted or unpushed changes are not seen\n"
        "error: repo URL https://fl-bot@127.0.0.1:1/config.git: carries a password; put "
        "the token in FL_GIT_TOKEN or a mounted Secret (FL_GIT_CREDENTIALS_DIR) instead\n"
    )


def test_the_upstream_is_read_from_the_config_as_git_writes_it(tmp_path: Path) -> None:
    from fl_gitops.commands._discover import discover_work_tree

    top = tmp_path / "repo"
    git(tmp_path, "init", "-q", "-b", "work", str(top))
    with (top / ".git" / "config").open("a") as config:
        config.write(
            '[remote "up"] ; the hub\'s repo\n'
            '\turl = "../hub repo.git" # quoted, with a space\n'
            "[branch.work]\n"  # the old spelling of [branch "work"]
            "\tremote = up\n"
            "\tmerge = refs/heads/release\n"
        )
    (top / "sub" / "deeper").mkdir(parents=True)
    tree = discover_work_tree(top / "sub" / "deeper")
    assert tree is not None
    assert (tree.top, tree.url, tree.branch, tree.upstream) == (
        top,
        str(tmp_path / "hub repo.git"),
        "release",
        True,
    )
