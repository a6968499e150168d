"""gitops.HistoryReader: an experiment's commits with their signatures, and files at a commit."""

from __future__ import annotations

import pytest

from fl_gitops.errors import InputError
from fl_gitops.gitops import HistoryReader, Signature
from tests.verify.conftest import BOT, git


def _commit(repo, message: str, *files: tuple[str, str], key=None) -> str:
    for rel, text in files:
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
        git(repo, "add", rel)
    signing = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={key.private}"] if key else []
    sign = ["-S"] if key else ["--no-gpg-sign"]
    ident = ["-c", f"user.name={BOT[0]}", "-c", f"user.email={BOT[1]}"]
    git(repo, *ident, *signing, "commit", "-q", "--allow-empty", *sign, "-m", message)
    return git(repo, "rev-parse", "HEAD").strip()


@pytest.fixture
def repo(tmp_path):
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    return path


def test_each_commit_has_its_signature_status_against_the_allowed_signers(repo, bot_key, other_key):
    unsigned = _commit(repo, "one", ("exp/a.yaml", "a: 1\n"))
    allowed = _commit(repo, "two\n\nFL-Round: 2", ("exp/a.yaml", "a: 2\n"), key=bot_key)
    other = _commit(repo, "three", ("exp/b.yaml", "b: 1\n"), key=other_key)
    _commit(repo, "elsewhere", ("other/c.yaml", "c: 1\n"), key=bot_key)
    reader = HistoryReader(repo, allowed_signers=bot_key.allowed_signers)
    commits = reader.commits("exp")
    assert [c.sha for c in commits] == [unsigned, allowed, other]  # oldest first, exp/ only
    assert [c.signature for c in commits] == [
        Signature("N"),
        Signature("G", bot_key.fingerprint, BOT[1]),
        Signature("U", other_key.fingerprint, ""),
    ]
    assert commits[1].trailers == {"FL-Round": "2"} and commits[1].parents == (unsigned,)
    assert [c.paths for c in commits] == [("exp/a.yaml",), ("exp/a.yaml",), ("exp/b.yaml",)]


def test_without_allowed_signers_no_signature_is_read(repo, bot_key):
    _commit(repo, "one", ("exp/a.yaml", "a: 1\n"), key=bot_key)
    (commit,) = HistoryReader(repo).commits("exp")
    assert commit.signature is None


def test_files_at_a_commit_are_read_and_absent_ones_are_none(repo):
    first = _commit(repo, "one", ("exp/a.yaml", "a: 1\n"))
    _commit(repo, "two", ("exp/a.yaml", "a: 2\n"))
    reader = HistoryReader(repo)
    assert reader.read_files(first, ["exp/a.yaml", "exp/missing.yaml", "exp"]) == [
        b"a: 1\n",
        None,
        None,  # a directory is not a file
    ]
    assert reader.read_files("HEAD", ["exp/a.yaml"]) == [b"a: 2\n"]


def test_a_directory_that_is_not_a_repository_is_bad_input(tmp_path):
    with pytest.raises(InputError) as info:
        HistoryReader(tmp_path)
    assert str(info.value) == f"{tmp_path}: not a git repository"
