"""A cluster's own clipping of its update, for client-side DP (``dp.clipping: client``).

Andrew, Thakkar, McMahan, Ramaswamy, "Differentially Private Learning with Adaptive
Clipping", NeurIPS 2021, section 3: each client clips its update to the round's clip C and
reports one bit, whether it was within C, which is all adaptive clipping needs to move C
toward a quantile of the norms. Here the update is the change from the global model, its
L2 norm is over every floating-point tensor of the model in float64 (what the hub measures,
``aggregate.strategies._arith.squared_distance``), and the clipped change is added back to
the global model and written in the model's own dtypes. Rounding to those dtypes can put
the written update a hair beyond C; the hub rejects an update farther than C (beyond a
float tolerance), so the scale is shrunk until the written update, measured as the hub
measures it, is within C.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from fl_gitops.errors import FlGitopsError
from fl_gitops.tensors import BF16, narrow, values_f64

__all__ = ["clip_update", "update_norm"]

# Tries at shrinking the scale before giving up (float32 needs one, at times a few more).
_TRIES = 24


def _is_floating(dtype: np.dtype[Any]) -> bool:
    return dtype.kind == "f" or dtype == BF16


def _floating(update: Mapping[str, np.ndarray[Any, Any]]) -> list[str]:
    return sorted(k for k, v in update.items() if _is_floating(np.asarray(v).dtype))


def _in_dtype(values: np.ndarray[Any, Any], dtype: np.dtype[Any]) -> np.ndarray[Any, Any]:
    """float64 values rounded once to ``dtype`` (BF16, which numpy cannot cast to, too)."""
    return narrow(values) if dtype == BF16 else values.astype(dtype)


def _unit_roundoff(dtypes: list[np.dtype[Any]]) -> float:
    """The largest relative rounding step among ``dtypes`` (BF16 keeps 8 bits: 2^-8)."""
    return max((2.0**-8 if d == BF16 else float(np.finfo(d).eps) / 2 for d in dtypes), default=0.0)


def update_norm(
    update: Mapping[str, np.ndarray[Any, Any]], base: Mapping[str, np.ndarray[Any, Any]]
) -> float:
    """The L2 distance of ``update`` to ``base`` over their floating-point tensors, in float64."""
    total = 0.0
    for name in _floating(update):
        d = (
            values_f64(np.asarray(update[name])).ravel()
            - values_f64(np.asarray(base[name])).ravel()
        )
        total += float(np.dot(d, d))
    return math.sqrt(total)


def clip_update(
    update: Mapping[str, np.ndarray[Any, Any]],
    base: Mapping[str, np.ndarray[Any, Any]],
    clip: float,
) -> tuple[dict[str, np.ndarray[Any, Any]], bool]:
    """Clip ``update``'s change from ``base`` to L2 norm ``clip``.

    Args:
        update: the trained model's tensors.
        base: the global model's tensors (the same names, shapes and dtypes).
        clip: the round's clip C, > 0.

    Returns:
        The tensors to send (each in its own dtype; tensors that are not floating point
        are passed through) and whether the update was unclipped (its norm <= C), the
        bit the cluster reports. An unclipped update is returned unchanged.

    Raises:
        FlGitopsError: the update cannot be brought within C in the model's dtypes.
    """
    norm = update_norm(update, base)
    if norm <= clip:
        return {k: update[k] for k in sorted(update)}, True
    names = _floating(update)
    dtypes = {k: np.asarray(update[k]).dtype for k in names}
    base64 = {k: values_f64(np.asarray(base[k])) for k in names}
    delta = {k: values_f64(np.asarray(update[k])) - base64[k] for k in names}
    scale = clip / norm
    # The first retry aims below C by a small part of the dtypes' own rounding step.
    margin = _unit_roundoff(list(dtypes.values())) / 16
    for _ in range(_TRIES):
        out = {k: update[k] for k in sorted(update)}
        for k in names:
            out[k] = _in_dtype(base64[k] + delta[k] * scale, dtypes[k])
        written = update_norm(out, base)
        if written <= clip:
            return out, False
        # The dtypes' rounding added ``written - scale * norm``: aim below C by more, by a
        # margin that grows fourfold each try. A fixed 2^-40 moved the scale by less than
        # one float32 step of the weights, so every try wrote the same bytes and about one
        # clipped update in a hundred was refused (seen in a 10-cluster simulation).
        scale *= (clip / written) * (1.0 - margin)
        margin = min(0.5, margin * 4.0)
    raise FlGitopsError(
        f"cannot clip the update to {clip:g} in the model's dtypes (its rounding alone is "
        "larger than the clip): raise dp.clipNorm"
    )
