"""BF16 (bfloat16) without a numpy dtype for it: the top half of an IEEE float32.

numpy has no bfloat16, and the package that adds one (ml_dtypes) costs 0.8 s of start-up
in every process that imports it, so none is used. A BF16 tensor is held as :data:`BF16`,
a 2-byte opaque numpy dtype: its bytes are the file's bytes (hashed, sliced, copied and
written as they are), and numpy refuses any arithmetic on it, so no value is ever read
as an integer by mistake. Values come out only through :func:`widen` (to float32: exact)
and go in only through :func:`narrow` (rounded once, to nearest, ties to even).

Where an update's values are read for arithmetic, the widening is done a block at a time
into a reused buffer (:class:`Widener`), so the float32 copy is the size of a cache-resident
block, never of the model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from fl_gitops.tensors._buffers import ThreadBuffers

__all__ = [
    "BF16",
    "Widener",
    "is_bf16",
    "narrow",
    "narrow_into",
    "value_dtype",
    "values_f64",
    "widen",
    "widen_f16",
]

# Opaque 2-byte elements: a BF16 tensor's bytes, with no arithmetic of their own.
BF16: np.dtype[Any] = np.dtype("V2")

_QUIET = np.uint32(0x0040)  # a BF16 NaN's quiet bit (the top bit of its 7-bit fraction)


def is_bf16(dtype: np.dtype[Any]) -> bool:
    """Whether ``dtype`` is the stand-in for BF16."""
    return dtype == BF16


def value_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """The numpy dtype a tensor's values are read in: float32 for BF16, else its own."""
    return np.dtype(np.float32) if dtype == BF16 else dtype


def widen(
    bits: np.ndarray[Any, Any], out: npt.NDArray[np.float32] | None = None
) -> npt.NDArray[np.float32]:
    """BF16 values (or their uint16 bits) as float32: exact, NaN payloads and signs kept.

    float16 values are widened too (exactly, by :func:`widen_f16`), so that a caller can
    widen every 16-bit tensor the same way."""
    if bits.dtype == np.float16:
        return widen_f16(bits, out)
    u16 = bits.view(np.uint16)
    if out is None:
        out = np.empty(u16.shape, dtype=np.float32)
    wide = out.view(np.uint32)
    np.left_shift(u16, 16, out=wide, dtype=np.uint32)
    return out


_f16_table: npt.NDArray[np.float32] | None = None


def widen_f16(
    values: np.ndarray[Any, Any], out: npt.NDArray[np.float32] | None = None
) -> npt.NDArray[np.float32]:
    """float16 values as float32, looked up in a table of all 65,536 (numpy's own casts).

    numpy converts float16 element by element: its cast to float32 ran at 0.8 ns an element
    here and a float16 subtraction at 5 ns (each operand converted, the result rounded back
    to float16); a table look-up (256 KB, built once) runs at 0.7 ns and gives the same
    float32 values, so arithmetic on float16 updates is done on these, at float32 speed.
    """
    global _f16_table
    if _f16_table is None:
        every = np.arange(65536, dtype=np.uint32).astype(np.uint16).view(np.float16)
        _f16_table = every.astype(np.float32)
    if out is None:
        out = np.empty(values.shape, dtype=np.float32)
    np.take(_f16_table, values.view(np.uint16), out=out)
    return out


def values_f64(arr: np.ndarray[Any, Any], block: int = 1 << 16) -> npt.NDArray[np.float64]:
    """A tensor's values as a new float64 array; BF16 widened a block at a time, so that
    no float32 copy of the whole tensor is made beside the float64 one."""
    if arr.dtype != BF16:
        return arr.astype(np.float64)
    out = np.empty(arr.shape, dtype=np.float64)
    flat_in = arr.reshape(-1)
    flat = out.reshape(-1)
    buf = np.empty(min(block, max(flat.size, 1)), dtype=np.float32)
    with np.errstate(invalid="ignore"):  # a signalling NaN stays a NaN, quietly
        for start in range(0, flat.size, block):
            part = flat_in[start : start + block]
            flat[start : start + part.size] = widen(part, buf[: part.size])
    return out


def _round_to_odd_f32(values: npt.NDArray[np.float64]) -> npt.NDArray[np.uint32]:
    """float64 values rounded to float32 by round-to-odd, as float32 bits.

    Round-to-odd keeps the value when it is a float32 and otherwise takes the float32 of
    the two around it whose last bit is 1: that is, truncate toward zero and set the last
    bit when anything was dropped. The cast below rounds to nearest; when that went away
    from zero (or to Inf), the truncation is one float32 below it in magnitude, which is
    the bits minus one (float32 bits are ordered like magnitudes within a sign). A NaN
    compares unequal and gets its last bit set: still a NaN, which is all that is kept.
    Written as whole-array operations, no masks: ten passes over a block in cache.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        f = values.astype(np.float32)
        back = np.abs(f.astype(np.float64))
        mag = np.abs(values)
        away = back > mag
        inexact = back != mag
    bits = f.view(np.uint32)
    np.subtract(bits, away, out=bits, casting="unsafe")
    np.bitwise_or(bits, inexact, out=bits, casting="unsafe")
    return bits


def _rne_bf16(bits: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint16]:
    """float32 bits rounded to BF16 bits, to nearest, ties to even; NaN stays a quiet NaN.

    Adding 0x7FFF plus the kept part's last bit and dropping the low half is round to
    nearest even on the bits: a carry out of the fraction steps the exponent, which is
    the next BF16 up (and past the largest finite one, Inf, the right result of an
    overflow). Inf's low half is zero, so it stays Inf. A NaN's bits could carry into
    the sign or round its payload to zero (Inf), so NaNs are truncated instead and their
    quiet bit set.
    """
    rounded = bits >> np.uint32(16)
    rounded &= np.uint32(1)
    rounded += np.uint32(0x7FFF)
    rounded += bits
    rounded >>= np.uint32(16)
    mag = bits & np.uint32(0x7FFFFFFF)
    nan = mag > np.uint32(0x7F800000)
    if nan.any():
        rounded[nan] = (bits[nan] >> np.uint32(16)) | _QUIET
    return rounded.astype(np.uint16)


def narrow(values: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """float32 or float64 values rounded once to BF16 (to nearest, ties to even).

    A float64 is not rounded to float32 by the usual cast first: two roundings to nearest
    are not one (1 + 2⁻⁸ + 2⁻⁴⁰ would become the tie 1 + 2⁻⁸ in float32, then 1 by ties to
    even, where it rounds up to 1 + 2⁻⁷ directly). It goes to float32 by round-to-odd
    instead, and round-to-odd into a format with at least two more bits of precision and
    the same exponent range, followed by round to nearest, is exactly the direct rounding
    to nearest (Boldo & Melquiond, "Emulation of FMA and correctly rounded sums: proved
    algorithms using rounding to odd", IEEE TC 2008): float32 has 24 bits against BF16's 8
    and the same exponents, subnormals included, and a float64 beyond float32's range is
    beyond BF16's overflow threshold too, so both give Inf. That costs a few vector passes,
    against a bit-by-bit rounding of the float64 fields with its own exponent clamping for
    BF16's subnormals; the property test in tests/tensors/test_bf16.py checks it against
    exact rational rounding, ties, subnormals, the largest finite value, overflow and NaN.
    """
    arr = np.asarray(values)
    if arr.dtype == np.float64:
        bits = _round_to_odd_f32(arr)
    elif arr.dtype == np.float32:
        bits = arr.view(np.uint32)
    else:
        bits = _round_to_odd_f32(arr.astype(np.float64))
    return _rne_bf16(bits).view(BF16)


# narrow's dozen temporaries stay in cache at this size: on this machine 2^15 elements
# rounded 350-440 M/s, 2^14 300 M/s, 2^16 100 M/s, a whole 2^22 array at once 83 M/s.
NARROW_BLOCK = 1 << 15


def narrow_into(
    out: np.ndarray[Any, Any], values: np.ndarray[Any, Any], block: int = NARROW_BLOCK
) -> None:
    """Write ``values`` (float, ``out``'s shape) rounded to BF16 into ``out``, ``block``
    elements at a time so that the temporaries stay in cache."""
    flat_out = out.reshape(-1)
    flat = values.reshape(-1)
    for start in range(0, flat.size, block):
        flat_out[start : start + block] = narrow(flat[start : start + block])


class Widener:
    """Per-thread reused float32 buffers for widening BF16 (or float16) a block at a time.

    ``get(i, bits)`` widens into buffer ``i`` (one per row read side by side), grown to the
    largest block asked for; a block is at most the summing block, so these stay small.
    """

    def __init__(self) -> None:
        self._buffers = ThreadBuffers()

    def get(self, i: int, bits: np.ndarray[Any, Any]) -> npt.NDArray[np.float32]:
        return widen(bits, self._buffers.get(i, np.float32, bits.size))
