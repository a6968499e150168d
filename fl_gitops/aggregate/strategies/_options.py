"""A strategy's options checked against its own JSON Schema, with messages that name them.

The ``STRATEGIES`` table validates a blueprint's ``strategy.options`` through here, and so
does the DP wrapper for its inner strategy's options: a module of its own, so that the
wrapper needs nothing of the table (which imports every strategy module).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fl_gitops.aggregate.strategies.base import Strategy
from fl_gitops.errors import StrategyOptionsError

if TYPE_CHECKING:
    import jsonschema

__all__ = ["check_options"]

# The keywords an options schema may hold for which an empty mapping is valid on sight:
# ``options_object()`` makes exactly these unless a strategy requires an option.
_EMPTY_VALID = {"type", "properties", "additionalProperties"}


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
    errors = [] if _empty_is_valid(options, schema) else _errors(schema, options)
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


def _empty_is_valid(options: Mapping[str, Any], schema: Mapping[str, Any]) -> bool:
    """No options against an object schema that requires none: valid, without jsonschema.

    Most rounds run a strategy with no options, and importing jsonschema (50 ms here, with
    attrs and referencing) was a sixth of an aggregation process's start-up.
    """
    return not options and schema.get("type") == "object" and set(schema) <= _EMPTY_VALID


def _errors(schema: Mapping[str, Any], options: Mapping[str, Any]) -> list[Any]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(dict(schema))
    return sorted(validator.iter_errors(dict(options)), key=lambda e: list(e.path))


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
