"""The strategies, by name, and the validation of their options.

``STRATEGIES`` is a plain table (as pre-commit's ``all_languages``): the blueprint's
``spec.strategy.name`` is checked against its keys and ``spec.strategy.options`` against
the strategy's JSON Schema with :func:`validate_options`, which names the option and what
was expected. Each strategy lives in its own module, with its paper in the docstring.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import jsonschema

from fl_gitops.errors import StrategyOptionsError
from fl_gitops.fl.strategies import (
    dp,
    fedadagrad,
    fedadam,
    fedavg,
    fedavgm,
    fedmedian,
    fedprox,
    fedtrimmedavg,
    fedyogi,
    krum,
    multikrum,
)
from fl_gitops.fl.strategies.base import Plan, Step, Strategy

__all__ = [
    "STRATEGIES",
    "Plan",
    "Step",
    "Strategy",
    "options_schema",
    "plan",
    "strategy_names",
    "validate_options",
]

STRATEGIES: dict[str, Strategy] = {
    "fedavg": fedavg.STRATEGY,
    "fedavgm": fedavgm.STRATEGY,
    "fedprox": fedprox.STRATEGY,
    "fedadam": fedadam.STRATEGY,
    "fedyogi": fedyogi.STRATEGY,
    "fedadagrad": fedadagrad.STRATEGY,
    "fedmedian": fedmedian.STRATEGY,
    "fedtrimmedavg": fedtrimmedavg.STRATEGY,
    "krum": krum.STRATEGY,
    "multikrum": multikrum.STRATEGY,
    "dp-fixed-clipping": dp.STRATEGY,
}


def strategy_names() -> list[str]:
    """The names a blueprint may use, sorted."""
    return sorted(STRATEGIES)


def _get(name: str) -> Strategy:
    try:
        return STRATEGIES[name]
    except (KeyError, TypeError):
        raise StrategyOptionsError(
            f"strategy {name!r}: unknown; expected one of {', '.join(strategy_names())}"
        ) from None


def options_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of a strategy's options (a copy).

    Raises:
        StrategyOptionsError: unknown strategy.
    """
    return copy.deepcopy(dict(_get(name).options_schema))


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


def validate_options(name: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check a strategy's options and return them with defaults filled in.

    Raises:
        StrategyOptionsError: unknown strategy, unknown option, or a value of the wrong
            type or range; the message names the strategy, the option and what was expected.
    """
    return _validate(name, options, name, "options")


def _validate(
    name: str, options: Mapping[str, Any] | None, outer: str, prefix: str
) -> dict[str, Any]:
    strategy = _get(name)
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
    if name == dp.STRATEGY.name:
        # The wrapper's inner strategy has options of its own: check them here too, so a
        # blueprint error shows up at validation, not at the first aggregation.
        resolved["inner_options"] = _validate(
            resolved["inner"], resolved["inner_options"], outer, f"{prefix}.inner_options"
        )
    return dict(sorted(resolved.items()))


def plan(name: str, options: Mapping[str, Any] | None) -> Plan:
    """Validate options and return the strategy's plan for aggregation.

    Raises:
        StrategyOptionsError: see :func:`validate_options`.
    """
    return _get(name).plan(validate_options(name, options))
