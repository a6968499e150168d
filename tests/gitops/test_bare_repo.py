"""BareRepo: the simulation's config remote, created with its first commit, read at a ref."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from fl_gitops.errors import GitError, InputError
from fl_gitops.gitops import BareRepo, Change


def _git(git_dir: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "--git-dir", str(git_dir), *args], capture_output=True, text=True, check=True
    ).stdout


def _create(tmp_path: Path, branch: str = "trunk") -> BareRepo:
    return BareRepo.create(
        tmp_path / "remote.git",
        branch=branch,
        files={"exp/blueprint.yaml": b"kind: Experiment\n", "exp/model.bin": b"\xff\x00\n"},
        change=Change(message="add experiment exp", trailers={"FL-Experiment": "exp"}),
        user_name="fl-gitops simulate",
        user_email="simulate@localhost",
    )


def test_a_new_bare_repo_holds_one_commit_of_the_files_on_the_named_branch(tmp_path):
    repo = _create(tmp_path)
    git_dir = repo.git_dir
    assert _git(git_dir, "symbolic-ref", "HEAD").strip() == "refs/heads/trunk"
    assert _git(git_dir, "log", "--format=%an <%ae>|%s|%(trailers:only)", "trunk").strip() == (
        "fl-gitops simulate <simulate@localhost>|add experiment exp|FL-Experiment: exp"
    )
    assert _git(git_dir, "ls-tree", "-r", "--name-only", "trunk").split() == [
        "exp/blueprint.yaml",
        "exp/model.bin",
    ]
    assert not (tmp_path / "seed").exists()  # no clone left behind


def test_blobs_are_read_at_the_named_ref_in_order_and_missing_ones_are_none(tmp_path):
    repo = _create(tmp_path)
    paths = ["exp/model.bin", "exp/nothing.yaml", "exp/blueprint.yaml"]
    assert repo.read_blobs("trunk", paths) == [b"\xff\x00\n", None, b"kind: Experiment\n"]
    assert repo.read_blobs("main", ["exp/blueprint.yaml"]) == [None]  # no such branch
    assert repo.read_blobs("trunk", []) == []


def test_an_existing_directory_is_not_made_a_bare_repo(tmp_path):
    (tmp_path / "remote.git").mkdir()
    with pytest.raises(InputError) as err:
        _create(tmp_path)
    assert (
        str(err.value)
        == f"{tmp_path / 'remote.git'}: already exists; expected a new bare repository"
    )


def test_a_path_outside_the_repo_is_an_input_error(tmp_path):
    repo = _create(tmp_path)
    with pytest.raises(InputError) as err:
        repo.read_blobs("trunk", ["../etc/passwd"])
    assert str(err.value) == (
        "repo path '../etc/passwd': expected a relative path inside the repository"
    )


def test_a_broken_repo_is_a_git_error_naming_it(tmp_path):
    repo = BareRepo(tmp_path / "not-a-repo.git")
    (tmp_path / "not-a-repo.git").mkdir()
    with pytest.raises(GitError) as err:
        repo.read_blobs("trunk", ["exp/blueprint.yaml"])
    assert str(err.value).startswith(f"git cat-file failed in {tmp_path / 'not-a-repo.git'}: ")


def test_a_create_that_fails_half_way_leaves_nothing_in_place(tmp_path):
    with pytest.raises(InputError):
        BareRepo.create(
            tmp_path / "remote.git",
            branch="main",
            files={"../outside": b"x"},
            change=Change(message="m"),
            user_name="u",
            user_email="u@localhost",
        )
    # refused before anything was built; and a build killed half-way is swept next time
    (tmp_path / ".remote.git.new-killed").mkdir()
    _create(tmp_path, branch="main")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["remote.git"]


def test_a_lost_branch_is_restored_from_a_clone_that_saw_its_tip(tmp_path):
    repo = _create(tmp_path, branch="main")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo.git_dir), str(clone)], check=True)
    tip = repo.branch_tip("main")
    _git(repo.git_dir, "update-ref", "-d", "refs/heads/main")
    assert repo.branch_tip("main") is None

    assert repo.restore_branch("main", clone) == tip
    assert repo.read_blobs("main", ["exp/blueprint.yaml"]) == [b"kind: Experiment\n"]


def test_an_empty_repo_gets_its_first_commit_again(tmp_path):
    git_dir = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(git_dir)], check=True)
    repo = BareRepo(git_dir)
    assert repo.restore_branch("main", tmp_path / "no-clone") is None

    sha = repo.write_first_commit(
        "main",
        files={"exp/blueprint.yaml": b"kind: Experiment\n"},
        change=Change(message="add experiment exp"),
        user_name="u",
        user_email="u@localhost",
    )

    assert repo.branch_tip("main") == sha
    with pytest.raises(InputError):
        repo.write_first_commit(
            "main", files={}, change=Change(message="again"), user_name="u", user_email="u@l"
        )
