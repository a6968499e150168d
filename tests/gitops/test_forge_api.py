"""The forge REST calls, against a local server that answers as GitHub's and GitLab's docs show."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from fl_gitops.errors import GitError, InputError
from fl_gitops.gitops import PullRequest, PullRequestSpec, ensure_pull_request

from .conftest import ForgeServer

TOKEN = "ghp_0123456789abcdefghijklmnopqrstuvwxyz"


def open_pr(spec: PullRequestSpec, repository: str = "acme/config") -> PullRequest:
    return ensure_pull_request(
        spec,
        repository=repository,
        head="fl-gitops/digits/round-2",
        base="main",
        title="fl(digits): round 1 -> 2",
        body="Roster: cluster-001\n\nRejected: none",
    )


def test_github_pull_request_request_shapes(github: ForgeServer) -> None:
    spec = PullRequestSpec(forge="github", token=TOKEN, api_url=github.url)

    pr = open_pr(spec)

    assert pr == PullRequest(url="https://github.com/acme/config/pull/1", number=1, created=True)
    get, post = github.requests
    assert (get.method, get.path) == ("GET", "/repos/acme/config/pulls")
    assert get.query == {
        "head": ["acme:fl-gitops/digits/round-2"],
        "base": ["main"],
        "state": ["open"],
    }
    assert (post.method, post.path) == ("POST", "/repos/acme/config/pulls")
    assert post.body == {
        "title": "fl(digits): round 1 -> 2",
        "head": "fl-gitops/digits/round-2",
        "base": "main",
        "body": "Roster: cluster-001\n\nRejected: none",
    }
    for rec in (get, post):
        assert rec.headers["authorization"] == f"Bearer {TOKEN}"
        assert rec.headers["accept"] == "application/vnd.github+json"
        assert rec.headers["x-github-api-version"] == "2022-11-28"
    assert post.headers["content-type"] == "application/json"


def test_gitlab_merge_request_request_shapes(gitlab: ForgeServer) -> None:
    spec = PullRequestSpec(forge="gitlab", token=TOKEN, api_url=gitlab.url + "/api/v4")

    pr = open_pr(spec, repository="group/sub/config")

    assert pr == PullRequest(
        url="https://gitlab.com/group/config/-/merge_requests/1", number=1, created=True
    )
    get, post = gitlab.requests
    # The project id is the URL-encoded path.
    assert get.path == post.path == "/api/v4/projects/group%2Fsub%2Fconfig/merge_requests"
    assert get.query == {
        "source_branch": ["fl-gitops/digits/round-2"],
        "target_branch": ["main"],
        "state": ["opened"],
    }
    assert post.body == {
        "source_branch": "fl-gitops/digits/round-2",
        "target_branch": "main",
        "title": "fl(digits): round 1 -> 2",
        "description": "Roster: cluster-001\n\nRejected: none",
    }
    for rec in (get, post):
        assert rec.headers["private-token"] == TOKEN
        assert "authorization" not in rec.headers


def test_an_open_pr_for_the_branch_is_reused_without_a_post(forge: ForgeServer) -> None:
    spec = PullRequestSpec(forge=forge.kind, token=TOKEN, api_url=forge.url)
    first = open_pr(spec)

    second = open_pr(spec)

    assert second == PullRequest(url=first.url, number=first.number, created=False)
    assert len(forge.posts()) == 1


GITHUB_EXISTS = {
    "message": "Validation Failed",
    "errors": [{"message": "A pull request already exists for acme:fl-gitops/digits/round-2."}],
}
GITLAB_EXISTS = {
    "message": ["Another open merge request already exists for this source branch: !1"]
}


@pytest.mark.parametrize(
    ("kind", "status", "answer"),
    [("github", 422, GITHUB_EXISTS), ("gitlab", 409, GITLAB_EXISTS)],
)
def test_losing_the_create_race_adopts_the_winners_pr(
    kind: str, status: int, answer: object, request: pytest.FixtureRequest
) -> None:
    server: ForgeServer = request.getfixturevalue(kind)
    spec = PullRequestSpec(forge=kind, token=TOKEN, api_url=server.url)
    open_pr(spec)  # the winner's PR exists now...
    server.get_answers.append((200, []))  # ...but our first look came before it
    server.post_answers.append((status, answer))

    pr = open_pr(spec)

    assert pr.number == 1 and not pr.created
    assert [r.method for r in server.requests[2:]] == ["GET", "POST", "GET"]
    assert len(server.prs) == 1


def test_http_errors_are_git_errors_with_a_trimmed_body_and_no_token(
    github: ForgeServer,
) -> None:
    github.post_answers.append(
        (401, {"message": f"Bad credentials: {TOKEN}", "documentation_url": "x" * 1000})
    )
    spec = PullRequestSpec(forge="github", token=TOKEN, api_url=github.url)

    with pytest.raises(GitError) as err:
        open_pr(spec)

    message = str(err.value)
    assert TOKEN not in message
    assert message.startswith(
        "github: POST /repos/acme/config/pulls failed: HTTP 401: "
        '{"message": "Bad credentials: ***", "documentation_url": "xxx'
    )
    assert len(message) < 400


def test_an_unreachable_forge_is_a_git_error_naming_the_api() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends
    spec = PullRequestSpec(
        forge="gitlab", token=TOKEN, api_url=f"http://127.0.0.1:{port}", timeout=5
    )

    with pytest.raises(GitError) as err:
        open_pr(spec)

    assert str(err.value) == (
        "gitlab: GET /projects/acme%2Fconfig/merge_requests failed: cannot reach "
        f"http://127.0.0.1:{port}: [Errno 111] Connection refused"
    )


def test_an_unknown_forge_is_an_input_error() -> None:
    with pytest.raises(InputError) as err:
        PullRequestSpec(forge="bitbucket", token=TOKEN)
    assert str(err.value) == "pull request forge 'bitbucket': expected one of github, gitlab"


def test_the_spec_never_shows_its_token() -> None:
    assert TOKEN not in repr(PullRequestSpec(forge="github", token=TOKEN))


def test_the_forge_token_comes_from_the_environment_or_the_mounted_secret(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "token").write_text("git-token\n")
    env = {"FL_GIT_CREDENTIALS_DIR": str(secret)}

    assert PullRequestSpec.from_environment(env, forge="github").token == "git-token"
    (secret / "forge-token").write_text("api-token\n")
    assert PullRequestSpec.from_environment(env, forge="github").token == "api-token"
    env["FL_FORGE_TOKEN"] = "env-token"
    assert PullRequestSpec.from_environment(env, forge="github").token == "env-token"
    assert PullRequestSpec.from_environment({}, forge="github").token is None
    forge_dir = tmp_path / "forge"
    forge_dir.mkdir()
    (forge_dir / "token").write_text("forge-dir-token\n")
    env = {"FL_FORGE_TOKEN_DIR": str(forge_dir), "FL_GIT_CREDENTIALS_DIR": str(secret)}
    assert PullRequestSpec.from_environment(env, forge="github").token == "forge-dir-token"


def test_a_blueprint_pull_request_block_becomes_a_spec(tmp_path: Path) -> None:
    forge_dir = tmp_path / "forge"
    forge_dir.mkdir()
    (forge_dir / "token").write_text(TOKEN + "\n")
    block = {
        "forge": "gitlab",
        "project": "group/fl-config",
        "apiUrl": "https://gitlab.example.com/api/v4",
        "tokenSecretRef": "fl-forge-token",
    }

    spec = PullRequestSpec.from_blueprint(block, {"FL_FORGE_TOKEN_DIR": str(forge_dir)})

    assert spec == PullRequestSpec(
        forge="gitlab",
        repository="group/fl-config",
        token=TOKEN,
        api_url="https://gitlab.example.com/api/v4",
    )
    assert PullRequestSpec.from_blueprint({"forge": "none"}, {}) == PullRequestSpec()
