"""A real simulated experiment to audit, and the means to sign and to tamper with it.

One `fl-gitops simulate` run (3 clusters, 2 rounds) per session; each test audits its own
copy of the run's config repo and store. Signed histories are made here with git and
ssh-keygen: the copy's history is re-signed commit by commit with a test key (git's
`gpg.format=ssh`), so the tests hold whether or not the simulation signs its own commits.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fl_gitops.cli import main

REPO = Path(__file__).resolve().parents[2]
STOCK = REPO / "blueprints" / "digits-fedavg.yaml"
PATH = "experiments/digits-fedavg"
BOT = ("fl-gitops", "fl-gitops@localhost")


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run git in ``cwd`` as the test's own tool (tests may run git themselves)."""
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
    ).stdout


def verify_work(capsys, work: Path, tmp_path: Path, *args: str) -> tuple[int, str]:
    """`fl-gitops verify` of a work dir's config repo (``work/config-repo.git``), cloned
    afresh under ``tmp_path`` each call: its exit code and what it printed."""
    capsys.readouterr()
    clone = tmp_path / f"clone-{len(list(tmp_path.iterdir()))}"
    repo = str(work / "config-repo.git")
    code = main(["verify", "--repo", repo, "--path", PATH, "--workdir", str(clone), *args])
    return code, capsys.readouterr().out


@dataclass(frozen=True)
class Key:
    """An ed25519 key pair and an allowed_signers file that lists it."""

    private: Path
    public: Path
    allowed_signers: Path

    @property
    def fingerprint(self) -> str:
        out = subprocess.run(
            ["ssh-keygen", "-l", "-f", str(self.public)], capture_output=True, text=True, check=True
        ).stdout
        return out.split()[1]


def _key(directory: Path, name: str) -> Key:
    directory.mkdir(parents=True, exist_ok=True)
    private = directory / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(private)],
        check=True,
    )
    public = private.with_suffix(".pub")
    allowed = directory / f"{name}.allowed_signers"
    allowed.write_text(f"{BOT[1]} {public.read_text().strip()}\n")
    return Key(private, public, allowed)


@pytest.fixture(scope="session")
def bot_key(tmp_path_factory: pytest.TempPathFactory) -> Key:
    """The key the round commits are signed with."""
    return _key(tmp_path_factory.mktemp("keys"), "bot")


@pytest.fixture(scope="session")
def other_key(tmp_path_factory: pytest.TempPathFactory) -> Key:
    """A key nobody allowed."""
    return _key(tmp_path_factory.mktemp("keys"), "other")


@pytest.fixture(scope="session")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small simulated run's work dir (config-repo.git, store/)."""
    work = tmp_path_factory.mktemp("sim") / "run"
    args = ["simulate", str(STOCK), "--clusters", "3", "--rounds", "2", "--workdir", str(work)]
    assert main([*args, "--no-plot"]) == 0
    return work


@dataclass
class World:
    """A test's own copy of the simulated run: its bare config repo, its store, a clone."""

    root: Path
    remote: Path
    store: Path
    clone: Path

    def sign(self, key: Key) -> None:
        """Re-sign every commit with ``key`` (same trees, messages and authors)."""
        git(
            self.clone,
            "-c",
            f"user.name={BOT[0]}",
            "-c",
            f"user.email={BOT[1]}",
            "-c",
            "gpg.format=ssh",
            "-c",
            f"user.signingkey={key.private}",
            "rebase",
            "-q",
            "--root",
            "--force-rebase",
            "--gpg-sign",
        )
        self.push()

    def push(self) -> None:
        git(self.clone, "push", "-q", "--force", "origin", "HEAD:main")

    def amend_tip(
        self, *, files: dict[str, str] | None = None, message: str | None = None, key: Key | None
    ) -> None:
        """Rewrite the tip commit: some files, its message, signed with ``key`` or not."""
        for rel, text in (files or {}).items():
            (self.clone / PATH / rel).write_text(text)
            git(self.clone, "add", f"{PATH}/{rel}")
        args = ["commit", "-q", "--amend", "--allow-empty"]
        args += ["-m", message] if message is not None else ["--no-edit"]
        signing = ["-c", "gpg.format=ssh", "-c", f"user.signingkey={key.private}"] if key else []
        args += ["-S"] if key else ["--no-gpg-sign"]
        git(self.clone, "-c", f"user.name={BOT[0]}", "-c", f"user.email={BOT[1]}", *signing, *args)
        self.push()

    def show(self, rel: str, ref: str = "HEAD") -> str:
        return git(self.clone, "show", f"{ref}:{PATH}/{rel}")

    def head(self) -> str:
        return git(self.clone, "rev-parse", "HEAD").strip()


@pytest.fixture
def world(simulated: Path, tmp_path: Path) -> World:
    """A copy of the simulated run for one test to sign, tamper with and audit."""
    root = tmp_path / "world"
    remote = root / "config-repo.git"
    shutil.copytree(simulated / "config-repo.git", remote)
    shutil.copytree(simulated / "store", root / "store")
    clone = root / "edit"
    subprocess.run(["git", "clone", "-q", str(remote), str(clone)], check=True)
    return World(root=root, remote=remote, store=root / "store", clone=clone)


@dataclass(frozen=True)
class Run:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


@pytest.fixture
def verify(
    world: World, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Iterator[Callable[..., Run]]:
    """``verify(*args)``: `fl-gitops verify` over the test's world, as a user runs it."""
    count = iter(range(1000))

    def run(*args: str, path: str = PATH) -> Run:
        capsys.readouterr()
        argv = [
            "verify",
            "--repo",
            str(world.remote),
            "--path",
            path,
            "--store",
            world.store.as_uri(),
            "--workdir",
            str(tmp_path / f"clone-{next(count)}"),
            *args,
        ]
        code = main(argv)
        captured = capsys.readouterr()
        return Run(code, captured.out, captured.err)

    yield run
