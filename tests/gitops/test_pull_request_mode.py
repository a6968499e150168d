"""Pull-request mode: one deterministic branch per round, reused, and one PR per round."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from fl_gitops.errors import GitError, InputError
from fl_gitops.gitops import (
    Change,
    ConfigRepo,
    PublishHooks,
    PublishResult,
    PullRequestSpec,
    round_branch_name,
)

from .conftest import ForgeServer, git, remote_log, run_in_threads
from .test_config_repo import write_round
from .test_publish_races import Killed, kill

TOKEN = "glpat-or-ghp-example-0123456789"
BODY = "Roster: cluster-001, cluster-002\n\nMetrics: accuracy 0.91\n\nRejected: none"


def round_two(root: Path) -> Change | None:
    state = root / "experiments" / "digits" / "round.yaml"
    if state.exists() and state.read_text() == "round: 2\n":
        return None  # the PR was merged: nothing left to do
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text("round: 2\n")
    return Change(
        message="fl(digits): round 1 -> 2",
        trailers={"FL-Experiment": "digits", "FL-Round": "2"},
        body=BODY,
    )


def remote_branches(bare: Path) -> list[str]:
    return git(bare, "for-each-ref", "--format=%(refname:short)", "refs/heads").split()


def test_round_branch_names_are_deterministic() -> None:
    assert round_branch_name("digits-fedavg", 3) == "fl-gitops/digits-fedavg/round-3"
    assert round_branch_name("digits-fedavg", 3) == round_branch_name("digits-fedavg", 3)
    assert round_branch_name("a", 12) == "fl-gitops/a/round-12"


@pytest.mark.parametrize(
    ("experiment", "number", "message"),
    [
        (
            "Digits",
            1,
            "experiment name 'Digits': expected a DNS label "
            "(lowercase letters, digits and '-', at most 63 characters)",
        ),
        (
            "a/b",
            1,
            "experiment name 'a/b': expected a DNS label "
            "(lowercase letters, digits and '-', at most 63 characters)",
        ),
        ("digits", 0, "round number 0: expected an integer >= 1"),
        ("digits", True, "round number True: expected an integer >= 1"),
    ],
)
def test_bad_round_branch_inputs_are_input_errors(
    experiment: str, number: int, message: str
) -> None:
    with pytest.raises(InputError) as err:
        round_branch_name(experiment, number)
    assert str(err.value) == message


def test_a_round_goes_to_its_own_branch_and_the_target_is_untouched(
    remote: Path, tmp_path: Path
) -> None:
    repo = ConfigRepo.open(str(remote), branch="main", workdir=tmp_path / "w")
    branch = round_branch_name("digits", 2)

    result = repo.publish(round_two, mode="pull-request", round_branch=branch)

    assert result == PublishResult(
        git(remote, "rev-parse", branch).strip(), True, 1, "fl-gitops/digits/round-2"
    )
    assert remote_log(remote) == ["seed"]
    assert remote_log(remote, branch) == ["fl(digits): round 1 -> 2", "seed"]
    assert git(remote, "show", f"{branch}:experiments/digits/round.yaml") == "round: 2\n"
    # The work tree is back on the target tip afterwards.
    assert repo.head() == git(remote, "rev-parse", "main").strip()


def test_an_existing_branch_with_the_same_change_is_reused(remote: Path, tmp_path: Path) -> None:
    branch = round_branch_name("digits", 2)
    first = ConfigRepo.open(str(remote), branch="main", workdir=tmp_path / "a").publish(
        round_two, mode="pull-request", round_branch=branch
    )
    # Meanwhile somebody changes an unrelated file on main.
    clone = tmp_path / "human"
    git(tmp_path, "clone", "-q", str(remote), str(clone))
    (clone / "README.md").write_text("edited by a human\n")
    git(clone, "commit", "-q", "-am", "docs")
    git(clone, "push", "-q", "origin", "main")
    reflog = (remote / "logs" / "refs" / "heads" / branch).read_text()

    again = ConfigRepo.open(str(remote), branch="main", workdir=tmp_path / "b").publish(
        round_two, mode="pull-request", round_branch=branch
    )

    assert again == PublishResult(first.commit, False, 1, branch)
    assert (remote / "logs" / "refs" / "heads" / branch).read_text() == reflog  # no push
    assert remote_log(remote, branch) == ["fl(digits): round 1 -> 2", "seed"]


def test_a_changed_round_updates_its_branch_instead_of_making_another(
    remote: Path, tmp_path: Path
) -> None:
    repo = ConfigRepo.open(str(remote), branch="main", workdir=tmp_path / "w")
    branch = round_branch_name("digits", 2)
    repo.publish(round_two, mode="pull-request", round_branch=branch)

    def round_two_with_more_clusters(root: Path) -> Change:
        round_two(root)
        (root / "experiments" / "digits" / "roster.yaml").write_text("- cluster-003\n")
        return Change(message="fl(digits): round 1 -> 2", body=BODY)

    result = repo.publish(round_two_with_more_clusters, mode="pull-request", round_branch=branch)

    assert result.pushed and result.branch == branch
    assert remote_branches(remote) == ["fl-gitops/digits/round-2", "main"]
    assert git(remote, "show", f"{branch}:experiments/digits/roster.yaml") == "- cluster-003\n"
    assert remote_log(remote, branch) == ["fl(digits): round 1 -> 2", "seed"]
    assert remote_log(remote) == ["seed"]


def test_a_merged_round_is_noticed_on_the_next_pass(remote: Path, tmp_path: Path) -> None:
    repo = ConfigRepo.open(str(remote), branch="main", workdir=tmp_path / "w")
    branch = round_branch_name("digits", 2)
    repo.publish(round_two, mode="pull-request", round_branch=branch)
    git(remote, "update-ref", "refs/heads/main", f"refs/heads/{branch}")  # merged on the forge

    result = repo.publish(round_two, mode="pull-request", round_branch=branch)

    assert result == PublishResult(None, False, 1, branch)
    assert (repo.root / "experiments" / "digits" / "round.yaml").read_text() == "round: 2\n"


def test_racing_writers_make_one_branch_one_commit_and_one_pr(
    remote: Path, tmp_path: Path, github: ForgeServer
) -> None:
    spec = PullRequestSpec(
        forge="github", repository="acme/config", token=TOKEN, api_url=github.url
    )
    writers = [
        ConfigRepo.open(
            str(remote), branch="main", workdir=tmp_path / f"w{i}", user_name=f"reconciler-{i}"
        )
        for i in (1, 2)
    ]
    branch = round_branch_name("digits", 2)
    both_committed = threading.Barrier(2, timeout=30)
    results: list[PublishResult] = []

    def run(repo: ConfigRepo) -> None:
        waited = False

        def after_commit() -> None:
            nonlocal waited
            if not waited:
                waited = True
                both_committed.wait()

        results.append(
            repo.publish(
                round_two,
                mode="pull-request",
                round_branch=branch,
                pr=spec,
                hooks=PublishHooks(after_commit=after_commit),
                sleep=lambda s: None,
            )
        )

    assert run_in_threads(run, writers) == []
    assert remote_branches(remote) == ["fl-gitops/digits/round-2", "main"]
    assert remote_log(remote, branch) == ["fl(digits): round 1 -> 2", "seed"]
    tip = git(remote, "rev-parse", branch).strip()
    assert sorted(r.pushed for r in results) == [False, True]
    assert {r.commit for r in results} == {tip}
    assert {r.pull_request_url for r in results} == {"https://github.com/acme/config/pull/1"}
    assert len(github.posts()) == 1
    assert (remote / "logs" / "refs" / "heads" / branch).read_text().count("\n") == 1


def test_a_kill_after_push_still_opens_the_pr_on_the_rerun(
    remote: Path, tmp_path: Path, forge: ForgeServer
) -> None:
    spec = PullRequestSpec(
        forge=forge.kind, repository="group/config", token=TOKEN, api_url=forge.url
    )
    branch = round_branch_name("digits", 2)
    workdir = tmp_path / "w"
    with pytest.raises(Killed):
        ConfigRepo.open(str(remote), branch="main", workdir=workdir).publish(
            round_two,
            mode="pull-request",
            round_branch=branch,
            pr=spec,
            hooks=PublishHooks(after_push=kill),
        )
    assert forge.requests == []

    rerun = ConfigRepo.open(str(remote), branch="main", workdir=workdir).publish(
        round_two, mode="pull-request", round_branch=branch, pr=spec
    )
    third = ConfigRepo.open(str(remote), branch="main", workdir=workdir).publish(
        round_two, mode="pull-request", round_branch=branch, pr=spec
    )

    assert not rerun.pushed and rerun.pull_request_url is not None
    assert third.pull_request_url == rerun.pull_request_url
    assert len(forge.posts()) == 1
    assert forge.posts()[0].body["title"] == "fl(digits): round 1 -> 2"


def test_pull_request_mode_needs_a_branch_other_than_the_target(
    remote: Path, tmp_path: Path
) -> None:
    repo = ConfigRepo.open(str(remote), branch="main", workdir=tmp_path / "w")
    with pytest.raises(InputError) as err:
        repo.publish(write_round(1), mode="pull-request")
    assert str(err.value) == "pull-request mode: a round branch is needed"
    with pytest.raises(InputError) as err:
        repo.publish(write_round(1), mode="pull-request", round_branch="main")
    assert str(err.value) == "pull-request mode: the round branch must differ from main"
    with pytest.raises(InputError) as err:
        repo.publish(write_round(1), mode="merge")
    assert str(err.value) == "gitops mode 'merge': expected one of direct, pull-request"


def test_a_forge_error_after_the_push_is_a_git_error_and_the_rerun_reuses_the_branch(
    remote: Path, tmp_path: Path, github: ForgeServer
) -> None:
    spec = PullRequestSpec(
        forge="github", repository="acme/config", token=TOKEN, api_url=github.url
    )
    branch = round_branch_name("digits", 2)
    github.get_answers.append((503, {"message": "Service Unavailable"}))
    repo = ConfigRepo.open(str(remote), branch="main", workdir=tmp_path / "w")

    with pytest.raises(GitError) as err:
        repo.publish(round_two, mode="pull-request", round_branch=branch, pr=spec)
    assert str(err.value) == (
        'github: GET /repos/acme/config/pulls failed: HTTP 503: {"message": "Service Unavailable"}'
    )

    result = repo.publish(round_two, mode="pull-request", round_branch=branch, pr=spec)
    assert not result.pushed
    assert result.pull_request_url == "https://github.com/acme/config/pull/1"
