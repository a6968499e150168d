"""A strategy's options checked against its own JSON Schema, with messages that name them.

The ``STRATEGIES`` table validates a blueprint's ``strategy.options`` through here, and so
does the DP wrapper for its inner strategy's options: a module of its own, so that the
wrapper needs nothing of the table (which imports every strategy module).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import jsonschema

from fl_gitops.aggregate.strategies.base import Strategy
from fl_gitops.errors import StrategyOptionsError

__all__ = ["check_options"]


def check_options(
    strategy: Strategy, options: Mapping[str, Any] | None, outer: str, prefix: str
) -> dict[str, Any]:
    """Check options against ``strategy``'s schema; return them sorted, defaults filled in.

    Args:
        strategy: the strategy whose ``options_schema`` applies.
        options: the options as written (None: no options).
        outer: the strategy name the blueprint wrote, for messages.
        prefix: the options' field path, for messages (``options``, ``options.inner_options``).

    Raises:
        StrategyOptionsError: an unknown option, or a value of the wrong type or range;
            the message names the strategy, the option and what was expected.
    """
    options = {} if options is None else options
    if not isinstance(options, Mapping):
        raise StrategyOptionsError(
            f"strategy {outer!r}: {prefix}: expected a mapping, got {options!r}"
        )
    schema = dict(strategy.options_schema)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(dict(options)), key=lambda e: list(e.path))
    if errors:
        error = errors[0]
        where = ".".join(str(p) for p in error.path)
        where = f"{prefix}.{where}" if where else prefix
        raise StrategyOptionsError(f"strategy {outer!r}: {where}: {_describe(error)}")
    resolved = dict(options)
    for key, prop in schema.get("properties", {}).items():
        if key not in resolved and "default" in prop:
            resolved[key] = copy.deepcopy(prop["default"])
    return dict(sorted(resolved.items()))


def _describe(error: jsonschema.ValidationError) -> str:
    schema = error.schema if isinstance(error.schema, Mapping) else {}
    v = error.validator
    value = error.instance
    if v == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(set(value) - set(allowed)) if isinstance(value, Mapping) else []
        expected = ", ".join(allowed) if allowed else "no options"
        return f"unknown option {', '.join(map(repr, extra))}; expected {expected}"
    if v == "required":
        return f"missing required option {error.message.split(' is a required')[0]}"
    if v == "type":
        return f"expected {' or '.join(_as_list(schema.get('type')))}, got {value!r}"
    if v == "enum":
        return f"expected one of {', '.join(map(str, schema.get('enum', [])))}, got {value!r}"
    bounds = {
        "minimum": ">=",
        "maximum": "<=",
        "exclusiveMinimum": ">",
        "exclusiveMaximum": "<",
    }
    if v in bounds:
        parts = [f"{bounds[k]} {schema[k]}" for k in bounds if k in schema]
        kind = _as_list(schema.get("type"))[0]
        article = "an" if kind[0] in "aeiou" else "a"
        return f"expected {article} {kind} {' and '.join(parts)}, got {value!r}"
    return str(error.message)


def _as_list(t: object) -> list[str]:
    names = {"number": "number", "integer": "integer", "null": "null", "object": "object"}
    items = t if isinstance(t, list) else [t]
    return [names.get(str(i), str(i)) for i in items]
