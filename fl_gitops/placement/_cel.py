"""CEL cluster selection (``celSelector``) with OCM's variable and functions.

OCM evaluates each ``celExpressions`` entry with one variable, ``managedCluster`` (the
ManagedCluster object as a map), and adds its own functions: ``scores`` (the
AddOnPlacementScore items of the cluster), ``versionIsGreaterThan`` /
``versionIsLessThan``, ``quantityIsGreaterThan`` / ``quantityIsLessThan`` and
``parseJSON``. A cluster matches when every expression yields ``true``; an evaluation
error or a non-boolean result is a non-match, while an expression that does not
compile makes the whole Placement misconfigured. The same rules hold here, on the
``common-expression-language`` package (cel-rust) plus its cel-go style extensions.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fl_gitops.errors import InputError
from fl_gitops.placement._quantity import parse_quantity
from fl_gitops.placement._semver import compare_versions

__all__ = ["CelPredicate", "compile_cel"]

AddOnScores = Mapping[str, Mapping[str, Mapping[str, int]]]

_OCM_FUNCTIONS = (
    "scores",
    "versionIsGreaterThan",
    "versionIsLessThan",
    "quantityIsGreaterThan",
    "quantityIsLessThan",
    "parseJSON",
)
_UNDEFINED = "Undefined variable or function"
# What cel-rust defines itself (macros such as has/all/exists are expanded, not listed).
_NATIVE_FUNCTIONS = frozenset(
    {
        "bytes", "contains", "double", "duration", "dyn", "endsWith", "getDate",
        "getDayOfMonth", "getDayOfWeek", "getDayOfYear", "getFullYear", "getHours",
        "getMilliseconds", "getMinutes", "getMonth", "getSeconds", "int", "matches",
        "none", "of", "orValue", "size", "startsWith", "string", "timestamp", "type",
        "uint", "value", "hasValue", "or",
    }
)  # fmt: skip


def _strings(name: str, left: object, right: object) -> tuple[str, str]:
    if not isinstance(left, str) or not isinstance(right, str):
        raise TypeError(f"{name}: both arguments must be strings")
    return left, right


def _version_greater(left: object, right: object) -> bool:
    return compare_versions(*_strings("versionIsGreaterThan", left, right)) > 0


def _version_less(left: object, right: object) -> bool:
    return compare_versions(*_strings("versionIsLessThan", left, right)) < 0


def _quantity_greater(left: object, right: object) -> bool:
    a, b = _strings("quantityIsGreaterThan", left, right)
    return parse_quantity(a) > parse_quantity(b)


def _quantity_less(left: object, right: object) -> bool:
    a, b = _strings("quantityIsLessThan", left, right)
    return parse_quantity(a) < parse_quantity(b)


def _parse_json(text: object) -> Any:
    if not isinstance(text, str):
        raise TypeError("parseJSON: the argument must be a string")
    return json.loads(text)


def _scores_function(addon_scores: AddOnScores) -> Callable[[object, object], list[dict[str, Any]]]:
    def scores(cluster: object, resource: object) -> list[dict[str, Any]]:
        if not isinstance(cluster, Mapping) or not isinstance(resource, str):
            raise TypeError("scores: expected managedCluster.scores(<resource name>)")
        name = cluster.get("metadata", {}).get("name")
        by_resource = addon_scores.get(str(name), {})
        if resource not in by_resource:
            # OCM: the AddOnPlacementScore lookup fails, so the expression errors.
            raise LookupError(f"no AddOnPlacementScore {resource!r} for cluster {name!r}")
        return [{"name": k, "value": v} for k, v in sorted(by_resource[resource].items())]

    return scores


@dataclass(frozen=True)
class _Compiled:
    path: str
    source: str
    program: Any


class CelPredicate:
    """The compiled ``celExpressions`` of one predicate, evaluated per cluster."""

    def __init__(self, compiled: Sequence[_Compiled], addon_scores: AddOnScores) -> None:
        import cel.stdlib  # on first use: the package imports its CLI (prompt_toolkit), 0.3 s

        self._compiled = tuple(compiled)
        self._context = cel.Context()
        cel.stdlib.add_stdlib_to_context(self._context)
        self._context.add_function("scores", _scores_function(addon_scores))
        self._context.add_function("versionIsGreaterThan", _version_greater)
        self._context.add_function("versionIsLessThan", _version_less)
        self._context.add_function("quantityIsGreaterThan", _quantity_greater)
        self._context.add_function("quantityIsLessThan", _quantity_less)
        self._context.add_function("parseJSON", _parse_json)

    def matches(self, cluster: Mapping[str, Any]) -> bool:
        """Whether every expression yields ``true`` for ``cluster`` (OCM semantics).

        Raises:
            InputError: an expression names a variable other than ``managedCluster``
                (OCM rejects such an expression when it compiles).
        """
        self._context.add_variable("managedCluster", cluster)
        for compiled in self._compiled:
            try:
                result = compiled.program.execute(self._context)
            except Exception as error:  # an evaluation error is a non-match in OCM
                message = str(error)
                if message.startswith(_UNDEFINED):
                    raise InputError(
                        f"{compiled.path}: {compiled.source!r}: {message.split('.')[0]}; "
                        "the only variable is managedCluster"
                    ) from error
                return False
            if result is not True:
                return False
        return True


def compile_cel(expressions: Sequence[tuple[str, str]], addon_scores: AddOnScores) -> CelPredicate:
    """Compile CEL expressions once, checking every function they call.

    Args:
        expressions: ``(field path, expression)`` pairs, ANDed.
        addon_scores: cluster → AddOnPlacementScore name → score name → value, for
            the ``scores`` function.

    Returns:
        A predicate to evaluate per cluster.

    Raises:
        InputError: an expression does not compile, or calls a function that neither
            CEL, its extensions nor OCM's library define offline. The message names the
            field path (predicate index) and the expression.
    """
    import cel.stdlib  # on first use, as in CelPredicate

    compiled = []
    supported = _NATIVE_FUNCTIONS | set(_OCM_FUNCTIONS) | set(cel.stdlib.STDLIB_FUNCTIONS)
    for path, source in expressions:
        try:
            program = cel.compile(source)
        except Exception as error:
            detail = " ".join(str(error).split())
            raise InputError(f"{path}: {source!r} does not compile: {detail}") from error
        for function in program.functions():
            if function[0] not in "_@!" and function not in supported:
                raise InputError(
                    f"{path}: {source!r} calls {function}(), which offline placement does not "
                    f"support; supported OCM functions are {', '.join(_OCM_FUNCTIONS)}"
                )
        compiled.append(_Compiled(path, source, program))
    return CelPredicate(compiled, addon_scores)
