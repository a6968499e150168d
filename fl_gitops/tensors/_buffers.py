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

__all__ = ["LINE", "ThreadBuffers", "aligned_empty", "in_step"]


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


# The copy that moves a file's bytes into memory (the kernel's, and glibc's memcpy) runs
# at a fraction of its speed on some x86 cores when the destination sits a few bytes past
# the source within a cache line: 1.6 GB/s instead of 6 GB/s for a page-cache read into a
# buffer 16 bytes past the file offset's alignment, 1.7 against 25 GB/s for a 256 KB
# memcpy (AMD EPYC, `rep movsb`, measured on this project's machine). A fresh numpy
# array past the allocator's mmap threshold starts 16 bytes into a page, which is exactly
# that case for reads at page-aligned offsets. Buffers here start on a page boundary and
# hand out views whose address matches the file offset modulo a cache line, so that the
# kernel's copy of a read runs with source and destination in step. (Copies between
# arrays, such as the summing's staging copy, are not placed this way.)
LINE = 64
_PAGE = 4096


def aligned_empty(nbytes: int) -> np.ndarray[Any, Any]:
    """A uint8 array of ``nbytes + LINE`` bytes starting on a page boundary: room for
    :func:`in_step` to shift a view of up to ``nbytes`` by less than a cache line."""
    total = nbytes + LINE
    raw = np.empty(total + _PAGE, dtype=np.uint8)
    start = -raw.ctypes.data % _PAGE
    return raw[start : start + total]


def in_step(buf: np.ndarray[Any, Any], offset: int, nbytes: int) -> np.ndarray[Any, Any]:
    """``nbytes`` of ``buf`` (from :func:`aligned_empty`) whose address is congruent to
    ``offset`` (the file offset they will be read from) modulo a cache line."""
    pad = offset % LINE
    return buf[pad : pad + nbytes]
