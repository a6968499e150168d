"""A minimal blueprint (name, rounds, placement, image, store, repo, path) is a whole
experiment: what it leaves out takes the documented defaults, and it renders exactly as
the blueprint that spells every one of them out."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fl_gitops.blueprint import _model, blueprint_schema, load_blueprint, with_defaults
from fl_gitops.blueprint._schema import base_schema, default
from fl_gitops.cli import main
from fl_gitops.errors import BlueprintError

REPO = Path(__file__).resolve().parents[2]
MINIMAL = REPO / "blueprints" / "digits-minimal.yaml"
DOC = REPO / "docs" / "blueprint-reference.md"

# The same experiment with every default the minimal one relies on written out.
SPELLED_OUT = """\
apiVersion: fl-gitops.io/v1alpha1
kind: Experiment
metadata:
  name: digits-minimal
  namespace: fl-system
spec:
  rounds: 10
  placement:
    clusterSets: [fl-silos]
    numberOfClusters: 4
  completion:
    minClusters: 2
    timeout: 30m
    retries: 1
  strategy:
    name: fedavg
    options: {}
  client:
    image: ghcr.io/example/fl-gitops:0.1.0
    namespace: fl-gitops
    imagePullPolicy: IfNotPresent
    model:
      builtin: mlp
      args: {}
      seed: 0
    data:
      builtin: digits
      args: {}
      partition: {kind: iid, seed: 0}
    train:
      epochs: 5
      batchSize: 16
      optimizer: {name: sgd, lr: 0.05}
      seed: 0
  store:
    uri: s3://fl-models/digits-minimal
  gitops:
    repo: https://git.example.com/platform/fl-config.git
    branch: main
    path: experiments/digits-minimal
    mode: direct
"""


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def render(blueprint: Path, out: Path, inventory: Path) -> dict[str, str]:
    """The rendered tree through the CLI, without the copy of the blueprint's own bytes
    and with its digest (which differs because the bytes do) blanked."""
    assert main(["render", str(blueprint), "--inventory", str(inventory), "--out", str(out)]) == 0
    digest = load_blueprint(blueprint).digest
    return {
        path: data.decode().replace(digest, "sha256:<blueprint>")
        for path, data in _tree(out).items()
        if not path.endswith("/blueprint.yaml")
    }


def test_the_minimal_example_is_about_fifteen_lines():
    lines = [line for line in MINIMAL.read_text().splitlines() if line.strip() and line[0] != "#"]
    assert len(lines) <= 16


def test_the_minimal_blueprint_validates(capsys):
    assert main(["validate", str(MINIMAL)]) == 0
    assert capsys.readouterr().out == f"ok: {MINIMAL}: Experiment fl-system/digits-minimal\n"


def test_the_minimal_blueprint_renders_as_the_spelled_out_one(tmp_path):
    full = tmp_path / "full.yaml"
    full.write_text(SPELLED_OUT)
    inventory = tmp_path / "inventory.yaml"
    assert main(["inventory", str(MINIMAL), "--clusters", "6", "--out", str(inventory)]) == 0
    short = render(MINIMAL, tmp_path / "short", inventory)
    spelled = render(full, tmp_path / "spelled", inventory)
    assert sum(p.startswith("experiments/digits-minimal/works/") for p in short) == 4
    assert short == spelled


def test_the_loaded_values_are_the_ones_the_examples_train_with():
    bp = load_blueprint(MINIMAL)
    assert (bp.namespace, bp.gitops.branch, bp.gitops.mode) == ("fl-system", "main", "direct")
    assert (bp.completion.min_clusters, bp.completion.timeout_seconds) == (2, 1800.0)
    assert (bp.strategy.name, bp.strategy.effective_name) == ("fedavg", "fedavg")
    assert bp.client["model"] == {"builtin": "mlp", "args": {}, "seed": 0}
    assert bp.client["data"] == {
        "builtin": "digits",
        "args": {},
        "partition": {"kind": "iid", "seed": 0},
    }
    assert bp.client["train"] == {
        "epochs": 5,
        "batchSize": 16,
        "optimizer": {"name": "sgd", "lr": 0.05},
        "seed": 0,
    }


def test_a_default_quorum_above_the_placement_says_it_is_the_default(tmp_path):
    path = tmp_path / "one.yaml"
    path.write_text(MINIMAL.read_text().replace("numberOfClusters: 4", "numberOfClusters: 1"))
    with pytest.raises(BlueprintError) as info:
        load_blueprint(path)
    assert str(info.value) == (
        f"{path}:10:23: spec.placement.numberOfClusters: minClusters is 2 (the default) but "
        "placement.numberOfClusters is 1; expected minClusters <= numberOfClusters; "
        "set spec.completion.minClusters to at most 1"
    )


def test_an_entrypoints_data_gets_no_partition(tmp_path):
    path = tmp_path / "own.yaml"
    own = (
        "  client:\n    image: ghcr.io/example/fl-gitops:0.1.0\n    data:\n"
        "      entrypoint: mydata.load:clusters\n"
        "      volume: {claimName: fl-data, mountPath: /data}\n"
    )
    path.write_text(
        MINIMAL.read_text().replace("  client:\n    image: ghcr.io/example/fl-gitops:0.1.0\n", own)
    )
    data = load_blueprint(path).client["data"]
    assert "partition" not in data and data["entrypoint"] == "mydata.load:clusters"


def _defaults(node: dict[str, Any], path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """The path of every field that has a default, outside spec.placement."""
    for name, child in node.get("properties", {}).items():
        if "default" in child:
            yield (*path, name)
        if "properties" in child:
            yield from _defaults(child, (*path, name))


def _section(text: str, path: tuple[str, ...]) -> str:
    heading = f"## `{'.'.join(path)}`\n" if path else "## Top level\n"
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start : end if end != -1 else len(text)]


def test_every_default_is_in_the_reference_page():
    doc = DOC.read_text()
    paths = list(_defaults(base_schema()))
    assert len(paths) >= 30
    for *parent, name in paths:
        node = blueprint_schema()
        for key in (*parent, name):
            node = node["properties"][key]
        row = next(
            line
            for line in _section(doc, tuple(parent)).splitlines()
            if line.startswith(f"| `{name}` |")
        )
        assert f"`{json.dumps(node['default'])}`" in row, ".".join((*parent, name))


def test_the_loader_fills_every_default_of_a_section_it_holds():
    """Each field with a default, under a section the loaded document holds, holds it."""
    filled = with_defaults(load_blueprint(MINIMAL).raw)
    checked = 0
    for path in _defaults(base_schema()):
        node: Any = filled
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue  # an optional section the blueprint leaves out (dp, volume, ...)
        schema: Any = base_schema()
        for key in path:
            schema = schema["properties"][key]
        want, got = schema["default"], node.get(path[-1])
        if isinstance(want, dict):  # a section's default: what it holds, at the least
            assert {k: got.get(k) for k in want} == want, ".".join(path)
        else:
            assert got == want, ".".join(path)
        checked += 1
    assert checked >= 25


# Where each default a dataclass in blueprint/_model.py declares lives in the schema.
MODEL_DEFAULTS = {
    "Completion.retries": ("spec", "completion", "retries"),
    "Influence.median_distance_multiple": ("spec", "influence", "distance", "medianMultiple"),
    "Influence.max_num_examples": ("spec", "influence", "numExamples", "max"),
    "Influence.above_max_num_examples": ("spec", "influence", "numExamples", "above"),
    "Aggregation.shards": ("spec", "aggregation", "shards"),
    "Aggregation.active_deadline_seconds": ("spec", "aggregation", "activeDeadlineSeconds"),
    "Aggregation.backoff_limit_per_index": ("spec", "aggregation", "backoffLimitPerIndex"),
    "GitOps.mode": ("spec", "gitops", "mode"),
    "Reconcile.active_deadline_seconds": ("spec", "reconcile", "activeDeadlineSeconds"),
    "ArgoCD.namespace": ("spec", "argocd", "namespace"),
    "ArgoCD.project": ("spec", "argocd", "project"),
    "ArgoCD.server": ("spec", "argocd", "server"),
}


def test_every_default_in_the_model_is_the_schemas_and_on_the_reference_page():
    declared = {}
    for cls_name in _model.__all__:
        cls = getattr(_model, cls_name)
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING and f.default not in (None, ()):
                declared[f"{cls_name}.{f.name}"] = f.default
    assert set(declared) == set(MODEL_DEFAULTS)
    doc = DOC.read_text()
    for key, value in declared.items():
        *parent, name = MODEL_DEFAULTS[key]
        assert value == default(*MODEL_DEFAULTS[key]), key
        row = next(
            line
            for line in _section(doc, tuple(parent)).splitlines()
            if line.startswith(f"| `{name}` |")
        )
        assert f"`{json.dumps(value)}`" in row, key
