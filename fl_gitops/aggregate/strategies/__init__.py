"""The strategies, by name, and the validation of their options.

``STRATEGIES`` is a plain table (as pre-commit's ``all_languages``): the blueprint's
``spec.strategy.name`` is checked against its keys and ``spec.strategy.options`` against
the strategy's JSON Schema with :func:`validate_options`, which names the option and what
was expected. Each strategy lives in its own module, with its paper in the docstring.

Each module also holds the strategy's own combining step, a ``Combiner`` (``base``), which the
engine runs one slice of the tensors at a time; the arithmetic they share is in ``_arith``.

This table imports every strategy module and none imports it back: the DP wrapper takes
its inner strategies from their own modules, and options are checked in ``_options``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from fl_gitops.aggregate.strategies import (
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
from fl_gitops.aggregate.strategies._options import check_options
from fl_gitops.aggregate.strategies.base import Choice, Combiner, Plan, Step, Strategy
from fl_gitops.errors import StrategyOptionsError

__all__ = [
    "STRATEGIES",
    "Choice",
    "Combiner",
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
_DP = dp.STRATEGY.name  # the wrapper a blueprint's ``dp`` block puts around its strategy


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
    resolved = check_options(_get(name), options, outer, prefix)
    if name == _DP:
        # The wrapper's inner strategy has options of its own: check them here too, so a
        # blueprint error shows up at validation, not at the first aggregation.
        resolved["inner_options"] = _validate(
            resolved["inner"], resolved["inner_options"], outer, f"{prefix}.inner_options"
        )
    return resolved


def plan(name: str, options: Mapping[str, Any] | None) -> Plan:
    """Validate options and return the strategy's plan for aggregation.

    Raises:
        StrategyOptionsError: see :func:`validate_options`.
    """
    return _get(name).plan(validate_options(name, options))
