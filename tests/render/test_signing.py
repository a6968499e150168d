"""The reconcile CronJob: the signing key's Secret mounted owner-read only, and a deadline."""

from __future__ import annotations

from pathlib import Path

import yaml

from fl_gitops.blueprint import load_blueprint
from fl_gitops.cli import main
from fl_gitops.placement import generate_inventory, inventory_list
from fl_gitops.validate import validate_tree

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "blueprints" / "digits-fedavg.yaml"
EXP = "experiments/digits-fedavg"
NOW = "2026-11-28T00:00:00Z"


def _render_cronjob(tmp_path: Path, text: str) -> dict:
    tmp_path.mkdir(parents=True, exist_ok=True)
    blueprint = tmp_path / "blueprint.yaml"
    blueprint.write_text(text)
    clusters = generate_inventory(5, spec=load_blueprint(blueprint).placement, seed=1)
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(yaml.safe_dump(inventory_list(clusters)))
    out = tmp_path / "out"
    argv = ["render", str(blueprint), "--inventory", str(inventory), "--out", str(out)]
    assert main([*argv, "--now", NOW, "--allow-empty"]) == 0
    assert validate_tree(out) == []
    return yaml.safe_load((out / EXP / "hub/reconcile-cronjob.yaml").read_text())


def test_the_signing_secret_is_mounted_read_only_by_its_owner_and_named_to_the_pass(
    tmp_path: Path,
) -> None:
    text = REFERENCE.read_text().replace(
        "    mode: direct", "    signing:\n      secretRef: fl-signing-key\n    mode: direct"
    )
    cron = _render_cronjob(tmp_path, text)

    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (volume,) = [v for v in pod["volumes"] if v["name"] == "signing-key"]
    assert volume["secret"] == {
        "secretName": "fl-signing-key",
        "defaultMode": 0o400,
        "items": [{"key": "ssh-privatekey", "path": "ssh-privatekey", "mode": 0o400}],
    }
    container = pod["containers"][0]
    assert {
        "name": "signing-key",
        "mountPath": "/etc/fl-gitops/signing",
        "readOnly": True,
    } in container["volumeMounts"]
    assert {
        "name": "FL_GIT_SIGNING_KEY_FILE",
        "value": "/etc/fl-gitops/signing/ssh-privatekey",
    } in container["env"]
    # the key reaches the pass as a file, never as an argument
    assert not any("signing" in arg for arg in container["args"])


def test_without_signing_no_key_is_mounted(tmp_path: Path) -> None:
    cron = _render_cronjob(tmp_path, REFERENCE.read_text())

    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert [v["name"] for v in pod["volumes"]] == ["tmp"]
    assert "FL_GIT_SIGNING_KEY_FILE" not in {e["name"] for e in pod["containers"][0]["env"]}


def test_the_reconcile_job_has_the_blueprints_active_deadline(tmp_path: Path) -> None:
    default = _render_cronjob(tmp_path / "a", REFERENCE.read_text())
    text = REFERENCE.read_text().replace(
        "  store:\n", "  reconcile:\n    activeDeadlineSeconds: 600\n  store:\n"
    )
    set_ = _render_cronjob(tmp_path / "b", text)

    assert default["spec"]["concurrencyPolicy"] == "Forbid"
    assert default["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] == 1800
    assert set_["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] == 600
