"""Credentials: read from the environment or a mounted Secret, given to git, never shown.

The https cases run against a real smart-HTTP git server on loopback (``git http-backend``
behind ``http.server``) that demands Basic auth, so the askpass path is exercised end to
end: the right token gets in, a wrong one fails, and neither appears in errors or config.
"""

from __future__ import annotations

import base64
import http.server
import os
import shlex
import stat
import subprocess
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fl_gitops.errors import GitError, InputError
from fl_gitops.gitops import ConfigRepo, Credentials, redact
from fl_gitops.gitops._credentials import GitAuth

from .conftest import remote_log
from .test_config_repo import write_round

TOKEN = "ghp_s3cr3t0123456789abcdefghijklmnopqrst"


@dataclass
class GitHTTPServer:
    root: Path
    username: str
    password: str
    protect: str = "all"  # "all", or "push": only receive-pack needs credentials
    url: str = ""
    authorizations: list[str | None] = field(default_factory=list)

    def expected(self) -> str:
        pair = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(pair).decode()


def _git_http_handler(server: GitHTTPServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while True:
                    size = int(self.rfile.readline().strip(), 16)
                    if size == 0:
                        self.rfile.readline()
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _serve(self) -> None:
            parts = urllib.parse.urlsplit(self.path)
            auth = self.headers.get("Authorization")
            server.authorizations.append(auth)
            needs_auth = server.protect == "all" or "git-receive-pack" in self.path
            body = self._body()
            if needs_auth and auth != server.expected():
                self.send_response(401)
                self.send_header("WWW-Authenticate", 'Basic realm="git"')
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            env = {
                "PATH": os.environ["PATH"],
                "GIT_PROJECT_ROOT": str(server.root),
                "GIT_HTTP_EXPORT_ALL": "1",
                "PATH_INFO": parts.path,
                "QUERY_STRING": parts.query,
                "REQUEST_METHOD": self.command,
                "CONTENT_TYPE": self.headers.get("Content-Type", ""),
                "CONTENT_LENGTH": str(len(body)),
                "REMOTE_ADDR": "127.0.0.1",
            }
            if auth:
                env["REMOTE_USER"] = server.username
            for header in ("Content-Encoding", "Git-Protocol"):
                if self.headers.get(header):
                    env["HTTP_" + header.upper().replace("-", "_")] = self.headers[header]
            out = subprocess.run(
                ["git", "http-backend"], input=body, env=env, capture_output=True, check=False
            ).stdout
            head, _, payload = out.partition(b"\r\n\r\n")
            status = 200
            headers = []
            for line in head.decode().split("\r\n"):
                name, _, value = line.partition(":")
                if name.lower() == "status":
                    status = int(value.split()[0])
                elif name:
                    headers.append((name, value.strip()))
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = _serve
        do_POST = _serve

    return Handler


@pytest.fixture
def git_http(remote: Path) -> Iterator[Callable[..., GitHTTPServer]]:
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(password: str = TOKEN, username: str = "fl-bot", protect: str = "all"):
        state = GitHTTPServer(remote.parent, username, password, protect)
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _git_http_handler(state))
        state.url = f"http://127.0.0.1:{httpd.server_address[1]}/{remote.name}"
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return state

    yield start
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


def assert_nowhere_on_disk(workdir: Path, secret: str) -> None:
    for path in (workdir / ".git").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_a_token_reaches_the_server_through_askpass_and_stays_off_disk(
    git_http: Callable[..., GitHTTPServer], remote: Path, tmp_path: Path
) -> None:
    server = git_http()
    creds = Credentials(username="fl-bot", password=TOKEN)
    repo = ConfigRepo.open(server.url, branch="main", workdir=tmp_path / "w", credentials=creds)

    result = repo.publish(write_round(1))

    assert result.pushed
    assert remote_log(remote) == ["fl(digits): round 0 -> 1", "seed"]
    assert server.expected() in server.authorizations
    assert_nowhere_on_disk(repo.root, TOKEN)
    assert (repo.root / ".git" / "config").read_text().count(server.url) == 1


def test_a_token_alone_authenticates_with_a_placeholder_user(
    git_http: Callable[..., GitHTTPServer], tmp_path: Path
) -> None:
    server = git_http(username="x-access-token")
    creds = Credentials.from_environment({"FL_GIT_TOKEN": TOKEN})

    ConfigRepo.open(server.url, branch="main", workdir=tmp_path / "w", credentials=creds)

    assert server.expected() in server.authorizations


def test_a_rejected_token_fails_without_showing_it(
    git_http: Callable[..., GitHTTPServer], tmp_path: Path
) -> None:
    server = git_http(password="the-right-one")
    creds = Credentials(username="fl-bot", password=TOKEN)

    with pytest.raises(GitError) as err:
        ConfigRepo.open(server.url, branch="main", workdir=tmp_path / "w", credentials=creds)

    assert str(err.value) == (
        f"fetch of branch main from remote {server.url} failed: "
        f"fatal: Authentication failed for '{server.url}/'"
    )
    assert_nowhere_on_disk(tmp_path / "w", TOKEN)


def test_a_failing_push_with_a_token_does_not_show_the_token(
    git_http: Callable[..., GitHTTPServer], remote: Path, tmp_path: Path
) -> None:
    server = git_http(password="the-right-one", protect="push")  # reads are anonymous
    creds = Credentials(username="fl-bot", password=TOKEN)
    repo = ConfigRepo.open(server.url, branch="main", workdir=tmp_path / "w", credentials=creds)

    with pytest.raises(GitError) as err:
        repo.publish(write_round(1))

    assert str(err.value) == (
        f"push to branch main on remote {server.url} failed: "
        f"fatal: Authentication failed for '{server.url}/'"
    )
    assert remote_log(remote) == ["seed"]


def test_an_unreachable_ssh_remote_fails_fast_instead_of_prompting(tmp_path: Path) -> None:
    key = tmp_path / "ssh-privatekey"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    url = "ssh://git@127.0.0.1:1/config.git"  # nothing listens on port 1

    with pytest.raises(GitError) as err:
        ConfigRepo.open(
            url,
            branch="main",
            workdir=tmp_path / "w",
            credentials=Credentials(ssh_key_file=str(key)),
        )

    assert str(err.value).startswith(
        f"fetch of branch main from remote {url} failed: "
        "ssh: connect to host 127.0.0.1 port 1: Connection refused\n"
    )


def test_a_password_in_the_url_is_refused_without_echoing_it(tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        ConfigRepo.open(
            f"https://fl-bot:{TOKEN}@git.example.com/config.git",
            branch="main",
            workdir=tmp_path / "w",
        )
    assert str(err.value) == (
        "repo URL https://fl-bot@git.example.com/config.git: carries a password; put the "
        "token in FL_GIT_TOKEN or a mounted Secret (FL_GIT_CREDENTIALS_DIR) instead"
    )
    assert not (tmp_path / "w").exists()


def test_credentials_come_from_a_mounted_basic_auth_secret(tmp_path: Path) -> None:
    secret = tmp_path / "git-credentials"
    secret.mkdir()
    (secret / "username").write_text("fl-bot\n")
    (secret / "password").write_text(TOKEN + "\n")

    creds = Credentials.from_environment({"FL_GIT_CREDENTIALS_DIR": str(secret)})

    assert creds == Credentials(username="fl-bot", password=TOKEN)
    assert TOKEN not in repr(creds)


def test_credentials_come_from_a_mounted_ssh_auth_secret(tmp_path: Path) -> None:
    secret = tmp_path / "git-ssh"
    secret.mkdir()
    (secret / "ssh-privatekey").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    (secret / "known_hosts").write_text("github.com ssh-ed25519 AAAA\n")

    creds = Credentials.from_environment({"FL_GIT_CREDENTIALS_DIR": str(secret)})

    assert creds == Credentials(
        ssh_key_file=str(secret / "ssh-privatekey"),
        known_hosts_file=str(secret / "known_hosts"),
    )


def test_credentials_from_plain_environment_variables(tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    key.write_text("key")
    env = {"FL_GIT_USERNAME": "bot", "FL_GIT_TOKEN": TOKEN, "FL_GIT_SSH_KEY_FILE": str(key)}

    assert Credentials.from_environment(env) == Credentials(
        username="bot", password=TOKEN, ssh_key_file=str(key)
    )
    assert Credentials.from_environment({}) is None
    assert Credentials.from_environment({"FL_GIT_TOKEN": "t0k"}) == Credentials(
        username="x-access-token", password="t0k"
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"FL_GIT_CREDENTIALS_DIR": "/nonexistent/secret"},
            "FL_GIT_CREDENTIALS_DIR=/nonexistent/secret: expected a directory (a mounted "
            "Secret with username/password or token, ssh-privatekey, known_hosts)",
        ),
        (
            {"FL_GIT_SSH_KEY_FILE": "/nonexistent/key"},
            "FL_GIT_SSH_KEY_FILE=/nonexistent/key: no such file",
        ),
    ],
)
def test_missing_credential_files_are_input_errors(env: dict[str, str], message: str) -> None:
    with pytest.raises(InputError) as err:
        Credentials.from_environment(env)
    assert str(err.value) == message


def test_ssh_uses_a_private_copy_of_the_key_and_strict_known_hosts(tmp_path: Path) -> None:
    key = tmp_path / "ssh-privatekey"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    key.chmod(0o644)  # as a Secret volume often mounts it; ssh would refuse it
    known = tmp_path / "known_hosts"
    known.write_text("git.example.com ssh-ed25519 AAAA\n")
    auth = GitAuth(Credentials(ssh_key_file=str(key), known_hosts_file=str(known)))
    try:
        command = shlex.split(auth.env["GIT_SSH_COMMAND"])
        copy = Path(command[command.index("-i") + 1])
        assert copy != key and copy.read_text() == key.read_text()
        assert stat.S_IMODE(copy.stat().st_mode) == 0o600
        assert stat.S_IMODE(copy.parent.stat().st_mode) == 0o700
        assert command == [
            "ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=30",
            "-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4",
            "-i", str(copy), "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes",
        ]  # fmt: skip
        assert "GIT_ASKPASS" not in auth.env
    finally:
        auth.close()
    assert not copy.exists()


def test_the_askpass_helper_holds_no_secret() -> None:
    auth = GitAuth(Credentials(username="bot", password=TOKEN))
    try:
        script = Path(auth.env["GIT_ASKPASS"])
        assert TOKEN not in script.read_text()
        answer = subprocess.run(
            [str(script), "Password for 'https://bot@git.example.com': "],
            env={**os.environ, **auth.env},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert answer == TOKEN + "\n"
        assert auth.env["GIT_TERMINAL_PROMPT"] == "0"
    finally:
        auth.close()


def test_redact_hides_secrets_raw_url_encoded_and_in_url_userinfo() -> None:
    secret = "p@ss/word+1"
    text = (
        f"fatal: unable to access 'https://bot:{urllib.parse.quote(secret, safe='')}@host/r.git/': "
        f"token {secret} rejected; see https://user:other@mirror/x"
    )
    assert redact(text, [secret]) == (
        "fatal: unable to access 'https://bot:***@host/r.git/': token *** rejected; "
        "see https://user:***@mirror/x"
    )
