"""`fl-gitops init`: a commented starter blueprint that validates, renders and simulates
as written, never written over an existing file without --force."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from fl_gitops.blueprint import load_blueprint
from fl_gitops.cli import main

# An optional setting, commented out at its default: '# ' before a `key:`.
_OPTION = re.compile(r"^(\s*)# (\s*[A-Za-z]+:( |$))", re.MULTILINE)


def _render(blueprint: Path, out: Path) -> dict[str, str]:
    """The tree `render` writes from a fleet of 4 (the blueprint's own copy left out, its
    digest blanked)."""
    inventory = out.parent / f"{out.name}-inventory.yaml"
    assert main(["inventory", str(blueprint), "--clusters", "4", "--out", str(inventory)]) == 0
    assert main(["render", str(blueprint), "--inventory", str(inventory), "--out", str(out)]) == 0
    digest = load_blueprint(blueprint).digest
    return {
        p.relative_to(out).as_posix(): p.read_text().replace(digest, "sha256:<blueprint>")
        for p in out.rglob("*")
        if p.is_file() and p.name != "blueprint.yaml"
    }


def test_init_writes_a_starter_under_experiments_that_validates(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["init", "--name", "digits-first"]) == 0
    out, err = capsys.readouterr()
    target = Path("experiments/digits-first/blueprint.yaml")
    assert out == ""
    assert err.splitlines() == [
        f"wrote {target}: experiment digits-first; next:",
        f"  fl-gitops validate {target}",
        f"  fl-gitops simulate {target} --rounds 3 --clusters 4",
        f"  fl-gitops inventory {target} --clusters 4 --out inventory.yaml",
        f"  fl-gitops render {target} --inventory inventory.yaml --out .",
        "  (for a real hub: kubectl get managedclusters -o yaml > inventory.yaml)",
    ]
    assert main(["validate", str(target)]) == 0
    assert capsys.readouterr().out == f"ok: {target}: Experiment fl-system/digits-first\n"
    bp = load_blueprint(target)
    assert (bp.gitops.path, bp.store.uri) == (
        "experiments/digits-first",
        "s3://fl-models/digits-first",
    )


def test_every_line_of_the_starter_says_what_it_means(tmp_path):
    assert main(["init", str(tmp_path / "exp")]) == 0
    for line in (tmp_path / "exp" / "blueprint.yaml").read_text().splitlines():
        assert line.lstrip().startswith("#") or " # " in line, line


def test_the_starter_renders_and_its_commented_defaults_are_the_real_ones(tmp_path):
    """Uncommenting every optional setting changes nothing that renders: the values the
    comments show are the ones the loader fills in."""
    assert main(["init", str(tmp_path / "digits-a")]) == 0
    starter = tmp_path / "digits-a" / "blueprint.yaml"
    text = starter.read_text()
    spelled = tmp_path / "spelled.yaml"
    spelled.write_text(_OPTION.sub(r"\1\2", text))
    assert len(_OPTION.findall(text)) >= 15
    assert not _OPTION.findall(spelled.read_text())
    written = _render(starter, tmp_path / "out-starter")
    assert sum("/works/" in path for path in written) == 4
    assert written == _render(spelled, tmp_path / "out-spelled")


def test_init_refuses_to_overwrite_an_existing_file_and_force_does(tmp_path, capsys):
    target = tmp_path / "exp" / "blueprint.yaml"
    target.parent.mkdir()
    target.write_text("mine\n")
    assert main(["init", str(target.parent), "--name", "exp"]) == 2
    assert capsys.readouterr().err == (
        f"error: {target}: already exists; pass --force to overwrite it, or choose another DIR\n"
    )
    assert target.read_text() == "mine\n"
    assert main(["init", str(target.parent), "--name", "exp", "--force"]) == 0
    assert load_blueprint(target).name == "exp"


def test_init_refuses_a_dangling_link_in_the_files_place(tmp_path, capsys):
    target = tmp_path / "blueprint.yaml"
    target.symlink_to(tmp_path / "elsewhere.yaml")
    assert main(["init", str(tmp_path), "--name", "exp"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert not (tmp_path / "elsewhere.yaml").exists()


def test_init_dash_prints_the_blueprint_to_stdout_and_nothing_else(tmp_path, capsys):
    assert main(["init", "-", "--name", "piped"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    path = tmp_path / "piped.yaml"
    path.write_text(out)
    assert load_blueprint(path).name == "piped"
    assert not list(tmp_path.glob("experiments"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--name", "Digits_1"],
            "error: --name: expected an experiment name (lowercase letters, digits and '-', "
            "starting and ending alphanumeric, at most 40 characters), got 'Digits_1'\n",
        ),
        (
            ["My Folder"],
            "error: DIR's folder name: expected an experiment name (lowercase letters, digits "
            "and '-', starting and ending alphanumeric, at most 40 characters), got 'My Folder'"
            "; pass --name NAME to name the experiment\n",
        ),
    ],
)
def test_init_refuses_a_name_that_cannot_name_an_experiment(
    tmp_path, monkeypatch, capsys, args, message
):
    monkeypatch.chdir(tmp_path)
    assert main(["init", *args]) == 2
    assert capsys.readouterr().err == message
    assert list(tmp_path.iterdir()) == []


def test_init_into_a_path_that_is_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "taken").write_text("")
    assert main(["init", str(tmp_path / "taken"), "--name", "exp"]) == 2
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'taken'}: not a directory; expected DIR to be a directory\n"
    )


@pytest.mark.slow
def test_the_starter_simulates_as_written(tmp_path, capsys):
    assert main(["init", str(tmp_path / "digits-sim")]) == 0
    work = tmp_path / "sim"
    args = ["simulate", str(tmp_path / "digits-sim" / "blueprint.yaml"), "--no-plot"]
    assert main([*args, "--rounds", "1", "--clusters", "2", "--workdir", str(work)]) == 0
    assert "digits-sim: Completed" in capsys.readouterr().out
    report = json.loads((work / "report.json").read_text())
    assert [(r["round"], r["contributors"]) for r in report["rounds"]] == [(1, 2)]
    assert 0.0 <= report["rounds"][0]["accuracy"] <= 1.0
