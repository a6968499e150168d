"""Find the strict schema for an apiVersion and kind, and build its validator once.

Three sources, tried in order:

1. the CRD schemas in ``fl_gitops/schemas/crds`` (vendored OCM and Argo CD CRDs and the
   hand-written AppProject), made strict by :func:`~fl_gitops.validate.strict.strict`, with
   ``metadata`` checked against Kubernetes' strict ObjectMeta schema;
2. hand-written schemas for files that are not Kubernetes objects (Kustomization);
3. the core Kubernetes kinds, from the strict JSON schemas the ``kubernetes-validate``
   package ships (``kubernetes-json-schema/v<version>-local-strict/<kind>-<group>-<version>.json``,
   whose ``$ref``s point into ``_definitions.json`` in the same folder).

Schemas and validators are built lazily, once per kind (``functools.cache``): building one
for the ApplicationSet CRD or resolving core ``$ref``s is the slow part, validating is not.
The caches hold immutable-by-convention data; :func:`crd_schema` hands out copies.
"""

from __future__ import annotations

import copy
import functools
import importlib.resources
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from jsonschema import Draft202012Validator, ValidationError, validators
from jsonschema.protocols import Validator
from referencing import Registry, Resource

from fl_gitops.validate.strict import strict

__all__ = [
    "core_validator",
    "crd_schema",
    "known_crds",
    "kubernetes_schema_version",
    "split_api_version",
    "validator_for",
]

_OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
_DRAFT = "https://json-schema.org/draft/2020-12/schema"
_STRICT_DIR = re.compile(r"v(\d+)\.(\d+)\.(\d+)-local-strict")
_HAND_WRITTEN = {("kustomize.config.k8s.io/v1beta1", "Kustomization"): "kustomization.json"}


def split_api_version(api_version: str) -> tuple[str, str]:
    """``"batch/v1"`` → ``("batch", "v1")``; ``"v1"`` → ``("", "v1")``."""
    group, _, version = api_version.rpartition("/")
    return group, version


def _schemas_package() -> Any:
    return importlib.resources.files("fl_gitops.schemas")


@functools.cache
def known_crds() -> Mapping[tuple[str, str], str]:
    """``(apiVersion, kind)`` → file name, for every schema in ``fl_gitops/schemas/crds``."""
    found: dict[tuple[str, str], str] = {}
    for entry in (_schemas_package() / "crds").iterdir():
        parts = entry.name.removesuffix(".json").split("_")
        if entry.name.endswith(".json") and len(parts) == 3:
            group, version, kind = parts
            found[(f"{group}/{version}", kind)] = entry.name
    return found


@functools.cache
def _kubernetes_schema_dir() -> Any:
    root = importlib.resources.files("kubernetes_validate") / "kubernetes-json-schema"
    versions = []
    for entry in root.iterdir():
        match = _STRICT_DIR.fullmatch(entry.name)
        if match:
            versions.append((tuple(int(part) for part in match.groups()), entry))
    if not versions:
        raise RuntimeError("kubernetes-validate ships no *-local-strict schemas")
    return max(versions, key=lambda item: item[0])[1]


def kubernetes_schema_version() -> str:
    """The Kubernetes version whose core schemas are used (the newest one shipped)."""
    name: str = _kubernetes_schema_dir().name
    return name.removesuffix("-local-strict").removeprefix("v")


@functools.cache
def _definitions() -> Mapping[str, Any]:
    definitions: Mapping[str, Any] = json.loads(
        (_kubernetes_schema_dir() / "_definitions.json").read_text("utf-8")
    )
    return definitions


@functools.cache
def _registry() -> Registry:
    definitions = _definitions()
    registry: Registry = Registry().with_resource(
        definitions["$id"], Resource.from_contents(definitions)
    )
    return registry


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, Mapping):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


@functools.cache
def _object_meta_defs() -> Mapping[str, Any]:
    """ObjectMeta and every definition it refers to, keyed as in ``_definitions.json``."""
    definitions = _definitions()["$defs"]
    wanted = [_OBJECT_META]
    found: dict[str, Any] = {}
    while wanted:
        name = wanted.pop()
        if name in found:
            continue
        found[name] = definitions[name]
        wanted.extend(ref.removeprefix("#/$defs/") for ref in _refs(definitions[name]))
    return dict(sorted(found.items()))


def _read_document(api_version: str, kind: str) -> Mapping[str, Any] | None:
    name = known_crds().get((api_version, kind))
    if name is not None:
        resource = _schemas_package() / "crds" / name
    elif (api_version, kind) in _HAND_WRITTEN:
        resource = _schemas_package() / _HAND_WRITTEN[(api_version, kind)]
    else:
        return None
    document: Mapping[str, Any] = json.loads(resource.read_text("utf-8"))
    return document


@functools.cache
def _strict_crd_schema(api_version: str, kind: str) -> Mapping[str, Any] | None:
    document = _read_document(api_version, kind)
    if document is None:
        return None
    schema = strict(document["openAPIV3Schema"])
    properties = schema.setdefault("properties", {})
    properties["apiVersion"] = {"type": "string", "const": api_version}
    properties["kind"] = {"type": "string", "const": kind}
    if document.get("scope") != "File":
        if "properties" not in properties.get("metadata", {}):
            properties["metadata"] = {"$ref": f"#/$defs/{_OBJECT_META}"}
            schema["$defs"] = copy.deepcopy(dict(_object_meta_defs()))
        required = list(schema.get("required", []))
        schema["required"] = [
            *(key for key in ("apiVersion", "kind", "metadata") if key not in required),
            *required,
        ]
    schema["$schema"] = _DRAFT
    return schema


def crd_schema(api_version: str, kind: str) -> dict[str, Any]:
    """The strict JSON Schema (draft 2020-12) for a vendored or hand-written kind.

    Self-contained: ``metadata`` refers to Kubernetes' ObjectMeta, copied into ``$defs``.
    Raises ``KeyError`` naming the kind when fl-gitops ships no schema for it.
    """
    schema = _strict_crd_schema(api_version, kind)
    if schema is None:
        raise KeyError(f"no schema for kind {kind!r} in apiVersion {api_version!r}")
    return copy.deepcopy(dict(schema))


@functools.cache
def core_validator(api_version: str, kind: str) -> Validator | None:
    """A validator for a core Kubernetes kind from kubernetes-validate's strict schemas."""
    group, version = split_api_version(api_version)
    if not isinstance(kind, str) or not re.fullmatch(r"[A-Za-z0-9]+", kind):
        return None
    short_group = group.split(".", 1)[0]
    file_name = (
        f"{kind.lower()}-{short_group}-{version}.json"
        if group
        else f"{kind.lower()}-{version}.json"
    )
    resource = _kubernetes_schema_dir() / file_name
    if not resource.is_file():
        return None
    schema = json.loads(resource.read_text("utf-8"))
    served = schema.get("x-kubernetes-group-version-kind", [])
    if {"group": group, "version": version, "kind": kind} not in served:
        return None
    return Draft202012Validator(schema, registry=_registry())


def _list_map_keys(
    validator: Validator, keys: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    """``x-kubernetes-list-type: map``: no two items may share their key fields."""
    if schema.get("x-kubernetes-list-type") != "map" or not isinstance(instance, list):
        return
    seen: dict[str, int] = {}
    for index, item in enumerate(instance):
        if not isinstance(item, Mapping):
            continue
        key = json.dumps([item.get(name) for name in keys], sort_keys=True, default=str)
        if key in seen:
            fields = ", ".join(keys)
            yield ValidationError(
                f"duplicate item: same {fields} as item [{seen[key]}]", path=[index]
            )
        else:
            seen[key] = index


_CrdValidator = validators.extend(
    Draft202012Validator, {"x-kubernetes-list-map-keys": _list_map_keys}
)


@functools.cache
def validator_for(api_version: str, kind: str) -> Validator | None:
    """The strict validator for this apiVersion and kind, or ``None`` when none is known."""
    if not isinstance(api_version, str) or not isinstance(kind, str):
        return None
    schema = _strict_crd_schema(api_version, kind)
    if schema is not None:
        return _CrdValidator(schema)
    return core_validator(api_version, kind)
