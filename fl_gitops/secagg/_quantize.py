"""Changes to the model as integers on the grid of ``_params``, and the mean back."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["dequantize_mean", "quantize"]

F64 = np.ndarray[Any, np.dtype[np.float64]]
U64 = np.ndarray[Any, np.dtype[np.uint64]]


def quantize(change: np.ndarray[Any, Any], clip_range: float, levels: int, weight: int) -> U64:
    """``weight * q`` with ``q = round((clip(change) + c) * L / 2c)`` in ``0..L``.

    Rounded to the nearest level (half to even, as numpy rounds): deterministic, so that a
    cluster's masked input is a function of its update. A NaN is refused by the update's
    own checks before this; here it would clip to the bound.
    """
    c = float(clip_range)
    scaled = (np.clip(np.nan_to_num(change.astype(np.float64), nan=0.0), -c, c) + c) * (
        levels / (2.0 * c)
    )
    q: U64 = np.rint(scaled).astype(np.uint64)
    np.minimum(q, np.uint64(levels), out=q)
    q *= np.uint64(weight)
    return q


def dequantize_mean(total: U64, weight_total: int, clip_range: float, levels: int) -> F64:
    """The weighted mean change from the unmasked sum ``Σ wᵢ qᵢ`` (no wrap, by ``levels``)."""
    c = float(clip_range)
    mean_q = total.astype(np.float64) / float(weight_total)
    return mean_q * (2.0 * c / levels) - c
