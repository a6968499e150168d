"""Per-thread reused arrays for the cache-sized temporaries of the aggregation's hot loops.

Every block of every update needs a temporary or two (a staging copy, a widened BF16 or
float16 copy, a difference for the distance bound). A fresh array each time costs a page
fault per page and leaves the cache cold; one buffer per purpose, kept per thread (reader
threads run the same code beside the caller) and grown to the largest size asked for,
costs neither. One such pool, not one per call site, so that every temporary is sized and
kept the same way.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["ThreadBuffers"]


class ThreadBuffers:
    """``get(key, dtype, size)``: this thread's buffer for ``(key, dtype)``, ``size`` long."""

    def __init__(self) -> None:
        self._local = threading.local()

    def get(self, key: Hashable, dtype: npt.DTypeLike, size: int) -> np.ndarray[Any, Any]:
        bufs: dict[tuple[Hashable, np.dtype[Any]], np.ndarray[Any, Any]] | None = getattr(
            self._local, "bufs", None
        )
        if bufs is None:
            bufs = self._local.bufs = {}
        slot = (key, np.dtype(dtype))
        buf = bufs.get(slot)
        if buf is None or buf.size < size:
            buf = bufs[slot] = np.empty(size, dtype=slot[1])
        return buf[:size]
