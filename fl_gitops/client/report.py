"""The Job's half of the authenticated channel: report the update through the hub.

The model store is shared, so what a cluster writes there proves nothing about who wrote
it. What the Job writes into its round's result ConfigMap does: the ManifestWork creates
that ConfigMap empty (``CreateOnly``, so the work agent never resets it), a Role lets the
Job's ServiceAccount ``get`` and ``patch`` exactly that one object, and the agent reads
the values back into the work's status with the cluster's own credentials. So once the
update is stored, the Job patches ``.data`` with ``reports.report_data`` (its digest,
``num_examples`` and metrics) as a JSON merge patch, with the pod's in-cluster config.

The simulation runs no API server per cluster: its agent sets ``FL_RESULT_FILE`` and
reads the same data from that file, written here atomically. The Kubernetes client is
imported inside the function that patches, so a local hub and ``simulate`` never import
it. Either way a report that cannot be written fails the Job: an update without a
report would be rejected anyway, and a failed Job says so where people look.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fl_gitops.errors import FlGitopsError
from fl_gitops.reports import RESULT_CONFIGMAP_ENV, RESULT_FILE_ENV
from fl_gitops.tensors import write_atomic

__all__ = ["SERVICE_ACCOUNT_DIR", "patch_result_configmap", "write_report"]

#: Where Kubernetes mounts the pod's ServiceAccount token and the cluster's CA.
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")
_ATTEMPTS = 4
_TIMEOUT_SECONDS = 30


def write_report(
    data: Mapping[str, str],
    *,
    environ: Mapping[str, str],
    service_account_dir: str | Path = SERVICE_ACCOUNT_DIR,
    sleep: Callable[[float], None] = time.sleep,
) -> str:
    """Write ``data`` (``reports.report_data``) where the Job's environment says.

    Args:
        data: the result ConfigMap's data: three strings.
        environ: the Job's environment: ``FL_RESULT_FILE`` (the simulation) or
            ``FL_RESULT_CONFIGMAP`` (``<namespace>/<name>``, rendered into the Job).
        service_account_dir: the pod's token and CA (a test points it elsewhere).
        sleep: the pause between tries of a patch that met a transient failure.

    Returns:
        Where the report went, for the Job's summary line.

    Raises:
        FlGitopsError: neither variable is set, or the report could not be written.
    """
    path = environ.get(RESULT_FILE_ENV)
    if path:
        text = json.dumps(dict(data), sort_keys=True, separators=(",", ":")) + "\n"
        try:
            write_atomic(path, text.encode("utf-8"))
        except OSError as exc:
            raise FlGitopsError(
                f"cannot write the result file named by {RESULT_FILE_ENV}: {exc.strerror}"
            ) from exc
        return f"result file {path}"
    target = environ.get(RESULT_CONFIGMAP_ENV, "")
    if not target:
        raise FlGitopsError(
            f"no result ConfigMap to report to: {RESULT_CONFIGMAP_ENV} is not set "
            "(the rendered Job sets it to <namespace>/<name>)"
        )
    namespace, _, name = target.partition("/")
    if not _NAME.fullmatch(namespace) or not _SUBDOMAIN.fullmatch(name):
        raise FlGitopsError(f"{RESULT_CONFIGMAP_ENV}: expected <namespace>/<name> of a ConfigMap")
    patch_result_configmap(
        namespace,
        name,
        data,
        environ=environ,
        service_account_dir=service_account_dir,
        sleep=sleep,
    )
    return f"ConfigMap {namespace}/{name}"


def patch_result_configmap(
    namespace: str,
    name: str,
    data: Mapping[str, str],
    *,
    environ: Mapping[str, str],
    service_account_dir: str | Path = SERVICE_ACCOUNT_DIR,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """JSON-merge-patch ``.data`` of ConfigMap ``namespace/name`` as the pod's ServiceAccount.

    The in-cluster config is read from ``environ`` (``KUBERNETES_SERVICE_HOST`` and
    ``_PORT``) and ``service_account_dir`` (``token``, ``ca.crt``). A merge patch of
    ``.data`` alone is all the Role allows (``patch``), and it neither needs nor changes
    anything else of the object. Connection failures, 429 and 5xx are tried again a few
    times; anything else fails at once.

    Raises:
        FlGitopsError: no in-cluster config, the patch was refused, or the API server
            could not be reached (says which, with the HTTP status).
    """
    from kubernetes import client as k8s
    from kubernetes.config.config_exception import ConfigException
    from kubernetes.config.incluster_config import InClusterConfigLoader

    where = f"ConfigMap {namespace}/{name}"
    account = Path(service_account_dir)
    configuration = k8s.Configuration()
    try:
        loader = InClusterConfigLoader(  # type: ignore[no-untyped-call]
            token_filename=str(account / "token"),
            cert_filename=str(account / "ca.crt"),
            environ=environ,
        )
        loader.load_and_set(configuration)  # type: ignore[no-untyped-call]
    except ConfigException as exc:
        raise FlGitopsError(
            f"cannot report to {where}: no in-cluster config ({exc}); the Job needs its "
            "ServiceAccount token (automountServiceAccountToken: true)"
        ) from None
    body: dict[str, Any] = {"data": dict(data)}
    with k8s.ApiClient(configuration) as api_client:
        core = k8s.CoreV1Api(api_client)
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                core.patch_namespaced_config_map(
                    name,
                    namespace,
                    body,
                    _content_type="application/merge-patch+json",
                    _request_timeout=_TIMEOUT_SECONDS,
                )
                return
            except k8s.ApiException as exc:
                status = int(exc.status or 0)
                transient = status == 429 or status >= 500
                if not transient or attempt == _ATTEMPTS:
                    raise FlGitopsError(_refused(where, status, exc.reason)) from None
            except OSError as exc:  # urllib3's connection errors are OSErrors too
                if attempt == _ATTEMPTS:
                    raise FlGitopsError(
                        f"cannot report to {where}: the API server could not be reached "
                        f"after {_ATTEMPTS} tries ({type(exc).__name__})"
                    ) from None
            except Exception as exc:
                if not type(exc).__module__.startswith("urllib3") or attempt == _ATTEMPTS:
                    raise FlGitopsError(f"cannot report to {where}: {type(exc).__name__}") from None
            sleep(min(2.0**attempt, 10.0))


def _refused(where: str, status: int, reason: object) -> str:
    text = f"cannot report to {where}: HTTP {status}"
    if isinstance(reason, str) and reason.isprintable() and len(reason) <= 60:
        text += f" {reason}"
    if status == 403:
        text += " (the Job's ServiceAccount may get and patch only its round's result ConfigMap)"
    elif status == 404:
        text += " (the ManifestWork creates it; was the Job run outside its work?)"
    return text
