"""Git faults a pass must survive or report as what they are (issue 10's list).

A silent remote (a TCP server that accepts and never answers), a ref lock left on the
remote by a killed git, a corrupt clone, two passes on one cache, a key copy left by a
killed pass: each against real git, real sockets and real processes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from fl_gitops.errors import GitError, InputError
from fl_gitops.gitops import ConfigRepo, Credentials

from .conftest import git, remote_log, run_in_threads
from .test_config_repo import write_round


@pytest.fixture
def silent_server() -> Iterator[tuple[int, list[socket.socket]]]:
    """A loopback TCP server that accepts every connection and never sends a byte."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted.append(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    stop.set()
    thread.join(5)
    server.close()
    for conn in accepted:
        conn.close()


def _peer_closed(conn: socket.socket) -> bool:
    """Whether the client side of ``conn`` is gone (its process was killed)."""
    conn.settimeout(5)
    try:
        return conn.recv(65536, socket.MSG_PEEK) == b"" or _drain(conn)
    except (ConnectionResetError, TimeoutError):
        return isinstance(sys.exc_info()[1], ConnectionResetError)


def _drain(conn: socket.socket) -> bool:
    while True:
        data = conn.recv(65536)
        if not data:
            return True


@pytest.mark.parametrize("scheme", ["http", "ssh"])
def test_a_silent_remote_fails_the_pass_with_a_timeout_instead_of_hanging(
    silent_server: tuple[int, list[socket.socket]], tmp_path: Path, scheme: str
) -> None:
    port, accepted = silent_server
    url = f"{scheme}://{'git@' if scheme == 'ssh' else ''}127.0.0.1:{port}/config.git"
    errors: list[BaseException] = []

    def open_it(_: object) -> None:
        try:
            ConfigRepo.open(url, branch="main", workdir=tmp_path / "w", network_timeout=2)
        except GitError as exc:
            errors.append(exc)

    # the thread runner fails the test if the pass is still running long after the bound
    assert run_in_threads(open_it, [url], timeout=60) == []

    assert [str(e) for e in errors] == [
        f"fetch of branch main from remote {url} did not finish in 2s and was stopped: "
        "the remote is not answering"
    ]
    assert accepted, "git never reached the server"
    assert all(_peer_closed(conn) for conn in accepted)  # git and its helper were killed


def test_a_stale_ref_lock_on_the_remote_is_reported_as_a_lock(remote: Path, tmp_path: Path) -> None:
    repo = ConfigRepo.open(str(remote), branch="main", workdir=tmp_path / "w")
    lock = remote / "refs" / "heads" / "main.lock"
    lock.write_text("")  # what a git killed while updating the branch leaves

    with pytest.raises(GitError) as err:
        repo.publish(write_round(1), max_attempts=2, sleep=lambda _s: None)

    assert str(err.value) == (
        f"push to branch main on remote {remote} failed 2 times: the remote's ref lock "
        f"{lock} exists. Another git may be writing the branch, or one killed mid-write "
        "left the lock behind (a stale lock): if no git is running on the remote, remove "
        "that file"
    )
    lock.unlink()
    assert repo.publish(write_round(1)).pushed


def test_locks_a_killed_git_left_in_the_clone_are_removed(remote: Path, tmp_path: Path) -> None:
    ConfigRepo.open(str(remote), branch="main", workdir=tmp_path / "w").close()
    for lock in ("index.lock", "HEAD.lock", "refs/heads/main.lock"):
        (tmp_path / "w" / ".git" / lock).write_text("")

    repo = ConfigRepo.open(str(remote), branch="main", workdir=tmp_path / "w")
    result = repo.publish(write_round(1))

    assert result.pushed
    assert remote_log(remote)[0] == "fl(digits): round 0 -> 1"


def _corrupt_head_object(workdir: Path) -> None:
    sha = git(workdir, "rev-parse", "HEAD").strip()
    obj = workdir / ".git" / "objects" / sha[:2] / sha[2:]
    obj.chmod(0o644)
    obj.write_bytes(b"not a zlib stream")


def _remove_head(workdir: Path) -> None:
    (workdir / ".git" / "HEAD").unlink()


def _garble_index(workdir: Path) -> None:
    (workdir / ".git" / "index").write_bytes(b"DIRC garbage")


@pytest.mark.parametrize("corrupt", [_corrupt_head_object, _remove_head, _garble_index])
def test_a_corrupt_clone_is_cloned_again(remote: Path, tmp_path: Path, corrupt: object) -> None:
    workdir = tmp_path / "w"
    ConfigRepo.open(str(remote), branch="main", workdir=workdir).close()
    corrupt(workdir)  # type: ignore[operator]

    repo = ConfigRepo.open(str(remote), branch="main", workdir=workdir)
    result = repo.publish(write_round(1))

    assert result.pushed
    assert git(workdir, "fsck", "--connectivity-only") == ""
    assert remote_log(remote)[0] == "fl(digits): round 0 -> 1"


def test_a_corrupt_work_tree_of_another_repo_is_never_removed(
    remote: Path, make_remote: object, tmp_path: Path
) -> None:
    other = make_remote("other")  # type: ignore[operator]
    workdir = tmp_path / "w"
    ConfigRepo.open(str(other), branch="main", workdir=workdir).close()
    _remove_head(workdir)

    with pytest.raises(Exception) as err:
        ConfigRepo.open(str(remote), branch="main", workdir=workdir)

    assert str(err.value) == f"workdir {workdir}: expected an empty directory or a git work tree"
    assert (workdir / ".git" / "config").is_file()


_HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from fl_gitops.gitops import ConfigRepo
    repo = ConfigRepo.open(sys.argv[1], branch="main", workdir=Path(sys.argv[2]))
    print("held", flush=True)
    sys.stdin.readline()
    repo.close()
    print("released", flush=True)
    sys.stdin.readline()
    """
)


@pytest.fixture
def holder(remote: Path, tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process (another pass) holding ``tmp_path / "w"`` open."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(remote), str(tmp_path / "w")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    assert proc.stdout.readline() == "held\n"
    yield proc
    proc.kill()
    proc.wait()


def test_a_pass_waits_a_bounded_time_for_another_on_the_same_cache(
    holder: subprocess.Popen[str], remote: Path, tmp_path: Path
) -> None:
    workdir = tmp_path / "w"
    with pytest.raises(GitError) as err:
        ConfigRepo.open(str(remote), branch="main", workdir=workdir, lock_timeout=0.3)

    assert str(err.value) == (
        f"workdir {workdir}: in use by another pass (it holds {tmp_path / '.w.lock'}); "
        "waited 0.3s. Give this pass its own --workdir, or let the other one finish"
    )


def test_a_second_pass_on_the_same_cache_waits_and_then_runs(
    holder: subprocess.Popen[str], remote: Path, tmp_path: Path
) -> None:
    results: list[bool] = []

    def second(_: object) -> None:
        repo = ConfigRepo.open(str(remote), branch="main", workdir=tmp_path / "w")
        results.append(repo.publish(write_round(1)).pushed)
        repo.close()

    thread = threading.Thread(target=second, args=(None,), daemon=True)
    thread.start()
    thread.join(0.5)
    assert thread.is_alive() and results == []  # waiting for the holder
    assert holder.stdin is not None and holder.stdout is not None
    holder.stdin.write("\n")
    holder.stdin.flush()
    assert holder.stdout.readline() == "released\n"
    thread.join(60)

    assert results == [True]


def test_the_ssh_key_copy_of_a_killed_pass_is_removed_by_the_next(
    remote: Path, tmp_path: Path
) -> None:
    key = tmp_path / "ssh-privatekey"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nnot-really\n")
    env = {**os.environ, "FL_GIT_SSH_KEY_FILE": str(key)}
    code = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from fl_gitops.gitops import ConfigRepo, Credentials
        creds = Credentials.from_environment(os.environ)
        repo = ConfigRepo.open({str(remote)!r}, branch="main",
                               workdir=Path({str(tmp_path / "w")!r}), credentials=creds)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    killed = subprocess.run([sys.executable, "-c", code], env=env, check=False)
    assert killed.returncode == -9
    copies = [
        p
        for p in Path(tempfile.gettempdir()).glob("fl-gitops-auth-*")
        if (p / "ssh-key").is_file() and (p / "ssh-key").read_bytes() == key.read_bytes()
    ]
    assert copies, "the killed pass left no copy: nothing to test"

    repo = ConfigRepo.open(
        str(remote),
        branch="main",
        workdir=tmp_path / "w2",
        credentials=Credentials(ssh_key_file=str(key)),
    )
    repo.close()

    assert not any(p.exists() for p in copies)


def test_a_work_dir_whose_lock_cannot_be_made_is_an_input_error(
    remote: Path, tmp_path: Path
) -> None:
    parent = tmp_path / "not-a-dir"
    parent.write_text("a file where the work dir's parent should be\n")

    with pytest.raises(InputError) as err:
        ConfigRepo.open(str(remote), branch="main", workdir=parent / "w")

    assert str(err.value) == (
        f"workdir {parent / 'w'}: cannot create its lock file {parent / '.w.lock'}; "
        f"expected {parent} to be a writable directory"
    )


def test_a_watching_pass_lets_a_pass_by_hand_use_its_cache_while_it_waits(
    remote: Path, tmp_path: Path
) -> None:
    workdir = tmp_path / "w"
    watcher = ConfigRepo.open(str(remote), branch="main", workdir=workdir)
    by_hand = [
        sys.executable,
        "-c",
        "import sys; from pathlib import Path; from fl_gitops.gitops import ConfigRepo; "
        "from tests.gitops.test_config_repo import write_round; "
        "repo = ConfigRepo.open(sys.argv[1], branch='main', workdir=Path(sys.argv[2]), "
        "lock_timeout=0.3); print(repo.publish(write_round(1)).pushed); repo.close()",
        str(remote),
        str(workdir),
    ]
    root = Path(__file__).resolve().parents[2]

    busy = subprocess.run(by_hand, capture_output=True, text=True, cwd=root)
    assert "in use by another pass" in busy.stderr  # the watcher holds it during a pass
    with watcher.idle():
        free = subprocess.run(by_hand, capture_output=True, text=True, cwd=root)
    assert free.returncode == 0, free.stderr
    assert free.stdout.strip() == "True"

    # the watcher has its clone back, and its next pass sees what the other one pushed
    busy = subprocess.run(by_hand, capture_output=True, text=True, cwd=root)
    assert "in use by another pass" in busy.stderr
    watcher.sync()
    assert remote_log(remote)[0] == "fl(digits): round 0 -> 1"
    assert git(workdir, "log", "-1", "--format=%s").strip() == "fl(digits): round 0 -> 1"
    watcher.close()
