"""The rendered half of the authenticated channel: result ConfigMap, its Role, the Job's token."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from fl_gitops.cli import main
from fl_gitops.validate import validate_tree

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "blueprints" / "digits-fedavg.yaml"
EXP = "experiments/digits-fedavg"
NOW = "2026-11-28T00:00:00Z"


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("inv") / "managedclusters.yaml"
    assert main(["inventory", str(REFERENCE), "--clusters", "12", "--out", str(path)]) == 0
    return path


def _works(tmp: Path, inventory: Path, text: str | None = None) -> list[dict[str, Any]]:
    blueprint = REFERENCE
    if text is not None:
        blueprint = tmp / "blueprint.yaml"
        blueprint.write_text(text)
    out = tmp / "out"
    argv = ["render", str(blueprint), "--inventory", str(inventory), "--out", str(out)]
    assert main([*argv, "--now", NOW]) == 0
    assert validate_tree(out) == []
    paths = sorted((out / EXP / "works").glob("*.yaml"))
    assert paths
    return [yaml.safe_load(p.read_text()) for p in paths]


def _by_kind(work: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for manifest in work["spec"]["workload"]["manifests"]:
        out.setdefault(manifest["kind"], []).append(manifest)
    return out


def test_the_role_allows_exactly_get_and_patch_on_the_rounds_result_configmap(inventory, tmp_path):
    for work in _works(tmp_path, inventory):
        kinds = _by_kind(work)
        job = kinds["Job"][0]
        result = f"{job['metadata']['name']}-result"
        (config_map,) = [c for c in kinds["ConfigMap"] if c["metadata"]["name"] == result]
        assert "data" not in config_map  # created empty: the Job fills it
        (role,) = kinds["Role"]
        assert role["rules"] == [
            {
                "apiGroups": [""],
                "resources": ["configmaps"],
                "resourceNames": [result],
                "verbs": ["get", "patch"],
            }
        ]
        (binding,) = kinds["RoleBinding"]
        (account,) = kinds["ServiceAccount"]
        namespace = job["metadata"]["namespace"]
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": role["metadata"]["name"],
        }
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": namespace}
        ]
        pod = job["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == account["metadata"]["name"]
        assert pod["automountServiceAccountToken"] is True
        env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
        assert env["FL_RESULT_CONFIGMAP"] == f"{namespace}/{result}"


def test_the_result_configmap_is_created_once_and_read_back_by_feedback_rules(inventory, tmp_path):
    for work in _works(tmp_path, inventory):
        job = _by_kind(work)["Job"][0]
        result = f"{job['metadata']['name']}-result"
        (config,) = [
            c
            for c in work["spec"]["manifestConfigs"]
            if c["resourceIdentifier"]["resource"] == "configmaps"
            and c["resourceIdentifier"]["name"] == result
        ]
        assert config["updateStrategy"] == {"type": "CreateOnly"}
        assert config["feedbackRules"] == [
            {
                "type": "JSONPaths",
                "jsonPaths": [
                    {"name": "digest", "path": ".data.digest"},
                    {"name": "numExamples", "path": ".data.numExamples"},
                    {"name": "metrics", "path": ".data.metrics"},
                ],
            }
        ]


def test_a_named_service_account_is_bound_instead_of_rendering_one(inventory, tmp_path):
    text = REFERENCE.read_text().replace(
        "  client:\n", "  client:\n    serviceAccountName: team-trainer\n", 1
    )
    for work in _works(tmp_path, inventory, text):
        kinds = _by_kind(work)
        assert "ServiceAccount" not in kinds
        assert not [
            c
            for c in work["spec"]["manifestConfigs"]
            if c["resourceIdentifier"]["resource"] == "serviceaccounts"
        ]
        (binding,) = kinds["RoleBinding"]
        assert [s["name"] for s in binding["subjects"]] == ["team-trainer"]
        pod = kinds["Job"][0]["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == "team-trainer"
        assert pod["automountServiceAccountToken"] is True
