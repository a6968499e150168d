"""The arithmetic strategies share, written once: the weighted sum, the clip, the NaN guard.

Every function here fixes its order of float64 operations, element by element, so that a
sum built from any grouping of the updates, any chunk size or any slice of the tensors
gives the same bytes: ``acc = 0``, then ``acc += wᵢ·ũᵢ`` for each update in cluster order,
where ``ũ = s·u + (1 − s)·base`` for an update clipped by the factor ``s``. The engine uses
:func:`add_weighted` for the sum it builds while it checks the updates, and the mean-based
strategies use it (through :func:`weighted_sum`) on one slice of the updates side by side:
the same arithmetic either way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from fl_gitops.tensors._bf16 import widen_f16
from fl_gitops.tensors._buffers import ThreadBuffers

__all__ = [
    "BLOCK",
    "add_weighted",
    "clip_scale",
    "distance_scratch",
    "finite",
    "squared_distance",
    "squared_distance_bound",
    "weighted_sum",
    "write_tensor",
]

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]

# The sum works in blocks this size (float64: 512 KB), so its temporary stays in cache.
BLOCK = 1 << 16


def add_weighted(
    segment: F64,
    rows: Sequence[np.ndarray[Any, Any]],
    weights: Sequence[float],
    tmp: F64,
    scales: Sequence[float] | None = None,
    base: np.ndarray[Any, Any] | None = None,
    distances: list[float] | None = None,
    scratch: np.ndarray[Any, Any] | None = None,
    in_cache: bool = False,
) -> set[int]:
    """``segment += wᵢ·ũᵢ`` for each row in order, one cache-sized block at a time.

    Args:
        segment: the float64 accumulator for these elements.
        rows: each update's values there (any dtype), in cluster order.
        weights: each row's weight.
        tmp: float64 scratch of at least ``min(len(segment), BLOCK)`` elements.
        scales: each row's clip factor ``s`` (None: none clipped); a row with ``s != 1``
            adds ``w·(s·u + (1 − s)·base)``, the factor applied in the base's own dtype
            (float32 for a float16 base).
        base: the global model's values there, needed when a row is clipped or measured
            (float16 is read in float32: :func:`_at_least_f32`).
        distances: if given, ``distances[i] += ‖rowᵢ − base‖²`` over these elements
            (:func:`squared_distance_bound`, in ``scratch``), taken as each row's block is
            first read, so that its sum reads it from cache: the influence bound's measure
            at the least cost. The sum itself is not touched.
        scratch: for ``distances``: see :func:`distance_scratch`.
        in_cache: the rows are already cache-resident copies (BF16 blocks just widened):
            no staging copy before the widening multiply.

    Returns:
        The indices of the floating rows that hold a NaN or an Inf. Once a block holds every
        row's ``w·ũ``, its sum is finite iff no row put a NaN or an Inf there (the block was
        finite before: ``NaN + y``, ``±Inf + y`` and ``Inf − Inf`` are never finite); the
        exact per-row check runs only when it is not, to name the row, so a finite sum too
        large for float64 is never mistaken for NaN.
    """
    bad: set[int] = set()
    floating = bool(rows) and rows[0].dtype.kind == "f"
    with np.errstate(over="ignore", invalid="ignore"):  # Inf − Inf is expected, and caught
        for start in range(0, segment.size, BLOCK):
            block = segment[start : start + BLOCK]
            t = tmp[: block.size]
            if distances is not None:
                assert base is not None and scratch is not None
                b = base[start : start + BLOCK]
                d = scratch[: block.size]
            clip_base = None  # the clip's base term, read (float16 widened) once a block
            for i, (row, w) in enumerate(zip(rows, weights, strict=True)):
                part = row[start : start + BLOCK]
                s = 1.0 if scales is None else scales[i]
                # The row's block comes from memory once, by a plain same-type loop (the
                # distance's subtraction, or a copy into a cache-resident stage), and the
                # widening multiply then reads it from cache: a widening multiply straight
                # from memory ran 20% slower than copy-then-widen, and measuring after the
                # sum 28% slower than measuring first (24 rows of 2^22 float32 in blocks of
                # 2^16, numpy 2 on this machine's AVX-512 cores; the same bytes either way).
                if distances is not None:
                    # squared_distance_bound, inlined: the same operations.
                    _difference(part, b, d)
                    distances[i] += float(np.dot(d, d))
                elif part.dtype != np.float64 and not in_cache:
                    part = _staged(part)
                if s != 1.0:
                    assert base is not None
                    # A clipped update: base + s·(u − base) = s·u + (1 − s)·base.
                    np.multiply(part, s, out=t, dtype=np.float64)
                    if clip_base is None:
                        clip_base = _at_least_f32(base[start : start + BLOCK])
                    t += (1.0 - s) * clip_base
                    t *= w
                else:
                    np.multiply(part, w, out=t, dtype=np.float64)
                np.add(block, t, out=block)
            if floating and not math.isfinite(float(block.sum())):
                for i, row in enumerate(rows):
                    if i not in bad and not np.isfinite(row[start : start + BLOCK]).all():
                        bad.add(i)
    return bad


_buffers = ThreadBuffers()


def _staged(part: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """``part`` copied into this thread's reused buffer of its dtype (one block at most)."""
    out = _buffers.get("stage", part.dtype, part.size)
    np.copyto(out, part)
    return out


def weighted_sum(
    values: F64,
    weights: Sequence[float],
    scales: Sequence[float] | None = None,
    base: np.ndarray[Any, Any] | None = None,
) -> F64:
    """Σ wᵢ·ũᵢ over the rows of a K x c slice, in row order (see :func:`add_weighted`)."""
    out = np.zeros(values.shape[1], dtype=np.float64)
    tmp = np.empty(min(values.shape[1], BLOCK), dtype=np.float64)
    add_weighted(out, list(values), weights, tmp, scales, base)
    return out


def clip_scale(norm: float | None, clip: float) -> float:
    """The factor that brings an update's distance to the global model down to ``clip``."""
    return clip / norm if norm is not None and norm > clip else 1.0


def squared_distance(chunk: np.ndarray[Any, Any], base: np.ndarray[Any, Any]) -> float:
    """‖chunk − base‖² in float64: one slice's part of an update's squared L2 distance."""
    d = chunk.astype(np.float64) - base
    return float(np.dot(d, d))


def squared_distance_bound(
    chunk: np.ndarray[Any, Any], base: np.ndarray[Any, Any], out: np.ndarray[Any, Any]
) -> float:
    """‖chunk − base‖², cheaply, for an influence bound: one slice's part of it.

    The difference is taken in ``out`` (scratch of at least ``chunk.size`` elements, of
    the chunk's float type or float32 if narrower, see :func:`distance_scratch`) and
    reduced by BLAS in that precision: about a quarter of :func:`squared_distance`'s cost,
    so that the bound can run on every update in the pass that hashes and sums it. Good to
    about 1e-6 relative, which a bound that is a multiple of the round's median does not
    notice; the same on one machine, and (as every BLAS dot, the DP clip's norm too) it may
    differ in its last bits on another CPU. An overflow gives ``inf`` (an update that far
    is refused; the caller ignores the warning) and NaN gives NaN (the value check refuses
    those).
    """
    d = out[: chunk.size]
    _difference(chunk, base, d)
    return float(np.dot(d, d))


def _difference(
    chunk: np.ndarray[Any, Any], base: np.ndarray[Any, Any], d: np.ndarray[Any, Any]
) -> None:
    """``d = chunk − base``, as the bound takes it: float16 through float32."""
    if chunk.dtype == np.float16 or base.dtype == np.float16:
        _difference_f16(chunk, base, d)
    else:
        np.subtract(chunk, base, out=d)


def _difference_f16(chunk: np.ndarray[Any, Any], base: np.ndarray[Any, Any], d: F32) -> None:
    """``d = chunk − base`` in float32, float16 operands widened exactly first.

    numpy subtracts float16 arrays element by element, converting each operand and rounding
    the result back to float16, at a fifth of float32's speed even with the result cast:
    widened by table and subtracted in float32, the difference is 3.5x cheaper (65,536
    elements: 100 us against 344 us here) and exact (float16's is exact only for values
    within a factor of two of each other, as an update's and the model's mostly are).
    """
    if chunk.dtype == np.float16:
        widen_f16(chunk, d)
        chunk = d
    if base.dtype == np.float16:
        base = widen_f16(base, _f16_stage(base.size))
    np.subtract(chunk, base, out=d)


def _at_least_f32(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """float16 values widened (exactly) to float32, anything else as it is.

    ``(1 − s)·base`` is taken in the base's dtype, and float16's is too coarse for it: the
    factor rounded to 11 bits and every product rounded again put the clipped update about
    5e-4·‖base‖ away from where the clip puts it, more than the clip itself for a large
    model; in float32 that is 6e-8·‖base‖, as for a float32 model (and a BF16 one, whose
    values are read in float32). It is also 20x faster than numpy's float16 arithmetic.
    """
    if values.dtype != np.float16:
        return values
    return widen_f16(values, _buffers.get("clip", np.float32, values.size))


def _f16_stage(size: int) -> F32:
    """This thread's reused float32 buffer for a widened float16 operand."""
    return _buffers.get("f16", np.float32, size)


def distance_scratch(dtype: np.dtype[Any], size: int) -> np.ndarray[Any, Any]:
    """Scratch for :func:`squared_distance_bound` over chunks of ``dtype``."""
    return np.empty(size, dtype=np.result_type(dtype, np.float32))


def finite(chunk: np.ndarray[Any, Any]) -> bool:
    """True when a chunk holds no NaN and no Inf."""
    # A sum is non-finite whenever an element is; confirm, since a float32 sum of large
    # finite values can overflow.
    return math.isfinite(float(chunk.sum())) or bool(np.isfinite(chunk).all())


def write_tensor(view: np.ndarray[Any, Any], values: np.ndarray[Any, Any]) -> None:
    """Round float64 values once into the model's dtype (booleans and integers rounded)."""
    if view.dtype.kind == "b":
        view[...] = values >= 0.5
    elif view.dtype.kind in "iu":
        info = np.iinfo(view.dtype)
        view[...] = np.clip(np.rint(values), info.min, info.max)
    else:
        view[...] = values
