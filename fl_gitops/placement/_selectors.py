"""Kubernetes label selectors, used by OCM for both labels and cluster claims.

A Placement's ``labelSelector`` and ``claimSelector`` are converted by OCM into
Kubernetes ``labels.Selector`` values: requirements are ANDed, ``matchLabels`` entries
are ``In`` requirements with one value, and keys and values must be valid label syntax
(OCM reports a selector that is not as a misconfigured Placement). This module parses
such a selector once, with the field path in every error, and matches it against a
``{key: value}`` mapping.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fl_gitops.errors import InputError
from fl_gitops.validate import check_label_key, check_label_value

__all__ = ["OPERATORS", "Requirement", "Selector", "parse_selector"]

OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")


@dataclass(frozen=True)
class Requirement:
    """One ``key operator values`` requirement of a selector."""

    key: str
    operator: str
    values: frozenset[str]

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfies this requirement (Kubernetes semantics)."""
        if self.operator == "In":
            value = labels.get(self.key)
            return value is not None and value in self.values
        if self.operator == "NotIn":
            value = labels.get(self.key)
            return value is None or value not in self.values
        if self.operator == "Exists":
            return self.key in labels
        return self.key not in labels


@dataclass(frozen=True)
class Selector:
    """ANDed requirements; the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether every requirement holds for ``labels``."""
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        """True when the selector has no requirement (selects everything)."""
        return not self.requirements


def case_hint(value: object, options: tuple[str, ...]) -> str:
    """ "; did you mean 'In'?" when ``value`` is an option spelt in another case.

    Kubernetes operators are case-sensitive, and ``in`` is the likeliest typo: OCM
    would mark the Placement misconfigured and select nothing.
    """
    if isinstance(value, str):
        for option in options:
            if option.lower() == value.lower():
                return f"; did you mean {option!r}?"
    return ""


def _check_key(key: object, path: str) -> str:
    if not isinstance(key, str) or not key:
        raise InputError(f"{path}: expected a non-empty label key, got {key!r}")
    if check_label_key(key) is not None:
        raise InputError(
            f"{path}: {key!r} is not a valid key (an optional DNS prefix and '/', then at "
            "most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit)"
        )
    return key


def _check_value(value: object, path: str) -> str:
    if not isinstance(value, str):
        raise InputError(f"{path}: expected a string, got {type(value).__name__} {value!r}")
    if check_label_value(value) is not None:
        raise InputError(
            f"{path}: {value!r} is not a valid label value (at most 63 letters, digits, "
            "'-', '_' or '.', starting and ending with a letter or digit)"
        )
    return value


def _mapping(obj: object, path: str) -> Mapping[str, object]:
    if not isinstance(obj, Mapping):
        raise InputError(f"{path}: expected a mapping, got {type(obj).__name__}")
    return obj


def parse_selector(obj: object, path: str, *, allow_match_labels: bool) -> Selector:
    """Parse a ``labelSelector`` or ``claimSelector`` mapping.

    Args:
        obj: the selector as it appears in the Placement (``None`` means empty).
        path: the field path used in error messages.
        allow_match_labels: ``True`` for label selectors; claim selectors only have
            ``matchExpressions``.

    Returns:
        The parsed selector.

    Raises:
        InputError: an unknown field, a bad operator, values where none are allowed
            (or none where some are needed), or invalid key/value syntax.
    """
    if obj is None:
        return Selector()
    selector = _mapping(obj, path)
    allowed = ("matchLabels", "matchExpressions") if allow_match_labels else ("matchExpressions",)
    for field in selector:
        if field not in allowed:
            raise InputError(f"{path}: unknown field {field!r}; expected {' or '.join(allowed)}")
    requirements: list[Requirement] = []
    match_labels = selector.get("matchLabels")
    if match_labels is not None:
        labels = _mapping(match_labels, f"{path}.matchLabels")
        for key, value in labels.items():
            where = f"{path}.matchLabels.{key}"
            requirements.append(
                Requirement(_check_key(key, where), "In", frozenset([_check_value(value, where)]))
            )
    expressions = selector.get("matchExpressions")
    if expressions is not None:
        if not isinstance(expressions, list):
            raise InputError(f"{path}.matchExpressions: expected a list")
        for index, raw in enumerate(expressions):
            where = f"{path}.matchExpressions[{index}]"
            expr = _mapping(raw, where)
            for field in expr:
                if field not in ("key", "operator", "values"):
                    raise InputError(
                        f"{where}: unknown field {field!r}; expected key, operator, values"
                    )
            key = _check_key(expr.get("key"), f"{where}.key")
            operator = expr.get("operator")
            if operator not in OPERATORS:
                raise InputError(
                    f"{where}.operator: {operator!r} is not a valid operator; expected one of "
                    + ", ".join(OPERATORS)
                    + case_hint(operator, OPERATORS)
                )
            values = expr.get("values") or []
            if not isinstance(values, list):
                raise InputError(f"{where}.values: expected a list of strings")
            checked = [_check_value(v, f"{where}.values[{i}]") for i, v in enumerate(values)]
            if operator in ("In", "NotIn") and not checked:
                raise InputError(f"{where}.values: operator {operator} needs at least one value")
            if operator in ("Exists", "DoesNotExist") and checked:
                raise InputError(f"{where}.values: operator {operator} takes no values")
            requirements.append(Requirement(key, str(operator), frozenset(checked)))
    return Selector(tuple(requirements))
