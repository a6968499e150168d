"""What lets a shard combine its slice in bounded memory: the sub-slice size, the budget of
the sum it folds while it checks, the prior state read slice-wise, the new state streamed.

Why: a shard that keeps a float64 value for every element of its slice from its first
read to its last write holds 8 bytes an element: twice the slice of a float32 model, four
times the slice of a 16-bit one, above issue 12's "(model / N) x 3 plus a constant". So the
combine walks its slice in sub-slices of at most :data:`SUBSLICE_ELEMENTS` elements, each
combined, finished and written (model bytes and state) before the next, and phase 1 folds
the sum only over a prefix of the slice whose float64 fits :data:`FOLD_SHARE` times the
slice's own bytes (the whole slice for float32 and wider; half of it for F16 and BF16); the
rest is read again in the combine, sub-slice by sub-slice. Every step is elementwise (the
weighted sum adds the updates in cluster order per element, a median sorts a column, a
server step works per element, DP's noise is one generator's stream in element order), so
where a sub-slice ends changes no byte.
"""

from __future__ import annotations

import contextlib
import hashlib
import tempfile
from collections.abc import Mapping
from typing import IO, Any

import numpy as np

from fl_gitops.aggregate._engine import state_views
from fl_gitops.aggregate.strategies.base import F64, Plan
from fl_gitops.tensors import Header, Layout, values_f64

__all__ = [
    "FOLD_SHARE",
    "SUBSLICE_ELEMENTS",
    "StateViews",
    "StateWriter",
    "fold_elements",
    "subslice_elements",
]

# A sub-slice's float64 values are at most 8 MiB: large enough that each update's range
# read per sub-slice is the chunk read phase 1 makes (2^20 elements), small against any
# slice worth sharding. A small slice walks in smaller ones, their float64 at most 1/16
# of the slice's bytes (down to 2^16 elements), so that the walk's own memory, and what a
# read holds beside phase 1's fold, stay a fraction of the slice too: a server step's
# temporaries are about eight sub-slices of float64 (FedAdam's shard at K = 24 x 25 MB
# F16 peaked at 2.96x its slice with 1/8, 2.73x with 1/16; FedAvg's the same, 2.76x).
SUBSLICE_ELEMENTS = 1 << 20
SUBSLICE_SHARE = 16
SUBSLICE_MIN = 1 << 16

# Phase 1's folded sum may hold at most this many times the slice's own bytes in float64:
# with the sub-slice's constant, a shard then peaks near 2x its slice (issue 12: at most 3x
# plus a constant). Float32 slices fold whole (8 bytes an element: 2x), as before; 16-bit
# ones fold their first half and read the second half again to combine it.
FOLD_SHARE = 2


def subslice_elements(slice_bytes: int) -> int:
    """The sub-slice a shard walks a slice of ``slice_bytes`` in: a power of two of
    elements, at most :data:`SUBSLICE_ELEMENTS`, at least :data:`SUBSLICE_MIN`, and between
    those, as many as fit 1/16 of the slice's bytes in float64."""
    share = max(1, slice_bytes // (8 * SUBSLICE_SHARE))
    return max(SUBSLICE_MIN, min(SUBSLICE_ELEMENTS, 1 << (share.bit_length() - 1)))


def fold_elements(slice_bytes: int, budget: int | None) -> int:
    """How many leading elements of a slice phase 1 folds: as many float64 values as fit
    ``budget`` bytes (None: :data:`FOLD_SHARE` times the slice's ``slice_bytes``)."""
    limit = FOLD_SHARE * slice_bytes if budget is None else budget
    return max(0, limit) // 8


class StateViews:
    """A strategy's prior state as views into its bytes, each tensor flat, converted to
    float64 only a sub-slice at a time (``load_state`` converts the whole model's state: 8
    bytes an element for each family, where a shard needs only its slice).

    Checked as ``load_state`` checks it, with its messages.

    Raises:
        StoreError: the bytes are not a state file of this strategy for this model.
    """

    def __init__(self, data: bytes | None, plan: Plan, base: Header) -> None:
        self._views = state_views(data, plan, base)

    def __bool__(self) -> bool:
        return bool(self._views)

    def values(self, key: str, start: int, stop: int) -> F64 | None:
        """Elements ``[start, stop)`` of tensor ``key`` (flat) in float64; None when the
        state has no such tensor (the first round, or a family the prior did not hold)."""
        view = self._views.get(key)
        return None if view is None else values_f64(view[start:stop])


class StateWriter:
    """A shard's part of the new state, written as its sub-slices finish, never all in
    memory: each family's values go to a spool file (on local disk, in the order they
    come), and :meth:`write_to` then sends the safetensors file (the header, then each
    tensor's bytes from its spool) to a sink: the bytes ``serialize`` would give.
    """

    def __init__(self) -> None:
        self._spools: dict[str, IO[bytes]] = {}
        # key -> (family, dtype, elements, offset in its spool), in the order first written
        self._entries: dict[str, tuple[str, np.dtype[Any], int, int]] = {}
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> StateWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def add(self, family: str, name: str, values: np.ndarray[Any, Any]) -> None:
        """Append ``values`` (flat, the state's dtype) to tensor ``family/name``, whose
        parts must come in order and back to back."""
        key = f"{family}/{name}"
        spool = self._spools.get(family)
        if spool is None:
            # Closed (and so deleted) by the writer's exit stack.
            spool = tempfile.TemporaryFile(prefix="fl-gitops-state-")  # noqa: SIM115
            self._stack.callback(spool.close)
            self._spools[family] = spool
        entry = self._entries.get(key)
        if entry is None:
            entry = (family, values.dtype, 0, spool.tell())
        elif entry[1] != values.dtype:
            raise ValueError(f"state {key!r}: parts of dtypes {entry[1]} and {values.dtype}")
        spool.write(memoryview(np.ascontiguousarray(values).view(np.uint8)))  # type: ignore[arg-type]
        self._entries[key] = (entry[0], entry[1], entry[2] + values.size, entry[3])

    def shapes(self) -> dict[str, tuple[np.dtype[Any], tuple[int, ...]]]:
        return {k: (e[1], (e[2],)) for k, e in self._entries.items()}

    def write_to(self, sink: Any, metadata: Mapping[str, str]) -> str:
        """The state file into ``sink`` (``write(bytes)``); returns its ``sha256:<hex>``."""
        layout = Layout.plan(self.shapes(), metadata)
        h = hashlib.sha256(layout.header)
        sink.write(layout.header)
        for key in sorted(self._entries):
            family, dtype, size, offset = self._entries[key]
            spool = self._spools[family]
            spool.seek(offset)
            left = size * dtype.itemsize
            while left:
                data = spool.read(min(left, 8 << 20))
                if not data:
                    raise OSError(f"state spool of {key!r} ended early")
                h.update(data)
                sink.write(data)
                left -= len(data)
        return "sha256:" + h.hexdigest()
