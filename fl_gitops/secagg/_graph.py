"""Who masks with whom: each cluster's neighbours in a round (SecAgg+'s sparse graph).

Every cluster and the hub derive the same graph from the round's key roster and a public
seed: the clusters placed on a ring in an order the seed shuffles, each joined to the
``k/2`` before and after it (a Harary graph), or to everyone when ``k >= n - 1``. With
``k`` much smaller than ``n`` a round costs each cluster ``O(k)`` instead of ``O(n)``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = ["neighbours"]


def neighbours(roster: Sequence[str], k: int, seed: bytes) -> dict[str, tuple[str, ...]]:
    """Each cluster's neighbours, sorted; symmetric (``v`` in ``N(u)`` iff ``u`` in ``N(v)``)."""
    names = sorted(set(roster))
    n = len(names)
    if k >= n - 1:
        return {u: tuple(v for v in names if v != u) for u in names}
    ring = sorted(names, key=lambda c: hashlib.sha256(seed + c.encode()).digest())
    half = max(1, k // 2)
    out: dict[str, set[str]] = {u: set() for u in names}
    for i, u in enumerate(ring):
        for step in range(1, half + 1):
            v = ring[(i + step) % n]
            out[u].add(v)
            out[v].add(u)
    return {u: tuple(sorted(vs)) for u, vs in out.items()}
