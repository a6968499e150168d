"""A secret in plaintext under spec.client.env is refused, with the form that keeps it safe.

A value there is committed to Git and rendered into every cluster's ManifestWork; a name
that says it is a secret (word by word) must come from a Secret on the cluster instead.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fl_gitops.blueprint import load_blueprint
from fl_gitops.cli import main

REPO = Path(__file__).resolve().parents[2]
REFERENCE = (REPO / "blueprints" / "digits-fedavg.yaml").read_text()
ANCHOR = "  client:\n"


def _with_env(tmp_path: Path, env: str) -> tuple[Path, int]:
    """The reference blueprint with ``env`` (YAML lines) under spec.client; the line of
    the first env item."""
    assert ANCHOR in REFERENCE
    text = REFERENCE.replace(ANCHOR, ANCHOR + "    env:\n" + env, 1)
    path = tmp_path / "blueprint.yaml"
    path.write_text(text)
    first = text.splitlines().index("    env:") + 2
    return path, first


@pytest.mark.parametrize(
    ("name", "word"),
    [
        ("GITHUB_TOKEN", "TOKEN"),
        ("DB_PASSWORD", "PASSWORD"),
        ("API_KEY", "KEY"),
        ("apiKey", "KEY"),
        ("AWS_SECRET_ACCESS_KEY", "SECRET"),
        ("HF_CREDENTIALS", "CREDENTIALS"),
    ],
)
def test_a_plaintext_secret_is_refused_by_validate_located_with_the_form_to_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, word: str
) -> None:
    path, line = _with_env(tmp_path, f"      - name: {name}\n        value: hunter2-s3cr3t\n")

    assert main(["validate", str(path)]) == 2

    err = capsys.readouterr().err
    assert err == (
        f"error: {path}:{line + 1}:16: spec.client.env[0].value: {name} is named as a secret "
        f"({word}) but has a plaintext value, which would be committed to Git and rendered "
        "into every ManifestWork; keep it in a Secret on each cluster and write "
        "`valueFrom: {secretKeyRef: {name: <secret>, key: <key>}}` instead of `value`\n"
    )
    assert "hunter2" not in err


@pytest.mark.parametrize("name", ["KEYBOARD_LAYOUT", "PASSTHROUGH", "TOKENIZER", "LOG_LEVEL"])
def test_names_that_only_contain_a_secret_word_pass(tmp_path: Path, name: str) -> None:
    path, _line = _with_env(tmp_path, f"      - name: {name}\n        value: us\n")

    blueprint = load_blueprint(path)

    assert blueprint.client["env"] == [{"name": name, "value": "us"}]


def test_the_secret_key_ref_form_loads_and_renders_into_the_job(tmp_path: Path) -> None:
    path, _line = _with_env(
        tmp_path,
        "      - name: GITHUB_TOKEN\n"
        "        valueFrom: {secretKeyRef: {name: fl-hub-token, key: token}}\n",
    )

    blueprint = load_blueprint(path)

    ref = {"secretKeyRef": {"name": "fl-hub-token", "key": "token"}}
    assert blueprint.client["env"] == [{"name": "GITHUB_TOKEN", "valueFrom": ref}]
    from fl_gitops.placement import generate_inventory, inventory_list

    inventory = tmp_path / "inventory.yaml"
    clusters = generate_inventory(2, spec=blueprint.placement, seed=1)
    inventory.write_text(yaml.safe_dump(inventory_list(clusters)))
    out = tmp_path / "out"
    argv = ["render", str(path), "--inventory", str(inventory), "--out", str(out)]
    assert main([*argv, "--now", "2026-11-28T00:00:00Z", "--allow-empty"]) == 0
    work = yaml.safe_load(next((out / blueprint.gitops.path / "works").glob("*.yaml")).read_text())
    jobs = [m for m in work["spec"]["workload"]["manifests"] if m["kind"] == "Job"]
    env = jobs[0]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "GITHUB_TOKEN", "valueFrom": ref} in env


def test_an_env_item_needs_a_value_or_a_value_from(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, line = _with_env(tmp_path, "      - name: LOG_LEVEL\n")

    assert main(["validate", str(path)]) == 2

    assert capsys.readouterr().err == (
        f"error: {path}:{line}:9: spec.client.env[0]: set exactly one of 'value' or "
        "'valueFrom'; found neither\n"
    )
