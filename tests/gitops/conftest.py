"""Fixtures for the gitops tests: real git, bare remotes on disk, a recording forge server.

Like pre-commit's ``make_repo``: every remote is a bare repository made with the git binary
in a temporary directory, seeded with one commit on ``main``.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

GIT_ENV = {
    "GIT_AUTHOR_NAME": "seed",
    "GIT_AUTHOR_EMAIL": "seed@example.com",
    "GIT_COMMITTER_NAME": "seed",
    "GIT_COMMITTER_EMAIL": "seed@example.com",
    "GIT_AUTHOR_DATE": "2026-01-01T00:00:00+00:00",
    "GIT_COMMITTER_DATE": "2026-01-01T00:00:00+00:00",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(cwd: Path, *args: str) -> str:
    """Run git in ``cwd`` and return stdout (fails the test on error)."""
    done = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout


@pytest.fixture
def make_remote(tmp_path: Path) -> Callable[..., Path]:
    """Make a bare remote seeded with ``files`` in one commit on ``main``."""

    def make(name: str = "remote", files: dict[str, str] | None = None) -> Path:
        bare = tmp_path / f"{name}.git"
        git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
        # Keep every update of every ref: the tests read it to prove no force push happened.
        git(bare, "config", "core.logAllRefUpdates", "always")
        seed = tmp_path / f"{name}-seed"
        git(tmp_path, "init", "-q", "-b", "main", str(seed))
        for rel, text in (files or {"README.md": "config repo\n"}).items():
            (seed / rel).parent.mkdir(parents=True, exist_ok=True)
            (seed / rel).write_text(text)
        git(seed, "add", "-A")
        git(seed, "commit", "-q", "-m", "seed")
        git(seed, "push", "-q", str(bare), "main")
        return bare

    return make


@pytest.fixture
def remote(make_remote: Callable[..., Path]) -> Path:
    return make_remote()


def remote_log(bare: Path, ref: str = "main") -> list[str]:
    """Subjects on ``ref`` of a bare remote, newest first."""
    return git(bare, "log", "--format=%s", ref).splitlines()


T = TypeVar("T")


def run_in_threads(
    target: Callable[[T], object], args: Iterable[T], timeout: float = 60
) -> list[BaseException]:
    """Run ``target(arg)`` for each of ``args`` in a thread of its own, all at once.

    Returns what the threads raised, so that a test can assert it is nothing; a thread
    still running after ``timeout`` seconds counts as a ``TimeoutError`` naming its
    argument (a racer that hangs fails the test instead of passing it unfinished).
    """
    errors: list[BaseException] = []

    def run(arg: T) -> None:
        try:
            target(arg)
        except BaseException as exc:  # reported to the test
            errors.append(exc)

    args = list(args)
    threads = [threading.Thread(target=run, args=(arg,), daemon=True) for arg in args]
    for t in threads:
        t.start()
    deadline = time.monotonic() + timeout
    for t in threads:
        t.join(max(deadline - time.monotonic(), 0.0))
    for t, arg in zip(threads, args, strict=True):
        if t.is_alive():
            errors.append(TimeoutError(f"thread for {arg!r} still running after {timeout}s"))
    return errors


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class ForgeServer:
    """A GitHub- or GitLab-shaped PR API on loopback that records every request."""

    kind: str
    url: str = ""
    requests: list[Recorded] = field(default_factory=list)
    prs: list[dict[str, Any]] = field(default_factory=list)
    # Forced answers for the next POSTs: (status, body), e.g. a 422 "already exists".
    post_answers: list[tuple[int, Any]] = field(default_factory=list)
    # Forced answers for the next GETs.
    get_answers: list[tuple[int, Any]] = field(default_factory=list)

    def posts(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST"]


def _handler(server: ForgeServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: Any) -> None:
            raw = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def _record(self) -> Recorded:
            parts = urllib.parse.urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            rec = Recorded(
                method=self.command,
                path=parts.path,
                query=urllib.parse.parse_qs(parts.query),
                headers={k.lower(): v for k, v in self.headers.items()},
                body=json.loads(raw) if raw else None,
            )
            server.requests.append(rec)
            return rec

        def do_GET(self) -> None:
            rec = self._record()
            if server.get_answers:
                self._answer(*server.get_answers.pop(0))
                return
            if server.kind == "github":
                head = rec.query.get("head", [""])[0].split(":", 1)[-1]
                found = [p for p in server.prs if p["head"]["ref"] == head]
            else:
                source = rec.query.get("source_branch", [""])[0]
                found = [m for m in server.prs if m["source_branch"] == source]
            self._answer(200, found)

        def do_POST(self) -> None:
            rec = self._record()
            if server.post_answers:
                self._answer(*server.post_answers.pop(0))
                return
            number = len(server.prs) + 1
            if server.kind == "github":
                owner_repo = rec.path.removeprefix("/repos/").removesuffix("/pulls")
                pr = {
                    "number": number,
                    "state": "open",
                    "title": rec.body["title"],
                    "body": rec.body["body"],
                    "html_url": f"https://github.com/{owner_repo}/pull/{number}",
                    "head": {"ref": rec.body["head"]},
                    "base": {"ref": rec.body["base"]},
                }
            else:
                pr = {
                    "iid": number,
                    "state": "opened",
                    "title": rec.body["title"],
                    "description": rec.body["description"],
                    "source_branch": rec.body["source_branch"],
                    "target_branch": rec.body["target_branch"],
                    "web_url": f"https://gitlab.com/group/config/-/merge_requests/{number}",
                }
            server.prs.append(pr)
            self._answer(201, pr)

    return Handler


@pytest.fixture(params=["github", "gitlab"])
def forge(request: pytest.FixtureRequest) -> Iterator[ForgeServer]:
    """A local forge API (GitHub, then GitLab) answering as their REST docs show."""
    yield from _serve(request.param)


@pytest.fixture
def github() -> Iterator[ForgeServer]:
    yield from _serve("github")


@pytest.fixture
def gitlab() -> Iterator[ForgeServer]:
    yield from _serve("gitlab")


def _serve(kind: str) -> Iterator[ForgeServer]:
    state = ForgeServer(kind=kind)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
