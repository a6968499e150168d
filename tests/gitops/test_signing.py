"""Signed round commits: every commit a pass makes carries an SSH signature git verifies.

Real keys (ssh-keygen), real commits, checked with ``git verify-commit`` against an
``allowed_signers`` file, as ``fl-gitops verify`` and a person auditing the repo would.
"""

from __future__ import annotations

import os
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from fl_gitops.errors import InputError
from fl_gitops.gitops import (
    ConfigRepo,
    SigningKey,
    generate_signing_key,
    remember_signing_key,
    write_allowed_signers,
)

from .conftest import git
from .test_config_repo import write_round


def verify(bare: Path, ref: str, allowed: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-c", f"gpg.ssh.allowedSignersFile={allowed}", "verify-commit", ref],
        cwd=bare,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def key(tmp_path: Path) -> tuple[Path, Path]:
    """A signing key mounted as a Secret with fsGroup mounts it (0440) and its signers."""
    path = tmp_path / "secret" / "ssh-privatekey"
    public = generate_signing_key(path, comment="fl-gitops reconcile")
    path.chmod(0o440)
    allowed = tmp_path / "allowed_signers"
    write_allowed_signers(allowed, principal="fl-gitops@localhost", public_key=public)
    return path, allowed


def test_every_commit_of_a_pass_is_signed_and_verifies(
    remote: Path, tmp_path: Path, key: tuple[Path, Path]
) -> None:
    path, allowed = key
    repo = ConfigRepo.open(
        str(remote), branch="main", workdir=tmp_path / "w", signing_key=SigningKey.from_file(path)
    )
    repo.publish(write_round(1))
    repo.publish(write_round(2))

    for ref in ("main", "main~1"):
        done = verify(remote, ref, allowed)
        assert done.returncode == 0, done.stderr
        assert 'Good "git" signature for fl-gitops@localhost with ED25519 key' in done.stderr
    # the seed commit was made by a person, unsigned
    assert verify(remote, "main~2", allowed).returncode != 0


def test_a_commit_signed_by_another_key_does_not_verify(
    remote: Path, tmp_path: Path, key: tuple[Path, Path]
) -> None:
    _path, allowed = key
    stranger = tmp_path / "stranger"
    generate_signing_key(stranger, comment="someone else")
    repo = ConfigRepo.open(
        str(remote),
        branch="main",
        workdir=tmp_path / "w",
        signing_key=SigningKey.from_file(stranger),
    )
    repo.publish(write_round(1))

    done = verify(remote, "main", allowed)
    assert done.returncode != 0
    assert "No principal matched" in done.stderr


def test_without_a_key_commits_are_unsigned(remote: Path, tmp_path: Path) -> None:
    repo = ConfigRepo.open(str(remote), branch="main", workdir=tmp_path / "w")
    repo.publish(write_round(1))

    assert git(remote, "cat-file", "commit", "main").count("gpgsig") == 0


def test_the_key_copy_exists_only_while_git_signs(
    remote: Path, tmp_path: Path, key: tuple[Path, Path]
) -> None:
    path, _allowed = key
    before = _signing_dirs()
    repo = ConfigRepo.open(
        str(remote), branch="main", workdir=tmp_path / "w", signing_key=SigningKey.from_file(path)
    )
    repo.publish(write_round(1))

    assert _signing_dirs() == before
    # and it is never in the clone, its config, or argv-visible config
    secret = path.read_bytes()
    for file in (tmp_path / "w").rglob("*"):
        if file.is_file():
            assert secret not in file.read_bytes()


def test_a_stale_key_copy_of_a_killed_pass_is_swept(
    remote: Path, tmp_path: Path, key: tuple[Path, Path]
) -> None:
    path, _allowed = key
    # what a pass SIGKILLed in the middle of `git commit -S` leaves behind
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = Path(tempfile.gettempdir()) / f"fl-gitops-signing-{dead.pid}-killed"
    stale.mkdir(mode=0o700)
    (stale / "signing-key").write_bytes(path.read_bytes())
    live = Path(tempfile.gettempdir()) / f"fl-gitops-signing-{os.getppid()}-alive"
    live.mkdir(mode=0o700)
    try:
        repo = ConfigRepo.open(
            str(remote),
            branch="main",
            workdir=tmp_path / "w",
            signing_key=SigningKey.from_file(path),
        )
        repo.publish(write_round(1))

        assert not stale.exists()
        assert live.exists()  # another process still running: never touched
    finally:
        for d in (stale, live):
            if d.exists():
                for f in d.iterdir():
                    f.unlink()
                d.rmdir()


def test_a_clone_remembers_its_signing_key(
    remote: Path, tmp_path: Path, key: tuple[Path, Path]
) -> None:
    path, allowed = key
    remember_signing_key(tmp_path / "w", path)

    repo = ConfigRepo.open(str(remote), branch="main", workdir=tmp_path / "w")
    repo.publish(write_round(1))

    assert verify(remote, "main", allowed).returncode == 0
    assert path.read_bytes() not in (tmp_path / "w" / ".git" / "config").read_bytes()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "no such file (expected an SSH private key)"),
        (b"hunter2-this-is-not-a-key\n", "not an SSH private key"),
    ],
)
def test_a_bad_key_file_is_an_input_error_that_never_shows_its_content(
    tmp_path: Path, content: bytes | None, expected: str
) -> None:
    path = tmp_path / "ssh-privatekey"
    if content is not None:
        path.write_bytes(content)

    with pytest.raises(InputError) as err:
        SigningKey.from_file(path)

    assert str(err.value).startswith(f"--signing-key={path}: {expected}")
    assert "hunter2" not in str(err.value)


def test_a_generated_key_is_private() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "k"
        public = generate_signing_key(path, comment="c")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert public.startswith("ssh-ed25519 ")


def _signing_dirs() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("fl-gitops-signing-*")}
