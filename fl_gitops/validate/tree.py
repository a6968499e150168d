"""Validate every object in a rendered tree, the files Argo CD would read.

Argo CD's directory source reads ``.yaml``, ``.yml`` and ``.json`` files, so those are
the files checked here, each document of each file. Three kinds of file are not plain
objects:

- fl-gitops's own documents (``fl-gitops.io/v1alpha1``: the ``Experiment`` blueprint,
  the ``Roster`` record) are skipped: they are never applied, and the blueprint's own
  loader validates it with better messages;
- a ``kustomization.yaml`` is checked against a small strict schema of the kustomize
  fields fl-gitops uses;
- a patch file that a Kustomization names (``patches[].path``, ``patchesStrategicMerge``,
  ``patchesJson6902[].path``) is checked as a patch: a strategic-merge patch may leave out
  required fields, a JSON 6902 patch is a list of operations.

Hidden files and folders (``.git``) are skipped. Files are visited in sorted order, so the
problems come out in the same order every time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from fl_gitops.contracts import API_VERSION
from fl_gitops.validate.objects import validate_object
from fl_gitops.validate.problem import Problem, format_path

__all__ = ["EXTENSIONS", "KUSTOMIZATION_FILES", "validate_tree"]

EXTENSIONS = frozenset({".yaml", ".yml", ".json"})
KUSTOMIZATION_FILES = frozenset({"kustomization.yaml", "kustomization.yml", "Kustomization"})
_KUSTOMIZATION = ("kustomize.config.k8s.io/v1beta1", "Kustomization")
# fl-gitops's own files (the blueprint, the roster record) are never applied to a cluster.
_OWN_API_VERSIONS = frozenset({API_VERSION})
_JSON6902 = Draft202012Validator(
    {
        "type": "array",
        "items": {
            "type": "object",
            "properties": {
                "op": {"enum": ["add", "remove", "replace", "move", "copy", "test"]},
                "path": {"type": "string"},
                "from": {"type": "string"},
                "value": True,
            },
            "required": ["op", "path"],
            "additionalProperties": False,
        },
    }
)


def _files(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    found = []
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.is_file() and (path.suffix in EXTENSIONS or path.name in KUSTOMIZATION_FILES):
            found.append(path)
    return sorted(found)


def _load(path: Path) -> tuple[list[Any], Problem | None]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        return [], Problem(str(path), "", "", "", f"cannot read the file: {error}")
    if path.suffix == ".json":
        try:
            return [json.loads(text)], None
        except json.JSONDecodeError as error:
            message = f"not valid JSON: {error.msg} (column {error.colno})"
            return [], Problem(f"{path}:{error.lineno}", "", "", "", message)
    try:
        return list(yaml.load_all(text, Loader=yaml.CSafeLoader)), None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        problem = getattr(error, "problem", None) or str(error)
        context = getattr(error, "context", None)
        column = f" (column {mark.column + 1})" if mark is not None else ""
        message = f"not valid YAML: {problem}{column}" + (f", {context}" if context else "")
        return [], Problem(where, "", "", "", message)


def _identity(document: Any) -> tuple[Any, Any]:
    if isinstance(document, Mapping):
        return document.get("apiVersion"), document.get("kind")
    return None, None


def _patch_files(kustomization_file: Path, document: Mapping[str, Any]) -> Iterator[Path]:
    base = kustomization_file.parent
    for entry in document.get("patches") or []:
        if isinstance(entry, Mapping) and isinstance(entry.get("path"), str):
            yield (base / entry["path"]).resolve()
    for entry in document.get("patchesStrategicMerge") or []:
        if isinstance(entry, str) and "\n" not in entry:
            yield (base / entry).resolve()
    for entry in document.get("patchesJson6902") or []:
        if isinstance(entry, Mapping) and isinstance(entry.get("path"), str):
            yield (base / entry["path"]).resolve()


def _validate_json6902(document: Any, where: str) -> list[Problem]:
    return [
        Problem(where, "", "", format_path(error.absolute_path), error.message)
        for error in _JSON6902.iter_errors(document)
    ]


def validate_tree(root: Path) -> list[Problem]:
    """Every problem in every object under ``root`` (a folder or one file)."""
    loaded: list[tuple[Path, list[Any], Problem | None]] = []
    patches: set[Path] = set()
    for path in _files(root):
        documents, problem = _load(path)
        loaded.append((path, documents, problem))
        for document in documents:
            if _identity(document) == _KUSTOMIZATION or (
                path.name in KUSTOMIZATION_FILES and isinstance(document, Mapping)
            ):
                patches.update(_patch_files(path, document))

    problems: list[Problem] = []
    for path, documents, problem in loaded:
        if problem is not None:
            problems.append(problem)
        is_patch = path.resolve() in patches
        for index, document in enumerate(documents):
            where = f"{path}#{index}"
            if document is None:
                continue
            if _identity(document)[0] in _OWN_API_VERSIONS:
                continue
            if path.name in KUSTOMIZATION_FILES and isinstance(document, Mapping):
                document = {"apiVersion": _KUSTOMIZATION[0], "kind": _KUSTOMIZATION[1], **document}
            if is_patch and isinstance(document, list):
                problems.extend(_validate_json6902(document, where))
            else:
                problems.extend(validate_object(document, where=where, partial=is_patch))
    return problems
