"""Semantic-version comparison as OCM's CEL ``versionIsGreaterThan`` does it.

OCM parses both sides strictly (three numeric components, an optional ``v`` prefix,
optional pre-release and build parts) and compares them by SemVer 2.0 precedence.
Kubernetes versions such as ``v1.30.4+k3s1`` are valid; ``1.30`` is not.
"""

from __future__ import annotations

import re

__all__ = ["compare_versions"]

_SEMVER = re.compile(
    r"^\s*v?(?P<core>[0-9]+\.[0-9]+\.[0-9]+)"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?$"
)

_Key = tuple[tuple[int, int, int], tuple[tuple[int, int, str], ...] | None]


def _parse(text: str) -> _Key:
    match = _SEMVER.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a semantic version (expected e.g. v1.30.4)")
    parts = match["core"].split(".")
    for part in parts:
        if len(part) > 1 and part.startswith("0"):
            raise ValueError(f"{text!r} has a zero-prefixed version component")
    major, minor, patch = (int(p) for p in parts)
    pre: tuple[tuple[int, int, str], ...] | None = None
    if match["pre"] is not None:
        # Numeric identifiers sort before alphanumeric ones, numerically among themselves.
        pre = tuple(
            (0, int(ident), "") if ident.isdigit() else (1, 0, ident)
            for ident in match["pre"].split(".")
        )
    return (major, minor, patch), pre


def compare_versions(left: str, right: str) -> int:
    """Compare two semantic versions.

    Args:
        left: a version such as ``v1.30.4`` or ``1.30.4-rc.1``.
        right: the version to compare against.

    Returns:
        -1, 0 or 1 as ``left`` is lower than, equal to or greater than ``right``
        (build metadata is ignored).

    Raises:
        ValueError: either side is not a semantic version.
    """
    (core_l, pre_l), (core_r, pre_r) = _parse(left), _parse(right)
    if core_l != core_r:
        return -1 if core_l < core_r else 1
    if pre_l == pre_r:
        return 0
    if pre_l is None:
        return 1  # a release is greater than any of its pre-releases
    if pre_r is None:
        return -1
    return -1 if pre_l < pre_r else 1
