"""The example config repo is what its own CI would accept: rendered, valid, up to date."""

from __future__ import annotations

from pathlib import Path

import yaml

from fl_gitops.cli import main

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "config-repo"
BLUEPRINT = EXAMPLE / "experiments" / "digits-fedavg" / "blueprint.yaml"
INVENTORY = EXAMPLE / "inventory" / "managedclusters.yaml"


def test_the_example_tree_is_up_to_date_with_its_blueprint(capsys):
    argv = ["render", str(BLUEPRINT), "--inventory", str(INVENTORY), "--out", str(EXAMPLE)]
    assert main([*argv, "--bootstrap", "--check"]) == 0, capsys.readouterr().out


def test_every_object_of_the_example_validates(capsys):
    assert main(["validate", str(BLUEPRINT), "--rendered", str(EXAMPLE)]) == 0
    assert "error" not in capsys.readouterr().err


def test_the_example_blueprint_is_the_stock_reference():
    assert BLUEPRINT.read_bytes() == (REPO / "blueprints" / "digits-fedavg.yaml").read_bytes()


def test_the_ci_workflows_run_validate_and_render_check():
    github = yaml.safe_load((EXAMPLE / ".github/workflows/fl-gitops.yml").read_text())
    gitlab = yaml.safe_load((EXAMPLE / ".gitlab-ci.yml").read_text())
    for text in (str(github), str(gitlab)):
        assert "fl-gitops validate" in text
        assert "--check" in text
