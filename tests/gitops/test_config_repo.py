"""ConfigRepo against real bare remotes: clone, sync, commit-if-changed, message, log, revert."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from fl_gitops.errors import GitError, InputError
from fl_gitops.gitops import Change, ConfigRepo, PublishResult

from .conftest import git, remote_log


def write_round(round_number: int, exp: str = "digits") -> Callable[[Path], Change | None]:
    """A derive step that moves the experiment to ``round_number`` (idempotent)."""

    def derive(root: Path) -> Change | None:
        state = root / "experiments" / exp / "round.yaml"
        current = int(state.read_text().split(":")[1]) if state.exists() else 0
        if current >= round_number:
            return None
        state.parent.mkdir(parents=True, exist_ok=True)
        state.write_text(f"round: {round_number}\n")
        return Change(
            message=f"fl({exp}): round {current} -> {round_number}",
            trailers={"FL-Experiment": exp, "FL-Round": str(round_number)},
        )

    return derive


def test_opens_a_remote_by_plain_path_and_by_file_url(remote: Path, tmp_path: Path) -> None:
    by_path = ConfigRepo.open(str(remote), branch="main", workdir=tmp_path / "a")
    by_url = ConfigRepo.open(remote.as_uri(), branch="main", workdir=tmp_path / "b")

    tip = git(remote, "rev-parse", "main").strip()
    assert by_path.head() == by_url.head() == tip
    assert (by_path.root / "README.md").read_text() == "config repo\n"
    assert (by_url.root / "README.md").read_text() == "config repo\n"


def test_opening_an_existing_work_dir_fetches_the_new_tip(remote: Path, tmp_path: Path) -> None:
    ConfigRepo.open(str(remote), branch="main", workdir=tmp_path / "w")
    other = ConfigRepo.open(str(remote), branch="main", workdir=tmp_path / "other")
    other.publish(write_round(1))

    again = ConfigRepo.open(str(remote), branch="main", workdir=tmp_path / "w")

    assert again.head() == git(remote, "rev-parse", "main").strip()
    assert (again.root / "experiments/digits/round.yaml").read_text() == "round: 1\n"


def test_a_missing_branch_is_a_git_error_naming_it(remote: Path, tmp_path: Path) -> None:
    with pytest.raises(GitError) as err:
        ConfigRepo.open(str(remote), branch="release", workdir=tmp_path / "w")
    assert str(err.value) == f"branch release not found on remote {remote}"


def test_a_work_dir_holding_other_files_is_refused(remote: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "busy"
    workdir.mkdir()
    (workdir / "notes.txt").write_text("mine")
    with pytest.raises(InputError) as err:
        ConfigRepo.open(str(remote), branch="main", workdir=workdir)
    assert str(err.value) == f"workdir {workdir}: expected an empty directory or a git work tree"


_EXPECTED_URL = "expected a local path, file://, https:// or ssh URL"


def test_a_work_dir_with_a_broken_git_dir_is_refused(remote: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "broken"
    (workdir / ".git").mkdir(parents=True)
    with pytest.raises(InputError) as err:
        ConfigRepo.open(str(remote), branch="main", workdir=workdir)
    assert str(err.value) == f"workdir {workdir}: expected an empty directory or a git work tree"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ext::sh -c touch% /tmp/pwned", f"repo URL ext::sh -c touch% /tmp/pwned: {_EXPECTED_URL}"),
        ("ftp://example.com/repo.git", f"repo URL ftp://example.com/repo.git: {_EXPECTED_URL}"),
        ("", "repo URL: expected a path or URL, got an empty string"),
    ],
)
def test_unsupported_repo_urls_are_input_errors(url: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        ConfigRepo.open(url, branch="main", workdir=tmp_path / "w")
    assert str(err.value) == message


def test_sync_drops_local_commits_and_untracked_files_but_keeps_ignored_caches(
    make_remote: Callable[..., Path], tmp_path: Path
) -> None:
    bare = make_remote(files={"README.md": "x\n", ".gitignore": ".cache/\n"})
    repo = ConfigRepo.open(str(bare), branch="main", workdir=tmp_path / "w")
    tip = repo.head()
    (repo.root / "README.md").write_text("edited\n")
    (repo.root / "stray.yaml").write_text("a: 1\n")
    (repo.root / ".cache").mkdir()
    (repo.root / ".cache" / "blob").write_text("keep me")
    git(repo.root, "commit", "-q", "-am", "local only")

    assert repo.sync() == tip
    assert repo.head() == tip
    assert (repo.root / "README.md").read_text() == "x\n"
    assert not (repo.root / "stray.yaml").exists()
    assert (repo.root / ".cache" / "blob").read_text() == "keep me"


def test_a_derive_that_changes_nothing_makes_no_commit(remote: Path, tmp_path: Path) -> None:
    repo = ConfigRepo.open(str(remote), branch="main", workdir=tmp_path / "w")
    before = git(remote, "rev-parse", "main")

    def rewrite_same(root: Path) -> Change:
        (root / "README.md").write_text("config repo\n")  # same bytes
        return Change(message="fl(digits): round 0 -> 1", trailers={"FL-Round": "1"})

    assert repo.publish(rewrite_same) == PublishResult(None, False, 1, "main")
    assert repo.publish(lambda root: None) == PublishResult(None, False, 1, "main")
    assert git(remote, "rev-parse", "main") == before


def test_a_commit_carries_subject_body_and_trailers_git_can_parse(
    remote: Path, tmp_path: Path
) -> None:
    repo = ConfigRepo.open(str(remote), branch="main", workdir=tmp_path / "w")
    trailers = {
        "FL-Experiment": "digits-fedavg",
        "FL-Round": "4",
        "FL-Model": "sha256:" + "a" * 64,
        "FL-Blueprint": "sha256:" + "b" * 64,
    }
    body = "# Roster\n- cluster-001\n- cluster-002\n\nRejected: none"

    def derive(root: Path) -> Change:
        (root / "round.yaml").write_text("round: 4\n")
        return Change(message="fl(digits-fedavg): round 3 -> 4", trailers=trailers, body=body)

    result = repo.publish(derive)

    assert result.pushed and result.commit == git(remote, "rev-parse", "main").strip()
    message = git(remote, "log", "-1", "--format=%B", "main")
    assert message == (
        "fl(digits-fedavg): round 3 -> 4\n\n"
        "# Roster\n- cluster-001\n- cluster-002\n\nRejected: none\n\n"
        "FL-Experiment: digits-fedavg\nFL-Round: 4\n"
        f"FL-Model: sha256:{'a' * 64}\nFL-Blueprint: sha256:{'b' * 64}\n\n"
    )
    parsed = subprocess.run(
        ["git", "interpret-trailers", "--parse"],
        input=message,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert parsed.splitlines() == [f"{k}: {v}" for k, v in trailers.items()]
    author = git(remote, "log", "-1", "--format=%an <%ae>|%cn <%ce>", "main").strip()
    assert author == "fl-gitops <fl-gitops@localhost>|fl-gitops <fl-gitops@localhost>"


def test_commit_identity_is_configurable_without_touching_git_config(
    remote: Path, tmp_path: Path
) -> None:
    repo = ConfigRepo.open(
        str(remote),
        branch="main",
        workdir=tmp_path / "w",
        user_name="Hub Reconciler",
        user_email="hub@example.org",
    )
    repo.publish(write_round(1))
    assert git(remote, "log", "-1", "--format=%an <%ae>", "main").strip() == (
        "Hub Reconciler <hub@example.org>"
    )
    local_config = (repo.root / ".git" / "config").read_text()
    assert "user" not in local_config


def test_bad_trailers_fail_before_anything_is_committed(remote: Path, tmp_path: Path) -> None:
    repo = ConfigRepo.open(str(remote), branch="main", workdir=tmp_path / "w")

    def derive(root: Path) -> Change:
        (root / "a.yaml").write_text("a: 1\n")
        return Change(message="fl(x): round 1 -> 2", trailers={"FL Round": "2"})

    with pytest.raises(InputError) as err:
        repo.publish(derive)
    assert str(err.value) == "commit trailer 'FL Round': expected letters, digits and dashes"
    assert remote_log(remote) == ["seed"]


def test_a_fixed_commit_time_makes_the_same_commit_twice(
    make_remote: Callable[..., Path], tmp_path: Path
) -> None:
    when = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    shas = []
    for name in ("one", "two"):
        bare = make_remote(name)
        repo = ConfigRepo.open(str(bare), branch="main", workdir=tmp_path / f"w-{name}")

        def derive(root: Path) -> Change:
            (root / "round.yaml").write_text("round: 2\n")
            return Change(
                message="fl(x): round 1 -> 2", trailers={"FL-Round": "2"}, committed_at=when
            )

        shas.append(repo.publish(derive).commit)
    assert shas[0] == shas[1]


def test_log_lists_round_commits_newest_first_with_parsed_trailers(
    remote: Path, tmp_path: Path
) -> None:
    repo = ConfigRepo.open(str(remote), branch="main", workdir=tmp_path / "w")
    for n in (1, 2, 3):
        repo.publish(write_round(n))

    commits = repo.log("experiments/digits")

    assert [c.subject for c in commits] == [
        "fl(digits): round 2 -> 3",
        "fl(digits): round 1 -> 2",
        "fl(digits): round 0 -> 1",
    ]
    assert commits[0].trailers == {"FL-Experiment": "digits", "FL-Round": "3"}
    assert commits[0].sha == git(remote, "rev-parse", "main").strip()
    assert commits[0].author == "fl-gitops <fl-gitops@localhost>"
    assert commits[0].committed_at.tzinfo is not None
    assert [c.subject for c in repo.log("experiments/digits", max_count=1)] == [
        "fl(digits): round 2 -> 3"
    ]
    assert repo.log("experiments/other") == []


def test_last_change_time_is_the_committer_time_of_the_last_commit_on_the_path(
    remote: Path, tmp_path: Path
) -> None:
    repo = ConfigRepo.open(str(remote), branch="main", workdir=tmp_path / "w")
    when = datetime(2026, 5, 4, 3, 2, 1, tzinfo=UTC)

    def derive(root: Path) -> Change:
        (root / "experiments").mkdir()
        (root / "experiments" / "x.yaml").write_text("x: 1\n")
        return Change(message="fl(x): round 0 -> 1", committed_at=when)

    repo.publish(derive)
    assert repo.last_change_time("experiments") == when
    assert repo.last_change_time("README.md") == datetime(2026, 1, 1, tzinfo=UTC)
    assert repo.last_change_time("nothing/here") is None


def test_paths_outside_the_repo_are_input_errors(remote: Path, tmp_path: Path) -> None:
    repo = ConfigRepo.open(str(remote), branch="main", workdir=tmp_path / "w")
    with pytest.raises(InputError) as err:
        repo.log("../elsewhere")
    assert (
        str(err.value) == "repo path '../elsewhere': expected a relative path inside the repository"
    )


def test_restore_inside_a_derive_puts_a_path_back_with_a_new_commit_and_keeps_history(
    remote: Path, tmp_path: Path
) -> None:
    repo = ConfigRepo.open(str(remote), branch="main", workdir=tmp_path / "w")
    repo.publish(write_round(1))
    round_one = repo.head()

    def round_two(root: Path) -> Change:
        exp = root / "experiments" / "digits"
        (exp / "round.yaml").write_text("round: 2\n")
        (exp / "works").mkdir()
        (exp / "works" / "cluster-1.yaml").write_text("kind: ManifestWork\n")
        (root / "README.md").write_text("touched outside the path\n")
        return Change(message="fl(digits): round 1 -> 2")

    repo.publish(round_two)
    before = git(remote, "rev-list", "main").split()

    def roll_back(root: Path) -> Change:
        repo.restore("experiments/digits", round_one)
        return Change(message="fl(digits): roll back to round 1", trailers={"FL-Round": "1"})

    result = repo.publish(roll_back)

    assert result.pushed
    after = git(remote, "rev-list", "main").split()
    assert after[1:] == before  # a new commit on top; nothing rewritten
    assert git(remote, "rev-parse", "main:experiments/digits") == git(
        remote, "rev-parse", f"{round_one}:experiments/digits"
    )
    # Outside the path, the newer state stays.
    assert git(remote, "show", "main:README.md") == "touched outside the path\n"
    assert (
        git(remote, "log", "-1", "--format=%s", "main").strip()
        == "fl(digits): roll back to round 1"
    )


def test_restore_from_an_unknown_commit_is_an_input_error(remote: Path, tmp_path: Path) -> None:
    repo = ConfigRepo.open(str(remote), branch="main", workdir=tmp_path / "w")
    with pytest.raises(InputError) as err:
        repo.restore("experiments", "0" * 40)
    assert str(err.value) == f"commit {'0' * 40}: not found in the history of main"
