"""A real kube-apiserver with its own etcd on loopback: the hub side without a cluster.

Tests of the hub side and ``simulate --hub kubernetes`` need what only a real API server
does: server-side apply and its field management, schema pruning and defaulting of custom
resources, the status subresource, RBAC enforced by the authorizer, paging with continue
tokens, watches. This is the envtest way of getting one (the same binaries and flags as
controller-runtime's envtest): etcd and kube-apiserver as child processes on free loopback
ports, a self-signed serving certificate, static tokens for an administrator and for any
test identities, and the service-account signing key so that the TokenRequest API issues
real ServiceAccount tokens. No controller runs: nothing schedules pods or runs Jobs.

Everything lives under one folder, removed on ``stop`` unless the caller gave it.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from fl_gitops.devhub._assets import KubeAssets, find_assets
from fl_gitops.errors import FlGitopsError

__all__ = ["ADMIN_USER", "ApiServer", "DevHubError", "Identity"]

ADMIN_USER = "fl-gitops-admin"
_ISSUER = "https://kubernetes.default.svc.cluster.local"
_START_TIMEOUT = 90.0


class DevHubError(FlGitopsError):
    """The development hub could not start, or stopped answering."""


@dataclass(frozen=True)
class Identity:
    """A user the API server authenticates by a static bearer token."""

    user: str
    groups: tuple[str, ...] = ()
    token: str = ""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _csv_field(text: str) -> str:
    if any(c in text for c in ',"\n\r'):
        raise ValueError(f"a token-file field cannot hold commas, quotes or newlines: {text!r}")
    return text


class ApiServer:
    """etcd and kube-apiserver on loopback; ``with ApiServer() as server:`` starts and stops.

    Args:
        assets: the binaries; None finds them (``KUBEBUILDER_ASSETS`` or the build cache).
        workdir: where etcd's data, certificates, keys and logs go; None makes a temporary
            folder that ``stop`` removes.
        identities: extra users authenticated by static tokens (a token is made for each
            one that has none); ``tokens[user]`` gives it back.
    """

    def __init__(
        self,
        assets: KubeAssets | None = None,
        *,
        workdir: str | os.PathLike[str] | None = None,
        identities: Sequence[Identity] = (),
    ) -> None:
        self.assets = assets or find_assets()
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp("-devhub"))
        admin = Identity(ADMIN_USER, ("system:masters",), secrets.token_hex(16))
        self._identities = [admin] + [
            Identity(i.user, i.groups, i.token or secrets.token_hex(16)) for i in identities
        ]
        self.tokens: dict[str, str] = {i.user: i.token for i in self._identities}
        self.admin_token = admin.token
        self.port = 0
        self.etcd_url = ""
        self._etcd: subprocess.Popen[bytes] | None = None
        self._apiserver: subprocess.Popen[bytes] | None = None
        self._logs: list[IO[bytes]] = []

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def host(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        """The self-signed serving certificate, which is its own certificate authority."""
        return self.workdir / "certs" / "apiserver.crt"

    def start(self) -> ApiServer:
        """Start etcd, then kube-apiserver, and wait until ``/readyz`` answers ok.

        Raises:
            DevHubError: a process exited or did not become ready (with its log's tail).
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._start_etcd()
            self._start_apiserver()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop both processes (apiserver first) and remove a temporary workdir."""
        for proc in (self._apiserver, self._etcd):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        self._apiserver = self._etcd = None
        for log in self._logs:
            log.close()
        self._logs = []
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> ApiServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _log(self, name: str) -> IO[bytes]:
        log = (self.workdir / f"{name}.log").open("ab")
        self._logs.append(log)
        return log

    def _tail(self, name: str, lines: int = 15) -> str:
        try:
            text = (self.workdir / f"{name}.log").read_text("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def _start_etcd(self) -> None:
        client, peer = _free_port(), _free_port()
        self.etcd_url = f"http://127.0.0.1:{client}"
        data = self.workdir / "etcd"
        self._etcd = subprocess.Popen(
            [
                str(self.assets.etcd),
                "--name=devhub",
                f"--data-dir={data}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
                f"--initial-cluster=devhub=http://127.0.0.1:{peer}",
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
            stdout=subprocess.DEVNULL,
            stderr=self._log("etcd"),
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + _START_TIMEOUT
        while True:
            if self._etcd.poll() is not None:
                code = self._etcd.returncode
                raise DevHubError(f"etcd exited with {code}:\n{self._tail('etcd')}")
            try:
                with urllib.request.urlopen(f"{self.etcd_url}/health", timeout=2) as answer:
                    if json.loads(answer.read()).get("health") == "true":
                        return
            except (OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                raise DevHubError(f"etcd did not become healthy:\n{self._tail('etcd')}")
            time.sleep(0.1)

    def _write_keys(self) -> tuple[Path, Path]:
        key = self.workdir / "service-account.key"
        if not key.exists():
            done = subprocess.run(
                ["openssl", "genrsa", "-out", str(key), "2048"], capture_output=True
            )
            if done.returncode != 0:
                raise DevHubError(
                    f"openssl genrsa: {done.stderr.decode('utf-8', 'replace').strip()}"
                )
        tokens = self.workdir / "tokens.csv"
        rows = [
            ",".join(
                [
                    _csv_field(i.token),
                    _csv_field(i.user),
                    _csv_field(i.user),
                    '"' + ",".join(_csv_field(g) for g in i.groups) + '"',
                ]
            )
            for i in self._identities
        ]
        tokens.write_text("\n".join(rows) + "\n", "utf-8")
        tokens.chmod(0o600)
        return key, tokens

    def _start_apiserver(self) -> None:
        key, tokens = self._write_keys()
        certs = self.workdir / "certs"
        certs.mkdir(exist_ok=True)
        for attempt in range(3):
            self.port = _free_port()
            self._apiserver = subprocess.Popen(
                [
                    str(self.assets.kube_apiserver),
                    f"--etcd-servers={self.etcd_url}",
                    "--bind-address=127.0.0.1",
                    "--advertise-address=127.0.0.1",
                    f"--secure-port={self.port}",
                    "--insecure-port=0",
                    f"--cert-dir={certs}",
                    f"--service-account-issuer={_ISSUER}",
                    f"--service-account-key-file={key}",
                    f"--service-account-signing-key-file={key}",
                    "--service-cluster-ip-range=10.0.0.0/24",
                    f"--token-auth-file={tokens}",
                    "--authorization-mode=RBAC",
                    "--allow-privileged=true",
                    "--v=0",
                ],
                stdout=subprocess.DEVNULL,
                stderr=self._log("kube-apiserver"),
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            if self._wait_ready():
                return
            if "address already in use" not in self._tail("kube-apiserver", 40) or attempt == 2:
                break
        code = self._apiserver.poll() if self._apiserver else None
        raise DevHubError(
            f"kube-apiserver did not become ready (exit code {code}):\n"
            f"{self._tail('kube-apiserver')}"
        )

    def _wait_ready(self) -> bool:
        assert self._apiserver is not None
        deadline = time.monotonic() + _START_TIMEOUT
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the certificate is being generated right now
        request = urllib.request.Request(
            f"{self.host}/readyz", headers={"Authorization": f"Bearer {self.admin_token}"}
        )
        while time.monotonic() < deadline:
            if self._apiserver.poll() is not None:
                return False
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(request, timeout=2, context=context) as answer,
            ):
                if answer.status == 200:
                    return True
            time.sleep(0.2)
        self._apiserver.kill()
        self._apiserver.wait()
        return False

    # -- clients ---------------------------------------------------------------------------

    def kubeconfig(
        self, path: str | os.PathLike[str], *, user: str = ADMIN_USER, token: str | None = None
    ) -> Path:
        """Write a kubeconfig for ``user`` (a static identity) or for a bearer ``token``."""
        bearer = token if token is not None else self.tokens[user]
        ca = base64.b64encode(self.ca_file.read_bytes()).decode("ascii")
        config: Mapping[str, Any] = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "devhub",
                    "cluster": {"server": self.host, "certificate-authority-data": ca},
                }
            ],
            "users": [{"name": user, "user": {"token": bearer}}],
            "contexts": [{"name": "devhub", "context": {"cluster": "devhub", "user": user}}],
            "current-context": "devhub",
        }
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(config, indent=2) + "\n", "utf-8")
        out.chmod(0o600)
        return out

    def api_client(self, *, user: str = ADMIN_USER, token: str | None = None) -> Any:
        """A ``kubernetes.client.ApiClient`` authenticated as ``user`` or by ``token``."""
        from kubernetes import client as k8s

        configuration = k8s.Configuration()
        configuration.host = self.host
        configuration.ssl_ca_cert = str(self.ca_file)
        configuration.api_key = {"authorization": token or self.tokens[user]}
        configuration.api_key_prefix = {"authorization": "Bearer"}
        return k8s.ApiClient(configuration)

    def logs(self) -> Iterator[Path]:
        """The log files, for a test that failed."""
        yield from sorted(self.workdir.glob("*.log"))
