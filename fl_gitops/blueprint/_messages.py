"""Turn JSON Schema failures into located, plain-language blueprint errors.

jsonschema's own messages (``'abc' is not of type 'integer'``) read like a stack trace to a
platform engineer; these say what was expected, where, and for a misspelled key what was
probably meant.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator, validators

from fl_gitops.blueprint._yaml import Document
from fl_gitops.errors import BlueprintError

__all__ = ["collect_errors", "dotted", "make_validator", "raise_first"]

_TYPE_WORDS = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict) -> Iterator[Any]:
    """``pattern`` without Python's ``$``-before-a-final-newline leniency.

    jsonschema uses ``re.search``, whose ``$`` also matches before a trailing newline, so
    ``"value\\n"`` would pass a label pattern; Kubernetes rejects it, so we do too.
    """
    if not isinstance(instance, str):
        return
    if re.search(pattern, instance) is None or (pattern.endswith("$") and instance.endswith("\n")):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


_StrictValidator = validators.extend(Draft202012Validator, {"pattern": _pattern})


def make_validator(schema: dict) -> Any:
    """A Draft 2020-12 validator whose patterns reject a trailing newline."""
    return _StrictValidator(schema)


def dotted(path: Iterable[str | int]) -> str:
    """``("spec", "client", "env", 0, "name")`` → ``spec.client.env[0].name``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def collect_errors(
    validator: Any, instance: Any, doc: Document, *, prefix: tuple[str | int, ...] = ()
) -> list[BlueprintError]:
    """Every schema failure of ``instance`` (found at ``prefix`` in ``doc``), located and sorted."""
    found: dict[tuple, BlueprintError] = {}
    for error in validator.iter_errors(instance):
        for located in _explain(error, doc, prefix):
            key = (located.line, located.column, located.field, located.message)
            found.setdefault(key, located)
    return sorted(found.values(), key=lambda e: (e.line, e.column, e.field))


def raise_first(errors: list[BlueprintError]) -> None:
    """Raise the first error, carrying the rest so the CLI can print them all."""
    if errors:
        first = errors[0]
        first.more = errors[1:]  # type: ignore[attr-defined]
        raise first


def _explain(
    error: jsonschema.ValidationError, doc: Document, prefix: tuple[str | int, ...]
) -> Iterator[BlueprintError]:
    path = (*prefix, *error.absolute_path)
    kind = error.validator
    schema = error.schema if isinstance(error.schema, dict) else {}
    instance = error.instance
    if kind == "additionalProperties" and isinstance(instance, dict):
        known = sorted(schema.get("properties", {}))
        patterns = list(schema.get("patternProperties", {}))
        for key in instance:
            if key in known or any(re.search(p, key) for p in patterns):
                continue
            line, col = doc.where((*path, key), key=True)
            yield BlueprintError(
                f"unknown field {key!r}{_did_you_mean(key, known)}",
                file=doc.file,
                line=line,
                column=col,
                field=dotted((*path, key)),
            )
        return
    if kind == "propertyNames":
        bad = _bad_property_name(error)
        if bad is not None:
            line, col = doc.where((*path, bad), key=True)
            yield BlueprintError(
                f"key {bad!r} is not allowed here; expected {_expectation(error.schema)}",
                file=doc.file,
                line=line,
                column=col,
                field=dotted((*path, bad)),
            )
            return
    line, col = doc.where(path)
    yield BlueprintError(
        _message(error), file=doc.file, line=line, column=col, field=dotted(path) or "(top)"
    )


def _bad_property_name(error: jsonschema.ValidationError) -> str | None:
    # jsonschema reports the failing name as the context error's instance.
    for sub in error.context or ():
        if isinstance(sub.instance, str):
            return sub.instance
    match = re.match(r"^'(.*)' (does not|is not)", error.message)
    return match.group(1) if match else None


def _did_you_mean(key: str, known: list[str]) -> str:
    if not known:
        return "; this mapping takes no fields"
    lower = {k.lower(): k for k in known}
    if key.lower() in lower:
        return f"; did you mean {lower[key.lower()]!r}?"
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; expected one of: {', '.join(known)}"


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return f"string {shown!r}"
    return f"{type(value).__name__} {value!r}"


def _expectation(schema: Any) -> str:
    if not isinstance(schema, dict):
        return "a valid value"
    if "description" in schema and "pattern" in schema:
        return schema["description"]
    if "enum" in schema:
        return "one of " + ", ".join(repr(v) for v in schema["enum"])
    if "pattern" in schema:
        return _pattern_words(schema["pattern"])
    if "type" in schema:
        return _TYPE_WORDS.get(schema["type"], schema["type"])
    return "a valid value"


_PATTERN_WORDS = {
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$": (
        "a DNS-1123 label (lowercase letters, digits and '-', starting and ending alphanumeric)"
    ),
}


def _pattern_words(pattern: str) -> str:
    from fl_gitops.blueprint import _schema

    words = {
        _schema.DNS1123_LABEL: _PATTERN_WORDS[_schema.DNS1123_LABEL],
        _schema.LABEL_VALUE: (
            "a label value: at most 63 characters of letters, digits, '-', '_' and '.', "
            "starting and ending alphanumeric (no spaces or newlines)"
        ),
        _schema.LABEL_KEY: "a label key such as 'team' or 'example.com/team'",
        _schema._DURATION: "a duration such as 90s, 30m or 1h30m",
        _schema._QUANTITY: "a Kubernetes quantity such as 500m, 1 or 2Gi",
        _schema._ENTRYPOINT: "an entrypoint 'package.module:function'",
        _schema._REL_PATH: (
            "a relative path of names separated by '/', without '.', '..' or a leading '/'"
        ),
        _schema._IMAGE: "a container image reference such as ghcr.io/org/image:tag",
        _schema._CRON: "a cron schedule such as '*/2 * * * *'",
        _schema._ENV_NAME: "an environment variable name",
    }
    return words.get(pattern, f"text matching {pattern}")


def _message(error: jsonschema.ValidationError) -> str:
    kind = error.validator
    schema = error.schema if isinstance(error.schema, dict) else {}
    value = error.instance
    got = _describe(value)
    if kind == "type":
        wanted = error.validator_value
        names = [wanted] if isinstance(wanted, str) else list(wanted)
        words = " or ".join(_TYPE_WORDS.get(n, n) for n in names)
        return f"expected {words}, got {got}"
    if kind == "required":
        missing = re.match(r"^'(.*)' is a required property", error.message)
        name = missing.group(1) if missing else error.message
        return f"missing required field {name!r}"
    if kind == "enum":
        options = ", ".join(repr(v) for v in error.validator_value)
        return f"expected one of {options}, got {got}"
    if kind == "const":
        return f"expected {error.validator_value!r}, got {got}"
    if kind == "pattern":
        return f"expected {_pattern_words(error.validator_value)}, got {got}"
    if kind in ("minimum", "exclusiveMinimum"):
        op = ">=" if kind == "minimum" else ">"
        return f"expected a number {op} {error.validator_value}, got {got}"
    if kind in ("maximum", "exclusiveMaximum"):
        op = "<=" if kind == "maximum" else "<"
        return f"expected a number {op} {error.validator_value}, got {got}"
    if kind == "maxLength":
        return f"expected at most {error.validator_value} characters, got {len(value)}"
    if kind == "minLength":
        return "expected a non-empty string" if error.validator_value == 1 else error.message
    if kind == "maxItems":
        return f"expected at most {error.validator_value} items, got {len(value)}"
    if kind == "minItems":
        return f"expected at least {error.validator_value} items, got {len(value)}"
    if kind == "oneOf":
        options = error.validator_value
        keys = [o["required"][0] for o in options if set(o) == {"required"}]
        if keys and len(keys) == len(options) and isinstance(value, dict):
            present = [k for k in keys if k in value]
            if present:
                return f"set only one of {', '.join(keys)}; found {', '.join(present)}"
            return f"set one of {', '.join(keys)}"
        if "description" in schema:
            return (
                f"expected {schema['description'][0].lower()}{schema['description'][1:]}"[:-1]
                + f", got {got}"
            )
        return f"{got} does not fit any allowed form"
    if kind == "propertyNames":
        return f"a key is not allowed: {error.message}"
    return error.message
