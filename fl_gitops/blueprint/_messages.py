"""Turn JSON Schema failures into located, plain-language blueprint errors.

jsonschema's own messages (``'abc' is not of type 'integer'``) read like a stack trace to a
platform engineer; these say what was expected, where, and for a misspelled key what was
probably meant.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator, validators

from fl_gitops.blueprint._yaml import Document, dotted
from fl_gitops.errors import BlueprintError
from fl_gitops.tensors import DIGEST_PATTERN

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


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Iterator[Any]:
    """``pattern`` without Python's ``$``-before-a-final-newline leniency.

    jsonschema uses ``re.search``, whose ``$`` also matches before a trailing newline, so
    ``"value\\n"`` would pass a label pattern; Kubernetes rejects it, so we do too.
    """
    if not isinstance(instance, str):
        return
    if re.search(pattern, instance) is None or (pattern.endswith("$") and instance.endswith("\n")):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


_StrictValidator = validators.extend(Draft202012Validator, {"pattern": _pattern})


def make_validator(schema: dict[str, Any]) -> Any:
    """A Draft 2020-12 validator whose patterns reject a trailing newline."""
    return _StrictValidator(schema)


def collect_errors(
    validator: Any,
    instance: Any,
    doc: Document,
    *,
    prefix: tuple[str | int, ...] = (),
    noun: str = "field",
    takes_none: str = "this mapping takes no fields",
) -> list[BlueprintError]:
    """Every schema failure of ``instance`` (found at ``prefix`` in ``doc``), located and sorted.

    Args:
        validator: from :func:`make_validator`.
        instance: the data validated (the part of ``doc.data`` at ``prefix``).
        doc: where positions come from.
        prefix: the path of ``instance`` inside the document.
        noun: what a key is called in messages (``field``, ``option``).
        takes_none: the hint for an unknown key in a mapping that takes none.
    """
    found: dict[tuple[Any, ...], BlueprintError] = {}
    suggested: set[tuple[str, str]] = set()
    for error in validator.iter_errors(instance):
        for located in _explain(error, doc, prefix, noun, takes_none, suggested):
            key = (located.line, located.column, located.field, located.message)
            found.setdefault(key, located)
    # A misspelt required field is reported once, as the misspelling with its hint, not
    # also as the field that is missing.
    kept = [
        e
        for e in found.values()
        if (e.field, getattr(e, "missing", None)) not in suggested
        or getattr(e, "missing", None) is None
    ]
    return sorted(kept, key=lambda e: (e.line, e.column, e.field))


def raise_first(errors: list[BlueprintError]) -> None:
    """Raise the first error, carrying the rest so the CLI can print them all."""
    if errors:
        first = errors[0]
        first.more = errors[1:]  # type: ignore[attr-defined]
        raise first


def _explain(
    error: jsonschema.ValidationError,
    doc: Document,
    prefix: tuple[str | int, ...],
    noun: str,
    takes_none: str,
    suggested: set[tuple[str, str]],
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
            hint, guess = _did_you_mean(key, known, takes_none)
            if guess is not None and guess not in instance:
                suggested.add((dotted(path), guess))
            yield _at_key(doc, path, key, f"unknown {noun} {key!r}{hint}")
        return
    if "propertyNames" in error.absolute_schema_path and isinstance(instance, str):
        # jsonschema checks each key as an instance of its own, at the mapping's path.
        yield _at_key(doc, path, instance, _key_message(error, instance))
        return
    if kind == "propertyNames":
        bad = _bad_property_name(error)
        if bad is not None:
            yield _at_key(
                doc,
                path,
                bad,
                f"key {bad!r} is not allowed here; expected {_expectation(error.schema)}",
            )
            return
    if kind == "required":
        # Point at the mapping's own key ("spec:"), the line a reader would add to.
        line, col = doc.where(path, key=True) if path else (1, 1)
        located = BlueprintError(
            _message(error, noun),
            file=doc.file,
            line=line,
            column=col,
            field=dotted(path),
        )
        missing = re.match(r"^'(.*)' is a required property", error.message)
        located.missing = missing.group(1) if missing else None  # type: ignore[attr-defined]
        yield located
        return
    line, col = doc.where(path)
    yield BlueprintError(
        _message(error, noun), file=doc.file, line=line, column=col, field=dotted(path)
    )


def _at_key(doc: Document, path: tuple[str | int, ...], key: str, message: str) -> BlueprintError:
    """An error located at ``key`` itself (not its value) in the mapping at ``path``."""
    line, col = doc.where((*path, key), key=True)
    return BlueprintError(message, file=doc.file, line=line, column=col, field=dotted((*path, key)))


def _key_message(error: jsonschema.ValidationError, key: str) -> str:
    kind = error.validator
    if kind == "pattern":
        return f"bad key {key!r}; expected {_pattern_words(error.validator_value)}"
    if kind == "enum":
        options = ", ".join(repr(v) for v in error.validator_value)
        hint = _close_enum(key, error.validator_value)
        return f"bad key {key!r}; expected one of {options}{hint}"
    if kind == "maxLength":
        return f"key {key!r} is {len(key)} characters; expected at most {error.validator_value}"
    return f"bad key {key!r}: {_message(error, 'key')}"


def _bad_property_name(error: jsonschema.ValidationError) -> str | None:
    # jsonschema reports the failing name as the context error's instance.
    for sub in error.context or ():
        if isinstance(sub.instance, str):
            return sub.instance
    match = re.match(r"^'(.*)' (does not|is not)", error.message)
    return match.group(1) if match else None


def _did_you_mean(key: str, known: list[str], takes_none: str) -> tuple[str, str | None]:
    """The hint after "unknown field", and the field it guesses (if any)."""
    if not known:
        return f"; {takes_none}", None
    lower = {k.lower(): k for k in known}
    if key.lower() in lower:
        return f"; did you mean {lower[key.lower()]!r}?", lower[key.lower()]
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?", close[0]
    return f"; expected one of: {', '.join(known)}", None


def _close_enum(value: Any, options: list[Any]) -> str:
    words = [o for o in options if isinstance(o, str)]
    if not isinstance(value, str) or not words:
        return ""
    lower = {w.lower(): w for w in words}
    if value.lower() in lower:
        return f"; did you mean {lower[value.lower()]!r}?"
    close = difflib.get_close_matches(value, words, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        shown = value if len(value) <= 60 else value[:57] + "..."
        return f"string {shown!r}"
    return repr(value)


def _expectation(schema: Any) -> str:
    if not isinstance(schema, dict):
        return "a valid value"
    if "description" in schema and "pattern" in schema:
        return str(schema["description"])
    if "enum" in schema:
        return "one of " + ", ".join(repr(v) for v in schema["enum"])
    if "pattern" in schema:
        return _pattern_words(schema["pattern"])
    if "type" in schema:
        return str(_TYPE_WORDS.get(schema["type"], schema["type"]))
    return "a valid value"


_PATTERN_WORDS = {
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$": (
        "a DNS-1123 label (lowercase letters, digits and '-', starting and ending alphanumeric)"
    ),
}


def _pattern_words(pattern: str) -> str:
    import fl_gitops.blueprint._schema as _schema

    words = {
        _schema.DNS1123_LABEL: _PATTERN_WORDS[_schema.DNS1123_LABEL],
        _schema.DNS1123_SUBDOMAIN: (
            "a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', each dot-separated "
            "part starting and ending alphanumeric)"
        ),
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
        _schema._ENV_NAME: "a name of letters, digits and '_', not starting with a digit",
        DIGEST_PATTERN: "'sha256:' and 64 lowercase hex digits",
        _schema._ABS_PATH: "an absolute path without spaces",
        _schema._STORE_URI: (
            "an s3://bucket/prefix or file:///path URI (the schemes fl-gitops supports: "
            "s3, file) or an absolute path, not a relative one"
        ),
        _schema._GIT_REPO: "a Git URL (https://, ssh://, file:// or user@host:path)",
        _schema._GIT_BRANCH: "a branch name (no '..', '//', leading or trailing '/', or '.lock')",
        _schema._HTTP_URL: "an http:// or https:// URL",
        _schema._HTTPS_URL: "an https:// URL",
    }
    return words.get(pattern, f"text matching {pattern}")


def _message(error: jsonschema.ValidationError, noun: str = "field") -> str:
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
        return f"missing required {noun} {name!r}"
    if kind == "enum":
        options = ", ".join(repr(v) for v in error.validator_value)
        return f"expected one of {options}, got {got}{_close_enum(value, error.validator_value)}"
    if kind == "const":
        return f"expected {error.validator_value!r}, got {got}"
    if kind == "pattern":
        return f"expected {_pattern_words(error.validator_value)}, got {got}"
    if kind in _BOUNDS:
        number = "an integer" if schema.get("type") == "integer" else "a number"
        return f"expected {number} {_BOUNDS[kind]} {error.validator_value}, got {got}"
    if kind == "maxLength":
        return f"expected at most {error.validator_value} characters, got {len(value)}"
    if kind == "minLength":
        if error.validator_value == 1:
            return "expected a non-empty string"
        return f"expected at least {error.validator_value} characters, got {len(value)}"
    if kind == "maxItems":
        return f"expected at most {error.validator_value} items, got {len(value)}"
    if kind == "minItems":
        return f"expected at least {error.validator_value} items, got {len(value)}"
    if kind == "uniqueItems":
        return "expected every item to be different"
    if kind == "oneOf":
        options = error.validator_value
        keys = [o["required"][0] for o in options if set(o) == {"required"}]
        if keys and len(keys) == len(options) and isinstance(value, dict):
            present = [k for k in keys if k in value]
            either = " or ".join(repr(k) for k in keys)
            found = "both" if len(present) == len(keys) == 2 else ", ".join(present)
            return f"set exactly one of {either}; found {found or 'neither'}"
        if "description" in schema:
            return (
                f"expected {schema['description'][0].lower()}{schema['description'][1:]}"[:-1]
                + f", got {got}"
            )
        return f"{got} does not fit any allowed form"
    if kind == "propertyNames":
        return f"a key is not allowed: {error.message}"
    return str(error.message)


_BOUNDS = {"minimum": ">=", "exclusiveMinimum": ">", "maximum": "<=", "exclusiveMaximum": "<"}
