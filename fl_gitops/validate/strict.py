"""Turn a CRD's structural OpenAPI v3 schema into a strict JSON Schema.

A CRD schema read as plain JSON Schema accepts any unknown field (the API server prunes
them silently) and ignores Kubernetes' own keywords. For a rendered object an unknown
field is a typo that would vanish on apply, so the strict form closes every object:

- an object schema with ``properties`` (or with nothing at all: the API server keeps none
  of its fields) and neither ``additionalProperties`` nor
  ``x-kubernetes-preserve-unknown-fields: true`` gets ``additionalProperties: false``;
- ``x-kubernetes-int-or-string: true`` becomes ``type: [integer, string]``;
- ``nullable: true`` adds ``null`` to the type (and to an ``enum``);
- ``x-kubernetes-embedded-resource: true`` requires a string ``apiVersion`` and ``kind``
  and an object ``metadata``;
- ``x-kubernetes-list-type: set`` adds ``uniqueItems: true``. (``map`` lists keep their
  ``x-kubernetes-list-map-keys``; the validator ``catalog`` builds checks those keys.)

Sub-schemas under ``allOf``/``anyOf``/``oneOf``/``not`` only add value checks in a
structural schema, so they are not closed. The function is pure: it returns a new dict.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

__all__ = ["strict"]

_JUNCTORS = ("allOf", "anyOf", "oneOf")


def strict(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A strict JSON Schema (draft 2020-12 keywords) for a CRD ``openAPIV3Schema``."""
    return _strict(schema, in_junctor=False)


def _strict(node: Mapping[str, Any], *, in_junctor: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties" and isinstance(value, Mapping):
            out[key] = {name: _strict(sub, in_junctor=in_junctor) for name, sub in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, Mapping):
            out[key] = _strict(value, in_junctor=in_junctor)
        elif key == "not" and isinstance(value, Mapping):
            out[key] = _strict(value, in_junctor=True)
        elif key in _JUNCTORS and isinstance(value, list):
            out[key] = [_strict(sub, in_junctor=True) for sub in value]
        else:
            out[key] = copy.deepcopy(value)

    if node.get("x-kubernetes-int-or-string") is True:
        out["type"] = ["integer", "string"]

    if node.get("x-kubernetes-embedded-resource") is True:
        properties = out.setdefault("properties", {})
        properties.setdefault("apiVersion", {"type": "string", "minLength": 1})
        properties.setdefault("kind", {"type": "string", "minLength": 1})
        properties.setdefault("metadata", {"type": "object"})
        required = list(out.get("required", []))
        out["required"] = required + [key for key in ("apiVersion", "kind") if key not in required]

    if node.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True

    preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
    is_object = out.get("type") == "object" or "properties" in out
    if is_object and not in_junctor and not preserve and "additionalProperties" not in out:
        out["additionalProperties"] = False

    if node.get("nullable") is True:
        kind = out.get("type")
        if isinstance(kind, str):
            out["type"] = [kind, "null"]
        elif isinstance(kind, list) and "null" not in kind:
            out["type"] = [*kind, "null"]
        if isinstance(out.get("enum"), list) and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
    return out
