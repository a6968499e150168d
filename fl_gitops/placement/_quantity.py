"""Kubernetes resource quantities ("500m", "64Gi", "1e3") as exact numbers.

OCM's resource prioritizers read ``status.allocatable`` and ``status.capacity`` of a
ManagedCluster, and its CEL library compares quantities; both follow the Kubernetes
quantity grammar, which this module parses without floating-point surprises.
"""

from __future__ import annotations

import re
from fractions import Fraction
from functools import lru_cache

__all__ = ["parse_quantity"]

# The grammar of the ManagedCluster CRD's allocatable/capacity pattern, with groups.
_QUANTITY = re.compile(
    r"^(?P<sign>[+-])?(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:(?P<binary>[KMGTPE]i)|(?P<decimal>[numkMGTPE])"
    r"|[eE](?P<exponent>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)))?$"
)

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 10**3),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}


# Kubernetes keeps a quantity within int64 at nano scale (about 9.2e18 down to 1e-9): an
# exponent beyond this range is no real quantity, and 10**1e9 would take the process's
# whole life to compute. Digits are bounded likewise.
_MAX_EXPONENT = 64
_MAX_DIGITS = 64


def parse_quantity(value: object) -> Fraction:
    """Parse a Kubernetes quantity into an exact fraction.

    Args:
        value: a quantity string such as ``"15500m"``, ``"64Gi"`` or ``"1e3"``, or a
            plain int/float as YAML may give it.

    Returns:
        The quantity as a :class:`fractions.Fraction` (``"500m"`` is ``1/2``).

    Raises:
        ValueError: the value is not a Kubernetes quantity; the message quotes it.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a quantity")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        return Fraction(value)
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a quantity")
    return _parse_text(value)


@lru_cache(maxsize=4096)
def _parse_text(value: str) -> Fraction:
    """A quantity string, parsed once: a fleet repeats a few ("7500m", "32Gi") per cluster,
    and building Fractions was most of checking a 10,000-cluster inventory."""
    match = _QUANTITY.match(value.strip())
    if match is None or len(match["number"]) > _MAX_DIGITS:
        raise ValueError(f"{value[:80]!r} is not a quantity (expected e.g. 500m, 4, 16Gi, 1e3)")
    number = Fraction(match["number"])
    if match["sign"] == "-":
        number = -number
    if match["binary"]:
        return number * _BINARY[match["binary"]]
    if match["decimal"]:
        return number * _DECIMAL[match["decimal"]]
    if match["exponent"] is not None:
        exponent = Fraction(match["exponent"])
        if exponent.denominator != 1:
            raise ValueError(f"{value!r} has a fractional exponent")
        if abs(exponent) > _MAX_EXPONENT:
            raise ValueError(
                f"{value[:80]!r}: exponent out of range (expected at most "
                f"{_MAX_EXPONENT} either way, as a Kubernetes quantity is)"
            )
        return number * Fraction(10) ** int(exponent)
    return number
