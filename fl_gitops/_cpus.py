"""How many cores this process may really use: the affinity mask, cut to the cgroup's quota.

A reconcile or shard pod with ``resources.limits.cpu: 1`` on a 64-core node sees 64 cores
through ``os.cpu_count()`` and through its affinity mask (the limit is a CFS quota, not a
cpuset), so a pool sized by either would start 64 threads that the kernel then throttles
to one core's time, each waiting its turn at every period. The quota is what the pod paid
for, so thread pools are sized by it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ["usable_cores"]

# cgroup v2 names the quota in one file ("max 100000" when unlimited); v1 in two.
_V2 = Path("/sys/fs/cgroup/cpu.max")
_V1_QUOTA = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
_V1_PERIOD = Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us")


def _quota_cores(v2: Path = _V2, v1: tuple[Path, Path] = (_V1_QUOTA, _V1_PERIOD)) -> int | None:
    """The CFS quota in whole cores (rounded up: a limit of 1.5 cores keeps two busy half
    the time), or None when there is none or it cannot be read."""
    try:
        quota, _, period = v2.read_text().partition(" ")
    except OSError:
        try:
            quota, period = v1[0].read_text(), v1[1].read_text()
        except OSError:
            return None
    try:
        q, p = int(quota), int(period)
    except ValueError:  # "max": no limit
        return None
    if q <= 0 or p <= 0:  # v1's -1: no limit
        return None
    return max(1, math.ceil(q / p))


def usable_cores() -> int:
    """The cores this process can keep busy: its affinity mask, at most its CPU quota."""
    affinity = getattr(os, "sched_getaffinity", None)
    cores = len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)
    quota = _quota_cores()
    return max(1, min(cores, quota) if quota is not None else cores)
