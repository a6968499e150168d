"""validate_tree(): every document of every .yaml/.yml/.json file in a rendered tree."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from fl_gitops.validate import validate_tree

from .conftest import VALID

BLUEPRINT = """\
apiVersion: fl-gitops.io/v1alpha1
kind: Experiment
metadata: {name: digits-fedavg}
spec: {whatever: the blueprint loader checks this}
"""


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_the_sample_tree_has_no_problems(tmp_path):
    shutil.copytree(VALID, tmp_path / "tree")
    assert validate_tree(tmp_path / "tree") == []


def test_problems_name_file_document_kind_and_field(tmp_path):
    _write(
        tmp_path,
        {
            "a/rbac.yaml": (VALID / "serviceaccount.yaml").read_text()
            + "---\n"
            + (VALID / "role.yaml").read_text().replace("verbs:", "verb:"),
            "b/work.yml": (VALID / "manifestwork.yaml")
            .read_text()
            .replace("backoffLimit: 0", "backoffLimit: none"),
            "c/state.json": json.dumps(
                {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "Bad_Name"}}
            ),
            "blueprint.yaml": BLUEPRINT,
            "notes.txt": "not: [valid",
        },
    )
    problems = [str(problem) for problem in validate_tree(tmp_path)]
    assert problems == [
        f"{tmp_path}/a/rbac.yaml#1: Role/fl-digits-fedavg-reconcile: rules[0].verbs: "
        "required field is missing",
        f"{tmp_path}/a/rbac.yaml#1: Role/fl-digits-fedavg-reconcile: rules[0].verb: "
        'unknown field; did you mean "verbs"?',
        f"{tmp_path}/b/work.yml#0: ManifestWork/fl-digits-fedavg: "
        'spec.workload.manifests[1].spec.backoffLimit: expected integer, got string "none"',
        f"{tmp_path}/c/state.json#0: ConfigMap/Bad_Name: metadata.name: "
        '"Bad_Name" is not a DNS-1123 subdomain: use lower-case letters, digits, '
        "'-' and '.', each dot-separated part starting and ending with a letter or digit",
    ]


def test_a_yaml_syntax_error_names_file_and_line(tmp_path):
    _write(tmp_path, {"broken.yaml": "apiVersion: v1\nkind: ConfigMap\ndata: {a: [b}\n"})
    problems = validate_tree(tmp_path)
    assert [problem.where for problem in problems] == [f"{tmp_path}/broken.yaml:3"]
    assert problems[0].message.startswith("not valid YAML: ")


def test_a_json_syntax_error_names_file_and_line(tmp_path):
    _write(tmp_path, {"x.json": '{\n  "apiVersion": "v1",\n  "kind": }\n'})
    problems = validate_tree(tmp_path)
    assert [str(problem) for problem in problems] == [
        f"{tmp_path}/x.json:3: not valid JSON: Expecting value (column 11)"
    ]


def test_empty_documents_and_hidden_folders_are_skipped(tmp_path):
    _write(
        tmp_path,
        {
            "empty.yaml": "---\n---\n",
            ".git/config.yaml": "kind: Anything\n",
            "sa.yaml": "---\n" + (VALID / "serviceaccount.yaml").read_text() + "---\n",
        },
    )
    assert validate_tree(tmp_path) == []


def test_an_unknown_kind_in_the_tree_is_reported(tmp_path):
    _write(tmp_path, {"x.yaml": "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n"})
    assert [str(problem) for problem in validate_tree(tmp_path)] == [
        f'{tmp_path}/x.yaml#0: Widget/w: unknown kind: no schema for kind "Widget" in '
        'apiVersion "example.com/v1"'
    ]


def test_a_kustomization_is_checked_with_its_own_schema(tmp_path):
    _write(
        tmp_path,
        {"kustomization.yaml": "resources: [a.yaml]\nnamespace: fl-gitops\npatchez: []\n"},
    )
    assert [str(problem) for problem in validate_tree(tmp_path)] == [
        f"{tmp_path}/kustomization.yaml#0: Kustomization/?: patchez: "
        'unknown field; did you mean "patches"?'
    ]


def test_patch_files_named_by_a_kustomization_are_checked_as_patches(tmp_path):
    _write(
        tmp_path,
        {
            "kustomization.yaml": (
                "resources: [sa.yaml]\n"
                "patches:\n"
                "  - path: patches/cm.yaml\n"
                "    target: {kind: RoleBinding}\n"
                "  - path: patches/ops.yaml\n"
                "    target: {kind: ConfigMap, name: argocd-cm}\n"
            ),
            "sa.yaml": (VALID / "serviceaccount.yaml").read_text(),
            # A strategic-merge patch may leave required fields out, not add unknown ones.
            "patches/cm.yaml": (
                "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\n"
                "subjects: [{name: other}]\n"
            ),
            "patches/ops.yaml": (
                "- {op: add, path: /data/x, value: 'y'}\n- {op: upsert, path: /data/z}\n"
            ),
        },
    )
    assert [str(problem) for problem in validate_tree(tmp_path)] == [
        f"{tmp_path}/patches/ops.yaml#0: [1].op: 'upsert' is not one of "
        "['add', 'remove', 'replace', 'move', 'copy', 'test']"
    ]


def test_a_single_file_can_be_validated(tmp_path):
    _write(tmp_path, {"cm.yaml": (VALID / "configmap.yaml").read_text()})
    assert validate_tree(tmp_path / "cm.yaml") == []
