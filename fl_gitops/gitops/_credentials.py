"""Git credentials: where they come from, how git gets them, and how they stay out of sight.

Credentials reach the reconcile job as a mounted Secret or as environment variables, never
from a blueprint. They reach git without ever appearing in argv, in a URL stored in
``.git/config``, in a log line or in an error message:

- https: a ``GIT_ASKPASS`` helper (a tiny shell script with no secret in it) answers git's
  username and password prompts from two environment variables set only on the git
  processes this package starts;
- ssh: ``GIT_SSH_COMMAND`` names a private copy of the key (mode 0600, because a Secret
  volume often mounts files world-readable and ssh refuses those) with
  ``IdentitiesOnly=yes``, and the mounted ``known_hosts`` with strict host key checking.
  The copy sits in a private directory (``_private.py``) removed when the repo is closed;
  one left by a killed pass is swept by the next. Every ssh connection has a connect
  timeout and keep-alives, so a silent server cannot hold a pass.

Every message that leaves this package passes through :func:`redact`.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import stat
import urllib.parse
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fl_gitops.errors import InputError
from fl_gitops.gitops._private import make_private_dir

__all__ = [
    "CREDENTIALS_DIR_ENV",
    "Credentials",
    "GitAuth",
    "redact",
]

CREDENTIALS_DIR_ENV = "FL_GIT_CREDENTIALS_DIR"
USERNAME_ENV = "FL_GIT_USERNAME"
TOKEN_ENV = "FL_GIT_TOKEN"
SSH_KEY_ENV = "FL_GIT_SSH_KEY_FILE"
KNOWN_HOSTS_ENV = "FL_GIT_KNOWN_HOSTS_FILE"

# A token alone needs some user name for Basic auth; GitHub and GitLab accept any non-empty
# one with a personal or project access token.
DEFAULT_TOKEN_USERNAME = "x-access-token"

# The askpass helper reads these; they are set on our git processes only, never in os.environ.
_ASKPASS_USER_VAR = "FL_GITOPS_ASKPASS_USERNAME"
_ASKPASS_PASS_VAR = "FL_GITOPS_ASKPASS_PASSWORD"
_ASKPASS_SCRIPT = f"""#!/bin/sh
# fl-gitops: answers git's credential prompts from the environment (no secret in this file).
case "$1" in
  Username*) printf '%s\\n' "${_ASKPASS_USER_VAR}" ;;
  *) printf '%s\\n' "${_ASKPASS_PASS_VAR}" ;;
esac
"""

_REDACTED = "***"

# ssh gives up connecting after this many seconds, and on a connection silent for
# _SSH_ALIVE_INTERVAL * _SSH_ALIVE_COUNT seconds.
SSH_CONNECT_TIMEOUT = 30
_SSH_ALIVE_INTERVAL = 15
_SSH_ALIVE_COUNT = 4
# user:password@ in any URL-looking text
_URL_USERINFO_RE = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@\s:]*):[^/@\s]*@"
)


@dataclass(frozen=True)
class Credentials:
    """How to authenticate to the config repo: https user and token, or an ssh key.

    ``password`` holds a password or an access token and is left out of ``repr``.
    """

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssh_key_file: str | None = None
    known_hosts_file: str | None = None

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> Credentials | None:
        """Read credentials from a mounted Secret directory or from environment variables.

        ``FL_GIT_CREDENTIALS_DIR`` names a directory (a Secret volume) holding any of the
        files ``username``, ``password`` or ``token``, ``ssh-privatekey`` and
        ``known_hosts`` (the keys of Kubernetes' ``basic-auth`` and ``ssh-auth`` Secret
        types). Otherwise ``FL_GIT_USERNAME``, ``FL_GIT_TOKEN``, ``FL_GIT_SSH_KEY_FILE`` and
        ``FL_GIT_KNOWN_HOSTS_FILE`` are read; the directory's files win over them.

        Args:
            environ: the environment to read (``os.environ`` in the CLI).

        Returns:
            The credentials, or None when nothing is configured.

        Raises:
            InputError: the directory or a named file does not exist.
        """
        username = environ.get(USERNAME_ENV) or None
        password = environ.get(TOKEN_ENV) or None
        ssh_key = environ.get(SSH_KEY_ENV) or None
        known_hosts = environ.get(KNOWN_HOSTS_ENV) or None
        directory = environ.get(CREDENTIALS_DIR_ENV)
        if directory:
            base = Path(directory)
            if not base.is_dir():
                raise InputError(
                    f"{CREDENTIALS_DIR_ENV}={directory}: expected a directory (a mounted "
                    "Secret with username/password or token, ssh-privatekey, known_hosts)"
                )
            username = _read_secret_file(base / "username") or username
            password = (
                _read_secret_file(base / "password")
                or _read_secret_file(base / "token")
                or password
            )
            if (base / "ssh-privatekey").is_file():
                ssh_key = str(base / "ssh-privatekey")
            if (base / "known_hosts").is_file():
                known_hosts = str(base / "known_hosts")
        for name, value in ((SSH_KEY_ENV, ssh_key), (KNOWN_HOSTS_ENV, known_hosts)):
            if value and not Path(value).is_file():
                raise InputError(f"{name}={value}: no such file")
        if not (username or password or ssh_key or known_hosts):
            return None
        if password and not username:
            username = DEFAULT_TOKEN_USERNAME
        return cls(
            username=username,
            password=password,
            ssh_key_file=ssh_key,
            known_hosts_file=known_hosts,
        )

    def secrets(self) -> tuple[str, ...]:
        """The values that must never be shown (for :func:`redact`)."""
        return (self.password,) if self.password else ()


def _read_secret_file(path: Path) -> str | None:
    if not path.is_file():
        return None
    # Secret files often end with the newline an editor or `echo` added.
    value = path.read_text(encoding="utf-8").strip()
    return value or None


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Hide credentials in text bound for a log or an error message.

    Replaces each secret (raw and URL-encoded) and any ``user:password@`` in a URL with
    ``***``.
    """
    for secret in secrets:
        if not secret:
            continue
        for form in {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote(secret)}:
            text = text.replace(form, _REDACTED)
    return _URL_USERINFO_RE.sub(lambda m: f"{m['scheme']}{m['user']}:{_REDACTED}@", text)


class GitAuth:
    """The environment that lets git processes authenticate, and its private files.

    Builds a private directory (mode 0700) holding the askpass helper and, for ssh, a 0600
    copy of the key; the directory is removed when this object is closed or collected.
    """

    def __init__(self, credentials: Credentials | None) -> None:
        self.credentials = credentials
        self._dir: Path | None = None
        self._finalizer: weakref.finalize[..., GitAuth] | None = None
        self.env = self._build_env()

    def close(self) -> None:
        """Remove the private files now."""
        if self._finalizer is not None:
            self._finalizer()

    def _private_dir(self) -> Path:
        if self._dir is None:
            self._dir = make_private_dir("auth")
            self._finalizer = weakref.finalize(self, shutil.rmtree, str(self._dir), True)
        return self._dir

    @property
    def secrets(self) -> tuple[str, ...]:
        return self.credentials.secrets() if self.credentials else ()

    def _build_env(self) -> dict[str, str]:
        # Never wait for a terminal prompt: a reconcile job has no terminal.
        env = {"GIT_TERMINAL_PROMPT": "0", "GCM_INTERACTIVE": "never"}
        creds = self.credentials
        if creds is None:
            if not (os.environ.get("GIT_SSH_COMMAND") or os.environ.get("GIT_SSH")):
                env["GIT_SSH_COMMAND"] = shlex.join(_ssh_base())
            return env
        if creds.username or creds.password:
            script = self._private_dir() / "askpass.sh"
            script.write_text(_ASKPASS_SCRIPT, encoding="utf-8")
            os.chmod(script, stat.S_IRWXU)
            env["GIT_ASKPASS"] = str(script)
            env[_ASKPASS_USER_VAR] = creds.username or DEFAULT_TOKEN_USERNAME
            env[_ASKPASS_PASS_VAR] = creds.password or ""
            # A credential helper from the user's config would be asked first (and might
            # store our token); an empty value resets the list of helpers.
            env["GIT_CONFIG_COUNT"] = "1"
            env["GIT_CONFIG_KEY_0"] = "credential.helper"
            env["GIT_CONFIG_VALUE_0"] = ""
        if creds.ssh_key_file or creds.known_hosts_file:
            ssh = _ssh_base()
            if creds.ssh_key_file:
                key = self._private_dir() / "ssh-key"
                shutil.copyfile(creds.ssh_key_file, key)
                os.chmod(key, stat.S_IRUSR | stat.S_IWUSR)
                ssh += ["-i", str(key), "-o", "IdentitiesOnly=yes"]
            if creds.known_hosts_file:
                ssh += [
                    "-o",
                    f"UserKnownHostsFile={creds.known_hosts_file}",
                    "-o",
                    "StrictHostKeyChecking=yes",
                ]
            env["GIT_SSH_COMMAND"] = shlex.join(ssh)
        return env


def _ssh_base() -> list[str]:
    """ssh that never prompts and never waits for ever on a silent server."""
    return [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        f"ConnectTimeout={SSH_CONNECT_TIMEOUT}",
        "-o",
        f"ServerAliveInterval={_SSH_ALIVE_INTERVAL}",
        "-o",
        f"ServerAliveCountMax={_SSH_ALIVE_COUNT}",
    ]
