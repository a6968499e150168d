"""Round commits signed with an SSH key (git's ``gpg.format=ssh``), offline.

A signed round commit says which key wrote it: anyone holding the repo and an
``allowed_signers`` file can check every round with ``git verify-commit`` (or
``fl-gitops verify``), without asking a forge. The key reaches the reconcile job as a
mounted Secret (``spec.gitops.signing.secretRef``, key ``ssh-privatekey``); git signs
through ``ssh-keygen -Y sign``, which refuses a key file readable by anyone else, and a
Secret volume with an ``fsGroup`` mounts it group-readable. So each commit is signed from
a 0600 copy in a private directory (``_private.py``) that exists only while that one
``git commit`` runs and is removed in a ``finally``; one left by a killed pass is swept by
the next. The key's path goes to git in its environment (``GIT_CONFIG_*``), never in argv,
and no byte of the key reaches a message.

``simulate`` makes its own ed25519 key and the ``allowed_signers`` file beside it with
:func:`generate_signing_key` and :func:`write_allowed_signers`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from fl_gitops.errors import GitError, InputError
from fl_gitops.gitops._private import make_private_dir

__all__ = [
    "SIGNING_KEY_ENV",
    "SigningKey",
    "config_env",
    "generate_signing_key",
    "write_allowed_signers",
]

#: The reconcile CronJob names the mounted key here (``--signing-key`` wins over it).
SIGNING_KEY_ENV = "FL_GIT_SIGNING_KEY_FILE"

# The first line of a key in OpenSSH's format (what ssh-keygen writes and signs with).
_OPENSSH_HEADER = b"-----BEGIN OPENSSH PRIVATE KEY-----"
_PEM_HEADERS = (b"-----BEGIN RSA PRIVATE KEY-----", b"-----BEGIN EC PRIVATE KEY-----")
_MAX_KEY_BYTES = 64 * 1024
_KEYGEN_TIMEOUT = 60.0


@dataclass(frozen=True)
class SigningKey:
    """A private SSH key that signs commits; ``path`` is where it is mounted (any mode)."""

    path: Path

    @classmethod
    def from_file(cls, path: str | Path, *, source: str = "--signing-key") -> SigningKey:
        """The key at ``path``, checked to be a readable private key in OpenSSH or PEM form.

        Args:
            path: the key file.
            source: how the user named it, for the message (a flag or a variable).

        Raises:
            InputError: no such file, unreadable, too large, or not a private key; the
                message names the file and never shows its content.
        """
        key = Path(path)
        where = f"{source}={key}"
        try:
            info = key.stat()
        except OSError:
            raise InputError(f"{where}: no such file (expected an SSH private key)") from None
        if not stat.S_ISREG(info.st_mode):
            raise InputError(f"{where}: not a regular file (expected an SSH private key)")
        if info.st_size > _MAX_KEY_BYTES:
            raise InputError(f"{where}: over {_MAX_KEY_BYTES} bytes; not an SSH private key")
        try:
            head = key.read_bytes()[:64].lstrip()
        except OSError:
            raise InputError(f"{where}: cannot be read (expected an SSH private key)") from None
        if not (head.startswith(_OPENSSH_HEADER) or head.startswith(_PEM_HEADERS)):
            raise InputError(
                f"{where}: not an SSH private key (expected OpenSSH's format, as "
                "`ssh-keygen -t ed25519` writes it)"
            )
        return cls(key)

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> SigningKey | None:
        """The key named by ``FL_GIT_SIGNING_KEY_FILE``; None when it is not set."""
        value = environ.get(SIGNING_KEY_ENV)
        return cls.from_file(value, source=SIGNING_KEY_ENV) if value else None

    @contextlib.contextmanager
    def private_copy(self) -> Iterator[Path]:
        """A 0600 copy of the key in a private directory, removed when the block ends.

        Raises:
            GitError: the key can no longer be read (a Secret rotated away mid-pass).
        """
        directory = make_private_dir("signing")
        try:
            copy = directory / "signing-key"
            try:
                fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as out, self.path.open("rb") as src:
                    shutil.copyfileobj(src, out)
            except OSError:
                raise GitError(f"signing key {self.path}: cannot be read") from None
            yield copy
        finally:
            shutil.rmtree(directory, ignore_errors=True)


def config_env(entries: Mapping[str, str], base: Mapping[str, str]) -> dict[str, str]:
    """``base`` plus git config ``entries`` as ``GIT_CONFIG_COUNT``/``KEY_n``/``VALUE_n``.

    Entries ``base`` already carries (the credential helper reset) are kept, so both hold.
    """
    env = dict(base)
    count = int(env.get("GIT_CONFIG_COUNT") or 0)
    for key, value in entries.items():
        env[f"GIT_CONFIG_KEY_{count}"] = key
        env[f"GIT_CONFIG_VALUE_{count}"] = value
        count += 1
    env["GIT_CONFIG_COUNT"] = str(count)
    return env


def signing_config(key_copy: Path) -> dict[str, str]:
    """The git config that makes ``git commit -S`` sign with the key at ``key_copy``."""
    return {
        "gpg.format": "ssh",
        "user.signingKey": str(key_copy),
        "gpg.ssh.program": "ssh-keygen",
    }


def generate_signing_key(path: Path, *, comment: str) -> str:
    """Make a new ed25519 key (no passphrase) at ``path``; return its public key line.

    The private key is written with mode 0600 and ``<path>.pub`` beside it.

    Raises:
        InputError: ``path`` exists already.
        GitError: ssh-keygen failed.
    """
    path = Path(path)
    if path.exists():
        raise InputError(f"{path}: already exists; expected a new key file")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
            capture_output=True,
            text=True,
            timeout=_KEYGEN_TIMEOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitError(f"ssh-keygen could not make a key at {path}: {type(exc).__name__}") from None
    if done.returncode != 0:
        raise GitError(f"ssh-keygen could not make a key at {path}: {done.stderr.strip()[-500:]}")
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
    return path.with_name(path.name + ".pub").read_text(encoding="ascii").strip()


def write_allowed_signers(path: Path, *, principal: str, public_key: str) -> None:
    """Write an ``allowed_signers`` file trusting ``public_key`` for git commits.

    The format ``git verify-commit`` reads with ``gpg.ssh.allowedSignersFile``:
    ``<principal> namespaces="git" <key type> <key>``.
    """
    fields = public_key.split()
    if len(fields) < 2 or not fields[0].startswith(("ssh-", "ecdsa-")):
        raise InputError(f"{path}: expected an SSH public key to trust")
    line = f'{principal} namespaces="git" {fields[0]} {fields[1]}\n'
    path.write_text(line, encoding="ascii")
