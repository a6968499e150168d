"""Refuse a round whose ManifestWork the hub would refuse for its size.

OCM's webhook refuses a ManifestWork whose manifests add up to more than 500 KiB as it
counts them (``fl_gitops.validate.size``). The hub says so only when Argo CD syncs, after
the round is in Git; rendering is the place to say it, naming the cluster.

Rendering does not parse its own output back (at 10,000 clusters parsing is the slow
part), so only one work is measured exactly. Every work comes from one template, and
what differs between two of them (the cluster's name and place in the roster) changes
their YAML text and their JSON by the same number of bytes, give or take a few for
quoting. So the others are estimated from their text's length against the measured one,
and any work within ``MARGIN`` of the limit by that estimate is parsed and measured
exactly. A work found over the limit is always measured exactly for the message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from fl_gitops.errors import WorkTooLarge

__all__ = ["MARGIN", "check_work_sizes"]

#: How close to the limit an estimated size must come for the work to be measured.
MARGIN = 4096


def _measure(text: bytes) -> tuple[int, str, str]:
    """``(size, cluster, name)`` of one rendered ManifestWork, measured exactly."""
    from fl_gitops.validate.size import manifests_size

    work: Any = yaml.load(text, Loader=yaml.CSafeLoader)
    work = work if isinstance(work, Mapping) else {}
    meta = work.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    spec = work.get("spec")
    workload = spec.get("workload") if isinstance(spec, Mapping) else None
    manifests = workload.get("manifests") if isinstance(workload, Mapping) else None
    size = manifests_size(manifests) if isinstance(manifests, list) else 0
    return size, str(meta.get("namespace", "")), str(meta.get("name", ""))


def check_work_sizes(works: Mapping[str, bytes], *, round_: int) -> None:
    """Raise when any rendered ManifestWork is over OCM's manifest size limit.

    Args:
        works: each rendered ManifestWork file's bytes, by path, in roster order.
        round_: the round being rendered (for the message).

    Raises:
        WorkTooLarge: the first work over the limit, by path; the message names its
            cluster and size and how many other clusters are over too.
    """
    from fl_gitops.validate.size import MANIFEST_LIMIT

    if not works:
        return
    paths = list(works)
    sample = works[paths[0]]
    sample_size, _, _ = _measure(sample)
    over: list[tuple[str, int, str, str]] = []
    for path in paths:
        text = works[path]
        estimate = sample_size + len(text) - len(sample)
        if estimate <= MANIFEST_LIMIT - MARGIN:
            continue
        if estimate > MANIFEST_LIMIT + MARGIN and over:
            over.append((path, estimate, "", ""))  # surely over; counted, not measured
            continue
        size, cluster, name = _measure(text)
        if size > MANIFEST_LIMIT:
            over.append((path, size, cluster, name))
    if not over:
        return
    path, size, cluster, name = over[0]
    others = len(over) - 1
    more = ""
    if others == 1:
        more = "; so is the work of 1 more cluster"
    elif others:
        more = f"; so are the works of {others} more clusters"
    raise WorkTooLarge(
        f"round {round_}: the hub would refuse ManifestWork {name} for cluster {cluster} "
        f"({path}): its manifests are {size} bytes as OCM counts them, over the limit of "
        f"{MANIFEST_LIMIT} bytes (500 KiB){more}. Make what the blueprint puts into every "
        "work smaller: spec.client.env, the labels, and the model, data and strategy "
        "options (they go into the round config)",
        cluster=cluster,
        size=size,
        limit=MANIFEST_LIMIT,
    )
