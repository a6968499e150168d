"""`fl-gitops reconcile` signs its commits, bounds its Git calls and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from fl_gitops.cli import main
from fl_gitops.gitops import generate_signing_key, write_allowed_signers

from .fleet import PATH, Fleet, blueprint_text, make_remote

CLUSTERS = ["cluster-a", "cluster-b", "cluster-c"]


def test_reconcile_signs_its_round_commit_with_the_mounted_key(
    tmp_path: Path, capsys, monkeypatch
) -> None:
    remote = make_remote(tmp_path, blueprint_text(tmp_path / "store", clusters=3))
    Fleet(tmp_path, remote, tmp_path / "store", CLUSTERS, hub_dir=tmp_path / "hub")
    key = tmp_path / "signing" / "ssh-privatekey"
    public = generate_signing_key(key, comment="reconcile")
    key.chmod(0o440)  # as a Secret volume with an fsGroup mounts it
    allowed = tmp_path / "allowed_signers"
    write_allowed_signers(allowed, principal="fl-gitops@localhost", public_key=public)
    args = ["reconcile", "--repo", str(remote), "--path", PATH, "--workdir", str(tmp_path / "w")]
    hub = ["--local-hub", str(tmp_path / "hub")]
    monkeypatch.setenv("FL_GIT_SIGNING_KEY_FILE", str(key))
    assert main([*args, *hub]) == 0

    assert capsys.readouterr().out.startswith("StartRound: round 1")
    verified = subprocess.run(
        ["git", "-c", f"gpg.ssh.allowedSignersFile={allowed}", "verify-commit", "main"],
        cwd=remote,
        capture_output=True,
        text=True,
        check=False,
    )
    assert verified.returncode == 0, verified.stderr
    assert key.read_text() not in capsys.readouterr().err


def test_a_signing_key_that_is_not_a_key_exits_2_without_showing_it(tmp_path: Path, capsys) -> None:
    remote = make_remote(tmp_path, blueprint_text(tmp_path / "store"))
    bogus = tmp_path / "ssh-privatekey"
    bogus.write_text("s3cr3t-not-a-key\n")
    args = ["reconcile", "--repo", str(remote), "--path", PATH, "--workdir", str(tmp_path / "w")]

    assert main([*args, "--signing-key", str(bogus), "--local-hub", str(tmp_path / "h")]) == 2

    err = capsys.readouterr().err
    assert err == (
        f"error: --signing-key={bogus}: not an SSH private key (expected OpenSSH's format, "
        "as `ssh-keygen -t ed25519` writes it)\n"
    )


def test_reconcile_against_a_silent_remote_fails_within_its_git_timeout(
    tmp_path: Path, capsys
) -> None:
    server = socket.create_server(("127.0.0.1", 0))  # accepts (backlog), never answers
    url = f"http://127.0.0.1:{server.getsockname()[1]}/config.git"
    try:
        code = main(
            [
                *("reconcile", "--repo", url, "--path", PATH, "--workdir", str(tmp_path / "w")),
                *("--local-hub", str(tmp_path / "hub"), "--git-timeout", "2s"),
            ]
        )
    finally:
        server.close()

    assert code == 2  # a --repo that cannot be read is the user's to fix
    assert capsys.readouterr().err == (
        f"error: --repo {url} (branch main): cannot be read: fetch of branch main from "
        f"remote {url} did not finish in 2s and was stopped: the remote is not answering\n"
    )


@pytest.mark.parametrize("signals", [1, 2], ids=["once", "twice"])
def test_sigterm_stops_a_hung_pass_cleanly_with_143(tmp_path: Path, signals: int) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{server.getsockname()[1]}/config.git"
    key = tmp_path / "ssh-privatekey"
    key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nnot-really\n")
    env = {**os.environ, "FL_GIT_SSH_KEY_FILE": str(key), "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "fl_gitops.cli", "reconcile", "--repo", url, "--path", PATH),
            *("--workdir", str(tmp_path / "w"), "--local-hub", str(tmp_path / "hub")),
        ],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        conn, _ = server.accept()  # the pass is now waiting on the silent remote
        for _ in range(signals):  # a second one (kill twice, a group's) lands mid-clean-up
            proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
        conn.close()
    finally:
        proc.kill()
        server.close()

    assert proc.returncode == 143
    assert "Traceback" not in err
    assert list(tmp_path.glob("fl-gitops-auth-*")) == []  # its key copy went with it
