"""Validate one Kubernetes object strictly: its schema, then the rules schemas leave out.

The object's apiVersion and kind choose the schema (see ``catalog``); a kind with no
schema is a problem, never a silent pass. A ManifestWork's embedded manifests are
validated as objects in their own right, and their problems are reported on the
ManifestWork with paths such as ``spec.workload.manifests[1].spec.template.spec...``;
their total size is held against OCM's limit (``size``), which no schema states.

jsonschema's messages are rewritten into short ones that name the field: an unknown
field is reported at its own path (with a near spelling when there is one), a missing
required field likewise.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from jsonschema import ValidationError

from fl_gitops.validate.catalog import split_api_version, validator_for
from fl_gitops.validate.meta import Finding, Path, check_names
from fl_gitops.validate.problem import Problem, format_path
from fl_gitops.validate.size import MANIFEST_LIMIT, manifests_size, size_message

__all__ = ["EMBEDDED_MANIFESTS", "findings", "validate_object"]

#: Where each kind embeds whole objects that must validate as objects themselves.
EMBEDDED_MANIFESTS: Mapping[tuple[str, str], Path] = {
    ("work.open-cluster-management.io", "ManifestWork"): ("spec", "workload", "manifests"),
    ("work.open-cluster-management.io", "ManifestWorkReplicaSet"): (
        "spec",
        "manifestWorkTemplate",
        "workload",
        "manifests",
    ),
}

_MISSING = "required field is missing"
_JSON_TYPES = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
    type(None): "null",
}


def _type_name(value: Any) -> str:
    for python_type, name in _JSON_TYPES.items():
        if type(value) is python_type:
            return name
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _show(value: Any, limit: int = 60) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _types(expected: Any) -> str:
    names = [expected] if isinstance(expected, str) else list(expected)
    shown = [name for name in names if name != "null"] or names
    return " or ".join(shown)


def _unknown_fields(error: ValidationError) -> Iterator[Finding]:
    allowed = list(error.schema.get("properties", {})) if isinstance(error.schema, dict) else []
    instance = error.instance if isinstance(error.instance, Mapping) else {}
    path = tuple(error.absolute_path)
    for key in instance:
        if key in allowed:
            continue
        close = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.75)
        if close:
            message = f'unknown field; did you mean "{close[0]}"?'
        elif not allowed:
            message = "unknown field: this object takes no fields"
        elif len(allowed) <= 12:
            message = "unknown field; allowed: " + ", ".join(sorted(allowed))
        else:
            message = "unknown field"
        yield (*path, key), message


def _schema_findings(error: ValidationError) -> Iterator[Finding]:
    path: Path = tuple(error.absolute_path)
    validator, expected, instance = error.validator, error.validator_value, error.instance
    if validator == "additionalProperties" and expected is False:
        yield from _unknown_fields(error)
    elif validator == "required":
        present = instance if isinstance(instance, Mapping) else {}
        for key in expected:
            if key not in present:
                yield (*path, key), _MISSING
    elif validator == "type":
        yield path, f"expected {_types(expected)}, got {_type_name(instance)} {_show(instance)}"
    elif validator == "enum":
        options = ", ".join(_show(option) for option in expected if option is not None)
        yield path, f"must be one of {options} (got {_show(instance)})"
    elif validator == "const":
        yield path, f"must be {_show(expected)} (got {_show(instance)})"
    elif validator == "pattern":
        yield path, f"{_show(instance)} does not match the pattern {expected}"
    elif validator in ("maxLength", "minLength"):
        bound = "at most" if validator == "maxLength" else "at least"
        yield path, f"must be {bound} {expected} characters long (got {len(instance)})"
    elif validator in ("maxItems", "minItems"):
        bound = "at most" if validator == "maxItems" else "at least"
        yield path, f"must have {bound} {expected} items (got {len(instance)})"
    elif validator in ("maximum", "minimum"):
        bound = "at most" if validator == "maximum" else "at least"
        yield path, f"must be {bound} {expected} (got {_show(instance)})"
    elif validator == "uniqueItems":
        yield path, "items must be unique (a set-type list)"
    elif validator in ("oneOf", "anyOf") and all(
        isinstance(branch, Mapping) and set(branch) == {"type"} for branch in expected
    ):
        kinds = " or ".join(_types(branch["type"]) for branch in expected)
        yield path, f"expected {kinds}, got {_type_name(instance)} {_show(instance)}"
    else:
        yield path, error.message


def findings(obj: Any, *, partial: bool = False) -> list[Finding]:
    """Every ``(path, message)`` wrong with one object; ``partial`` allows missing fields.

    ``partial`` is for strategic-merge patch files, which name only the fields they set.
    """
    if not isinstance(obj, Mapping):
        return [((), f"expected a Kubernetes object (a mapping), got {_type_name(obj)}")]
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    missing: list[tuple[tuple[str | int, ...], str]] = [
        ((key,), "required field is missing")
        for key, value in (("apiVersion", api_version), ("kind", kind))
        if value is None
    ]
    if missing:
        return missing
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return [((), f"apiVersion and kind must be strings (got {_show([api_version, kind])})")]
    if (api_version, kind) == ("v1", "List"):
        return _list_findings(obj, partial=partial)
    validator = validator_for(api_version, kind)
    if validator is None:
        return [((), f'unknown kind: no schema for kind "{kind}" in apiVersion "{api_version}"')]

    found: list[Finding] = []
    for error in validator.iter_errors(obj):
        if partial and error.validator == "required":
            continue
        found.extend(_schema_findings(error))
    group, _ = split_api_version(api_version)
    if kind != "Kustomization":
        found.extend(
            finding
            for finding in check_names(group, kind, obj)
            if not (partial and finding[1] == _MISSING)
        )
    embedded = EMBEDDED_MANIFESTS.get((group, kind))
    if embedded is not None:
        found.extend(_embedded_findings(obj, embedded, partial=partial))
        found.extend(_size_findings(obj, kind, embedded))
    return list(dict.fromkeys(found))


def _size_findings(obj: Mapping[str, Any], kind: str, where: Path) -> list[Finding]:
    node: Any = obj
    for key in where:
        node = node.get(key) if isinstance(node, Mapping) else None
    if not isinstance(node, list):
        return []
    size = manifests_size(node)
    if size <= MANIFEST_LIMIT:
        return []
    metadata = obj.get("metadata")
    namespace = metadata.get("namespace") if isinstance(metadata, Mapping) else None
    cluster = namespace if kind == "ManifestWork" and isinstance(namespace, str) else None
    return [(where, size_message(size, kind=kind, cluster=cluster))]


def _list_findings(obj: Mapping[str, Any], *, partial: bool) -> list[Finding]:
    items = obj.get("items")
    if not isinstance(items, list):
        return [(("items",), f"expected array, got {_type_name(items)} {_show(items)}")]
    found: list[Finding] = []
    for index, item in enumerate(items):
        found.extend(
            (("items", index, *path), message) for path, message in findings(item, partial=partial)
        )
    return found


def _embedded_findings(obj: Mapping[str, Any], where: Path, *, partial: bool) -> list[Finding]:
    node: Any = obj
    for key in where:
        node = node.get(key) if isinstance(node, Mapping) else None
    if not isinstance(node, list):
        return []
    found: list[Finding] = []
    for index, manifest in enumerate(node):
        found.extend(
            ((*where, index, *path), message)
            for path, message in findings(manifest, partial=partial)
        )
    return found


def _identity(obj: Any) -> tuple[str, str]:
    if not isinstance(obj, Mapping):
        return "", ""
    kind = obj.get("kind")
    metadata = obj.get("metadata")
    name = metadata.get("name") if isinstance(metadata, Mapping) else None
    return (
        kind if isinstance(kind, str) else "",
        name if isinstance(name, str) else "",
    )


def validate_object(
    obj: Mapping[str, Any] | Sequence[Any] | Any, *, where: str = "", partial: bool = False
) -> list[Problem]:
    """Validate one object strictly; ``[]`` means it would be accepted as written.

    ``where`` names its origin (``file#doc``) in each Problem. ``partial`` skips
    missing-required-field problems, for strategic-merge patches.
    """
    kind, name = _identity(obj)
    return [
        Problem(where=where, kind=kind, name=name, path=format_path(path), message=message)
        for path, message in findings(obj, partial=partial)
    ]
