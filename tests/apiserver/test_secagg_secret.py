"""A secure experiment's cluster Secret, against a real API server's RBAC.

The rendered work's Secret (created empty), ServiceAccount, Role and RoleBinding are
applied into a fresh namespace as the work agent would; with the ServiceAccount's token
(TokenRequest API, mounted where a pod's would be) the client's ``keys`` phase keeps the
cluster's share key in that Secret and reports only its public half. The same token can
read no other Secret. And a secure simulation through the real API server
(``--hub kubernetes``) makes the models the in-memory hub makes.
"""

from __future__ import annotations

import base64
import copy
import json
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from fl_gitops.cli import main
from fl_gitops.client.secure import SecureSection, run_secure_phase
from fl_gitops.devhub import ApiServer
from fl_gitops.secagg._crypto import public_bytes

from .hubside import apply_objects, service_account_token

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "blueprints" / "digits-fedavg.yaml"
SECURE = "    secureAggregation: {threshold: 3, neighbours: 3, clipRange: 1.0}\n"


def _manifests(tmp: Path) -> list[dict[str, Any]]:
    blueprint = tmp / "secure.yaml"
    text = REFERENCE.read_text().replace("    options: {}\n", "    options: {}\n" + SECURE)
    text = text.replace("minClusters: 8 ", "minClusters: 3 ")
    blueprint.write_text(text.replace("numberOfClusters: 10", "numberOfClusters: 4"))
    inventory = tmp / "inventory.yaml"
    assert main(["inventory", str(blueprint), "--clusters", "4", "--out", str(inventory)]) == 0
    out = tmp / "out"
    argv = ["render", str(blueprint), "--inventory", str(inventory), "--out", str(out)]
    assert main([*argv, "--now", "2026-11-28T00:00:00Z", "--allow-empty"]) == 0
    path = sorted((out / "experiments/digits-fedavg/works").glob("*.yaml"))[0]
    return list(yaml.safe_load(path.read_text())["spec"]["workload"]["manifests"])


def test_the_keys_phase_keeps_the_share_key_in_the_clusters_own_secret(
    apiserver: ApiServer, tmp_path: Path
) -> None:
    from kubernetes import client as k8s

    namespace = f"t-{uuid.uuid4().hex[:10]}"
    manifests = []
    for manifest in _manifests(tmp_path):
        if manifest["kind"] in ("Namespace", "Job"):
            continue
        manifest = copy.deepcopy(manifest)
        manifest["metadata"]["namespace"] = namespace
        for subject in manifest.get("subjects", []):
            subject["namespace"] = namespace
        manifests.append(manifest)
    (secret,) = [m for m in manifests if m["kind"] == "Secret"]
    name = secret["metadata"]["name"]
    account = next(m for m in manifests if m["kind"] == "ServiceAccount")["metadata"]["name"]
    pod = tmp_path / "serviceaccount"
    pod.mkdir()
    with apiserver.api_client() as admin:
        core = k8s.CoreV1Api(admin)
        core.create_namespace({"metadata": {"name": namespace}})
        try:
            apply_objects(admin, manifests)
            core.create_namespaced_secret(
                namespace, {"metadata": {"name": "other"}, "stringData": {"x": "y"}}
            )
            assert core.read_namespaced_secret(name, namespace).data is None  # created empty
            (pod / "token").write_text(service_account_token(admin, namespace, account))
            (pod / "ca.crt").write_bytes(apiserver.ca_file.read_bytes())
            url = urlsplit(apiserver.host)
            environ = {
                "KUBERNETES_SERVICE_HOST": str(url.hostname),
                "KUBERNETES_SERVICE_PORT": str(url.port),
                "FL_SECAGG_SECRET": f"{namespace}/{name}",
            }
            section = SecureSection.parse(
                {
                    "phase": "keys",
                    "round": 1,
                    "attempt": 1,
                    "params": {"threshold": 3, "neighbours": 3, "clipRange": 1.0, "bits": 64},
                    "maxWeight": 1000,
                    "shareKeys": {},
                    "context": [],
                },
                source="round.json",
            )
            report = run_secure_phase(
                "digits-fedavg", "cluster-001", section, None, environ, service_account_dir=pod
            )
            held = json.loads(
                base64.b64decode(core.read_namespaced_secret(name, namespace).data["secagg.json"])
            )
            assert report.share_key == public_bytes(bytes.fromhex(held["shareKey"])).hex()
            # A second run (a Job run again) keeps the key it made.
            again = run_secure_phase(
                "digits-fedavg", "cluster-001", section, None, environ, service_account_dir=pod
            )
            assert again.share_key == report.share_key
            # The Job's token reads its own Secret and no other.
            configuration = k8s.Configuration()
            configuration.host = apiserver.host
            configuration.ssl_ca_cert = str(pod / "ca.crt")
            configuration.api_key = {"authorization": (pod / "token").read_text()}
            configuration.api_key_prefix = {"authorization": "Bearer"}
            with k8s.ApiClient(configuration) as as_job:
                job = k8s.CoreV1Api(as_job)
                assert job.read_namespaced_secret(name, namespace).data is not None
                with pytest.raises(k8s.ApiException) as caught:
                    job.read_namespaced_secret("other", namespace)
                assert caught.value.status == 403
        finally:
            core.delete_namespace(namespace)


def test_a_secure_simulation_through_a_real_api_server_reaches_the_in_memory_model(
    apiserver: ApiServer, tmp_path: Path
) -> None:
    # The masks are fresh random keys in each run, but the unmasked sum is exact integers:
    # both runs make the same models, through the in-memory hub and a real API server.
    text = REFERENCE.read_text().replace("    options: {}\n", "    options: {}\n" + SECURE)
    text = text.replace("minClusters: 8 ", "minClusters: 3 ").replace("epochs: 5", "epochs: 1")
    text = text.replace("numberOfClusters: 10", "numberOfClusters: 4")
    text = text.replace("name: digits-fedavg ", "name: digits-secure ")
    blueprint = tmp_path / "secure.yaml"
    blueprint.write_text(text.replace("experiments/digits-fedavg", "experiments/digits-secure"))
    args = ["simulate", str(blueprint), "--clusters", "4", "--rounds", "2", "--jobs", "2"]
    assert main([*args, "--workdir", str(tmp_path / "local"), "--no-plot"]) == 0
    kubeconfig = apiserver.kubeconfig(tmp_path / "kubeconfig")
    kube = ["--hub", "kubernetes", "--kubeconfig", str(kubeconfig), "--no-plot"]
    assert main([*args, "--workdir", str(tmp_path / "kube"), *kube]) == 0
    local = json.loads((tmp_path / "local" / "report.json").read_text())
    real = json.loads((tmp_path / "kube" / "report.json").read_text())
    assert real["phase"] == local["phase"] == "Completed"
    assert real["final_model"] == local["final_model"]
