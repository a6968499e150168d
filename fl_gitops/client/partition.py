"""Deterministic ways to split one labelled dataset over the clusters of a roster.

The built-in data sets are the same on every cluster; what makes a cluster's data its own
is the part it takes, chosen by its place in the roster (``rosterIndex`` of ``rosterSize``).
Every cluster computes the whole split and keeps its part, so the split must be a pure
function of (labels, partition config, roster size): no clock, no global random state.
The parts are disjoint, cover every example, and none is empty.

- ``iid``: a seeded shuffle cut into near-equal parts.
- ``dirichlet``: per class, proportions drawn from Dir(α); small α gives skewed label
  mixes (Hsu, Qi and Brown 2019, "Measuring the effects of non-identical data
  distribution for federated visual classification").
- ``shards``: sort by label, cut into ``rosterSize × shardsPerCluster`` shards, deal
  ``shardsPerCluster`` to each cluster (McMahan et al. 2017, "Communication-efficient
  learning of deep networks from decentralized data").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from fl_gitops.errors import InputError

__all__ = ["dirichlet_parts", "iid_parts", "part_for", "partition", "shard_parts"]


def _rng(seed: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(seed))


def _check_enough(n: int, parts: int, what: str) -> None:
    if parts < 1:
        raise InputError(f"partition: expected at least 1 cluster, got {parts}")
    if n < parts:
        raise InputError(f"partition: {n} examples cannot give each of {parts} {what} one")


def iid_parts(n: int, num_parts: int, seed: int = 0) -> list[np.ndarray]:
    """Shuffle ``range(n)`` with ``seed`` and cut it into ``num_parts`` near-equal parts.

    Returns:
        Sorted int64 index arrays, one per part.

    Raises:
        InputError: fewer examples than parts.
    """
    _check_enough(n, num_parts, "clusters")
    order = _rng(seed).permutation(n)
    return [np.sort(p).astype(np.int64) for p in np.array_split(order, num_parts)]


def dirichlet_parts(y: np.ndarray, num_parts: int, alpha: float, seed: int = 0) -> list[np.ndarray]:
    """Split by label with per-class proportions drawn from a symmetric Dirichlet(α).

    Every part gets at least one example: an empty part takes the last example of the
    largest part (a deterministic repair that matters only for tiny α).

    Returns:
        Sorted int64 index arrays, one per part.

    Raises:
        InputError: α not positive, or fewer examples than parts.
    """
    if not alpha > 0:
        raise InputError(f"partition: alpha: expected a number > 0, got {alpha}")
    y = np.asarray(y)
    _check_enough(len(y), num_parts, "clusters")
    rng = _rng(seed)
    chunks: list[list[np.ndarray]] = [[] for _ in range(num_parts)]
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        rng.shuffle(idx)
        p = rng.dirichlet(np.full(num_parts, float(alpha)))
        if not np.all(np.isfinite(p)) or p.sum() <= 0:  # underflow at tiny α
            p = np.zeros(num_parts)
            p[rng.integers(num_parts)] = 1.0
        cuts = np.floor(np.cumsum(p)[:-1] * len(idx)).astype(np.int64)
        for k, chunk in enumerate(np.split(idx, np.clip(cuts, 0, len(idx)))):
            chunks[k].append(chunk)
    parts = [np.sort(np.concatenate(c)).astype(np.int64) for c in chunks]
    for k in range(num_parts):
        if len(parts[k]) == 0:
            donor = max(range(num_parts), key=lambda j: (len(parts[j]), -j))
            parts[k] = parts[donor][-1:].copy()
            parts[donor] = parts[donor][:-1]
    return parts


def shard_parts(
    y: np.ndarray, num_parts: int, shards_per_part: int, seed: int = 0
) -> list[np.ndarray]:
    """Sort by label, cut into ``num_parts × shards_per_part`` shards, deal them out.

    Returns:
        Sorted int64 index arrays, one per part.

    Raises:
        InputError: fewer examples than shards.
    """
    y = np.asarray(y)
    n_shards = num_parts * shards_per_part
    _check_enough(len(y), n_shards, "shards")
    rng = _rng(seed)
    perm = rng.permutation(len(y))  # shuffle within each label before the stable sort
    order = perm[np.argsort(y[perm], kind="stable")]
    shards = np.array_split(order, n_shards)
    deal = rng.permutation(n_shards).reshape(num_parts, shards_per_part)
    return [np.sort(np.concatenate([shards[s] for s in row])).astype(np.int64) for row in deal]


def partition(y: np.ndarray, spec: Mapping[str, Any], num_parts: int) -> list[np.ndarray]:
    """Split examples with labels ``y`` into ``num_parts`` parts as ``spec`` says.

    Args:
        y: the labels of the data set being split.
        spec: the ``data.partition`` object: ``{"kind": "iid"|"dirichlet"|"shards", ...}``.
        num_parts: the roster size.

    Returns:
        One sorted index array per cluster.

    Raises:
        InputError: an unknown kind or options that cannot split this data.
    """
    kind = spec.get("kind", "iid")
    seed = int(spec.get("seed", 0))
    if kind == "iid":
        return iid_parts(len(y), num_parts, seed)
    if kind == "dirichlet":
        return dirichlet_parts(y, num_parts, float(spec.get("alpha", 0.5)), seed)
    if kind == "shards":
        return shard_parts(y, num_parts, int(spec.get("shardsPerCluster", 2)), seed)
    raise InputError(f"partition: kind: expected one of iid, dirichlet, shards, got {kind!r}")


def part_for(
    y: np.ndarray, spec: Mapping[str, Any], roster_index: int, roster_size: int
) -> np.ndarray:
    """The indices that the cluster at ``roster_index`` of ``roster_size`` trains on."""
    if not 0 <= roster_index < roster_size:
        raise InputError(
            f"partition: rosterIndex: expected 0 <= rosterIndex < {roster_size}, got {roster_index}"
        )
    return partition(y, spec, roster_size)[roster_index]
