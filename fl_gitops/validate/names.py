"""Kubernetes' rules for names, label keys and values, which no JSON schema states.

The schemas say ``metadata.name`` and label values are strings; the API server then
rejects a name with an upper-case letter or a label value with a newline. These checks
follow the rules Kubernetes documents (DNS-1123 labels and subdomains, qualified names,
label values) so that fl-gitops finds such a value before a cluster does. The blueprint
loader reuses them for the names a user types.

Each check takes a value and returns ``None`` when it is valid, or one sentence saying
what is wrong with it. Patterns are matched whole (``re.fullmatch``), so a trailing
newline never slips through.
"""

from __future__ import annotations

import json
import re

__all__ = [
    "check_annotation_key",
    "check_configmap_key",
    "check_dns1035_label",
    "check_dns1123_label",
    "check_dns1123_subdomain",
    "check_label_key",
    "check_label_value",
]

_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")
_CONFIGMAP_KEY = re.compile(r"(?!\.\.?\Z)[-._a-zA-Z0-9]+")  # and not "." or ".."

LABEL_MAX = 63
SUBDOMAIN_MAX = 253


def _quote(value: object) -> str:
    return json.dumps(value) if isinstance(value, str) else repr(value)


def _string(value: object) -> str | None:
    if isinstance(value, str):
        return None
    return f"{_quote(value)} is not a string"


def _too_long(value: str, limit: int) -> str | None:
    if len(value) > limit:
        return f"{_quote(value)} is {len(value)} characters long; at most {limit} are allowed"
    return None


def _check_shape(value: object, limit: int, pattern: re.Pattern[str], problem: str) -> str | None:
    """Not a string, longer than ``limit``, or not matching ``pattern`` whole: say which."""
    error = _string(value)
    if error is None:
        assert isinstance(value, str)
        error = _too_long(value, limit)
        if error is None and not pattern.fullmatch(value):
            error = f"{_quote(value)} {problem}"
    return error


def check_dns1123_label(value: str) -> str | None:
    """A DNS-1123 label: at most 63 lower-case letters, digits and '-', alphanumeric ends."""
    return _check_shape(
        value,
        LABEL_MAX,
        _DNS1123_LABEL,
        "is not a DNS-1123 label: use lower-case letters, digits and '-', "
        "starting and ending with a letter or digit",
    )


def check_dns1123_subdomain(value: str) -> str | None:
    """A DNS-1123 subdomain: at most 253 characters, dot-separated DNS-1123 labels."""
    return _check_shape(
        value,
        SUBDOMAIN_MAX,
        _DNS1123_SUBDOMAIN,
        "is not a DNS-1123 subdomain: use lower-case letters, digits, "
        "'-' and '.', each dot-separated part starting and ending with a letter or digit",
    )


def check_dns1035_label(value: str) -> str | None:
    """A DNS-1035 label (Service names): like a DNS-1123 label but starting with a letter."""
    return _check_shape(
        value,
        LABEL_MAX,
        _DNS1035_LABEL,
        "is not a DNS-1035 label: use lower-case letters, digits and '-', "
        "starting with a letter and ending with a letter or digit",
    )


def _check_qualified_name(value: object, what: str, *, fold_case: bool = False) -> str | None:
    error = _string(value)
    if error is not None:
        return error
    assert isinstance(value, str)
    prefix, slash, name = (value.lower() if fold_case else value).rpartition("/")
    if slash:
        if not prefix:
            return f"{_quote(value)} is not a valid {what}: the prefix before '/' is empty"
        if "/" in prefix:
            return f"{_quote(value)} is not a valid {what}: it has more than one '/'"
        prefix_error = check_dns1123_subdomain(prefix)
        if prefix_error is not None:
            return f"{_quote(value)} is not a valid {what}: its prefix {prefix_error}"
    if not name:
        return f"{_quote(value)} is not a valid {what}: the name part is empty"
    if len(name) > LABEL_MAX:
        return (
            f"{_quote(value)} is not a valid {what}: the name part is {len(name)} characters "
            f"long; at most {LABEL_MAX} are allowed"
        )
    if not _QUALIFIED_NAME.fullmatch(name):
        return (
            f"{_quote(value)} is not a valid {what}: the name part must use letters, digits, "
            "'-', '_' and '.', starting and ending with a letter or digit"
        )
    return None


def check_label_key(key: str) -> str | None:
    """A label key: an optional DNS-1123 subdomain prefix and '/', then a name of ≤63."""
    return _check_qualified_name(key, "label key")


def check_annotation_key(key: str) -> str | None:
    """An annotation key: the label key rules, applied to the key in lower case."""
    return _check_qualified_name(key, "annotation key", fold_case=True)


def check_label_value(value: str) -> str | None:
    """A label value: empty, or at most 63 letters, digits, '-', '_', '.', alphanumeric ends."""
    return _check_shape(
        value,
        LABEL_MAX,
        _LABEL_VALUE,
        "is not a valid label value: use letters, digits, '-', '_' and '.', "
        "starting and ending with a letter or digit",
    )


def check_configmap_key(key: str) -> str | None:
    """A ConfigMap data key: letters, digits, '-', '_' and '.', at most 253, not '.' or '..'."""
    return _check_shape(
        key,
        SUBDOMAIN_MAX,
        _CONFIGMAP_KEY,
        "is not a valid ConfigMap key: use letters, digits, '-', '_' and '.' (and not '.' or '..')",
    )
