"""The schema is the one home of a blueprint's defaults: the loader fills what a blueprint
leaves out from it, and the dataclasses' own defaults are the same values."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest

from fl_gitops.blueprint import ArgoCD, Completion, GitOps, load_blueprint
from fl_gitops.blueprint._schema import default

sys.path.insert(0, str(Path(__file__).parent))
from cases import REFERENCE, variant


@pytest.fixture
def bare(tmp_path):
    """The reference without the settings that have defaults."""
    text = variant("    mode: direct\n", "").replace("      args: {hidden: 32}\n", "")
    path = tmp_path / "bare.yaml"
    path.write_text(text)
    return load_blueprint(path)


def test_what_a_blueprint_leaves_out_is_the_schemas_default(bare):
    assert bare.gitops.mode == default("spec", "gitops", "mode") == "direct"
    assert bare.completion.retries == default("spec", "completion", "retries") == 1
    assert (bare.argocd.namespace, bare.argocd.project, bare.argocd.server) == (
        default("spec", "argocd", "namespace"),
        default("spec", "argocd", "project"),
        default("spec", "argocd", "server"),
    )
    assert bare.reconcile.schedule == default("spec", "reconcile", "schedule")
    assert bare.evaluation_server is default("spec", "evaluation", "server")
    assert bare.client["namespace"] == default("spec", "client", "namespace")
    assert bare.client["imagePullPolicy"] == default("spec", "client", "imagePullPolicy")
    assert bare.client["train"]["seed"] == default("spec", "client", "train", "seed")
    assert bare.client["model"]["args"] == default("spec", "client", "model", "args")


def test_a_builtin_data_set_without_a_partition_gets_the_schemas(tmp_path):
    assert "partition:" in REFERENCE
    lines = [line for line in REFERENCE.splitlines(keepends=True) if "partition:" not in line]
    path = tmp_path / "no-partition.yaml"
    path.write_text("".join(lines))
    data = load_blueprint(path).client["data"]
    partition = ("spec", "client", "data", "partition")
    assert data["partition"] == {
        "kind": default(*partition, "kind"),
        "seed": default(*partition, "seed"),
    }


@pytest.mark.parametrize(
    ("cls", "section"),
    [(ArgoCD, "argocd"), (GitOps, "gitops"), (Completion, "completion")],
)
def test_the_dataclasses_defaults_are_the_schemas(cls, section):
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING and f.name not in ("secret_ref",):
            camel = "".join(
                part.capitalize() if i else part for i, part in enumerate(f.name.split("_"))
            )
            try:
                expected = default("spec", section, camel)
            except KeyError:
                continue
            assert f.default == expected, f"{cls.__name__}.{f.name}"


def test_a_field_without_a_default_is_a_key_error():
    with pytest.raises(KeyError):
        default("spec", "store", "uri")
