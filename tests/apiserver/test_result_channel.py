"""The Job's report through its result ConfigMap, against a real API server's RBAC.

The rendered work's result ConfigMap, ServiceAccount, Role and RoleBinding are applied
into a fresh namespace (as the work agent would on the cluster); the ServiceAccount's
token comes from the TokenRequest API and is mounted where a pod's would be. With it the
client's reporter (the in-cluster config, a JSON merge patch of ``.data``) fills that one
ConfigMap, and the authorizer refuses everything else: any other ConfigMap, read or
written, and creating one.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from fl_gitops.cli import main
from fl_gitops.client.report import patch_result_configmap, write_report
from fl_gitops.devhub import ApiServer
from fl_gitops.errors import FlGitopsError
from fl_gitops.reports import parse_report, report_data

from .hubside import apply_objects, service_account_token

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "blueprints" / "digits-fedavg.yaml"
DIGEST = "sha256:" + "5e" * 32


def _rendered_manifests(tmp: Path) -> list[dict[str, Any]]:
    inventory = tmp / "inventory.yaml"
    assert main(["inventory", str(REFERENCE), "--clusters", "4", "--out", str(inventory)]) == 0
    out = tmp / "out"
    argv = ["render", str(REFERENCE), "--inventory", str(inventory), "--out", str(out)]
    assert main([*argv, "--now", "2026-11-28T00:00:00Z", "--allow-empty"]) == 0
    path = sorted((out / "experiments/digits-fedavg/works").glob("*.yaml"))[0]
    return list(yaml.safe_load(path.read_text())["spec"]["workload"]["manifests"])


class Channel:
    def __init__(self, namespace: str, manifests: list[dict[str, Any]], pod: Path) -> None:
        self.namespace = namespace
        self.manifests = manifests
        self.pod = pod  # the pod's ServiceAccount mount and environment
        self.job = next(m for m in manifests if m["kind"] == "Job")
        self.result = f"{self.job['metadata']['name']}-result"
        self.round_config = self.job["metadata"]["name"]
        self.account = next(m for m in manifests if m["kind"] == "ServiceAccount")
        self.environ: dict[str, str] = {}


@pytest.fixture(scope="module")
def channel(apiserver: ApiServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Channel]:
    import uuid

    from kubernetes import client as k8s

    tmp = tmp_path_factory.mktemp("channel")
    namespace = f"t-{uuid.uuid4().hex[:10]}"
    manifests = []
    for manifest in _rendered_manifests(tmp):
        if manifest["kind"] == "Namespace":
            continue
        manifest = copy.deepcopy(manifest)
        manifest["metadata"]["namespace"] = namespace
        for subject in manifest.get("subjects", []):
            subject["namespace"] = namespace
        manifests.append(manifest)
    pod = tmp / "serviceaccount"
    pod.mkdir()
    with apiserver.api_client() as admin:
        k8s.CoreV1Api(admin).create_namespace({"metadata": {"name": namespace}})
        # what the agent applies, but the Job (its pod template is no test of RBAC)
        apply_objects(admin, [m for m in manifests if m["kind"] != "Job"])
        world = Channel(namespace, manifests, pod)
        token = service_account_token(admin, namespace, world.account["metadata"]["name"])
        (pod / "token").write_text(token)
        (pod / "ca.crt").write_bytes(apiserver.ca_file.read_bytes())
        url = urlsplit(apiserver.host)
        world.environ = {
            "KUBERNETES_SERVICE_HOST": str(url.hostname),
            "KUBERNETES_SERVICE_PORT": str(url.port),
            "FL_RESULT_CONFIGMAP": f"{namespace}/{world.result}",
        }
        try:
            yield world
        finally:
            k8s.CoreV1Api(admin).delete_namespace(namespace)


def _data(admin: Any, namespace: str, name: str) -> dict[str, str] | None:
    from kubernetes import client as k8s

    return k8s.CoreV1Api(admin).read_namespaced_config_map(name, namespace).data


def test_the_jobs_token_reports_its_update_into_the_result_configmap(channel, admin):
    assert _data(admin, channel.namespace, channel.result) is None  # created empty
    data = report_data(DIGEST, 321, {"train_accuracy": 0.9})
    where = write_report(
        data, environ=channel.environ, service_account_dir=channel.pod, sleep=lambda s: None
    )
    assert where == f"ConfigMap {channel.namespace}/{channel.result}"
    stored = _data(admin, channel.namespace, channel.result)
    assert stored == data
    assert parse_report(stored).num_examples == 321
    # a second report (a retried pod) replaces the values, nothing else
    again = report_data(DIGEST, 322, {})
    write_report(
        again, environ=channel.environ, service_account_dir=channel.pod, sleep=lambda s: None
    )
    assert _data(admin, channel.namespace, channel.result) == again


def test_the_same_token_cannot_patch_another_configmap(channel, admin):
    before = _data(admin, channel.namespace, channel.round_config)
    with pytest.raises(FlGitopsError) as caught:
        patch_result_configmap(
            channel.namespace,
            channel.round_config,
            report_data(DIGEST, 1, {}),
            environ=channel.environ,
            service_account_dir=channel.pod,
            sleep=lambda s: None,
        )
    assert str(caught.value) == (
        f"cannot report to ConfigMap {channel.namespace}/{channel.round_config}: HTTP 403 "
        "Forbidden (the Job's ServiceAccount may get and patch only its round's result "
        "ConfigMap)"
    )
    assert _data(admin, channel.namespace, channel.round_config) == before


def test_the_same_token_can_read_its_result_and_nothing_else(channel, apiserver):
    from kubernetes import client as k8s

    token = (channel.pod / "token").read_text()
    with apiserver.api_client(token=token) as client:
        core = k8s.CoreV1Api(client)
        core.read_namespaced_config_map(channel.result, channel.namespace)  # allowed
        refused = {
            "read another ConfigMap": lambda: core.read_namespaced_config_map(
                channel.round_config, channel.namespace
            ),
            "list ConfigMaps": lambda: core.list_namespaced_config_map(channel.namespace),
            "create a ConfigMap": lambda: core.create_namespaced_config_map(
                channel.namespace, {"metadata": {"name": "intruder"}, "data": {"a": "b"}}
            ),
            "delete its result ConfigMap": lambda: core.delete_namespaced_config_map(
                channel.result, channel.namespace
            ),
            "update (not patch) its result ConfigMap": lambda: core.replace_namespaced_config_map(
                channel.result,
                channel.namespace,
                {"metadata": {"name": channel.result}, "data": {"digest": DIGEST}},
            ),
            "patch its Role": lambda: k8s.RbacAuthorizationV1Api(client).patch_namespaced_role(
                "fl-digits-fedavg-report", channel.namespace, {"rules": []}
            ),
        }
        statuses = {}
        for what, call in refused.items():
            with pytest.raises(k8s.ApiException) as caught:
                call()
            statuses[what] = caught.value.status
    assert statuses == {what: 403 for what in refused}


def test_without_a_service_account_token_the_report_fails_saying_so(channel, tmp_path):
    with pytest.raises(FlGitopsError) as caught:
        write_report(
            report_data(DIGEST, 1, {}),
            environ=channel.environ,
            service_account_dir=tmp_path,
            sleep=lambda s: None,
        )
    message = str(caught.value)
    assert message.startswith(
        f"cannot report to ConfigMap {channel.namespace}/{channel.result}: no in-cluster config ("
    )
    assert message.endswith(
        "); the Job needs its ServiceAccount token (automountServiceAccountToken: true)"
    )
