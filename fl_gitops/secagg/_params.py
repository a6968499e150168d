"""The parameters of one experiment's secure aggregation, and the integer grid they give.

An update's change from the global model is clipped to ``[-clipRange, clipRange]`` per
coordinate and rounded to one of ``L + 1`` levels; each cluster multiplies its levels by
its weight (its ``num_examples``, at most the weight ceiling ``W``), and the masked sum is
taken modulo ``2^bits``. ``L`` is the largest grid for which the sum of ``n`` clusters
cannot wrap: ``L = floor((2^bits - 1) / (n * W))``. The mean the hub unmasks then differs
from the weighted mean of the clipped changes by at most ``clipRange / L`` per coordinate
(each cluster's rounding is at most half a step, ``clipRange / L``, and a weighted mean of
errors so bounded is bounded alike), plus float64's rounding as the mean is turned back
into the model's units, ``4 * 2^-52 * clipRange`` (``SecAggParams.error_bound``).
"""

from __future__ import annotations

from dataclasses import dataclass

from fl_gitops.errors import InputError

__all__ = ["MIN_LEVELS", "SecAggParams"]

# float64's machine epsilon: the dequantisation's own rounding (``error_bound``).
_EPS = 2.0**-52
#: Fewer levels than this is not an aggregate worth having: refused when the round is set.
MIN_LEVELS = 1 << 12


@dataclass(frozen=True)
class SecAggParams:
    """``spec.strategy.secureAggregation``: see the module docstring.

    Attributes:
        threshold: shares needed to rebuild a cluster's secrets (``t``).
        neighbours: how many other clusters each one masks with and shares to (``k``); a
            cluster's secrets are split among its neighbours and itself, ``t`` of ``k + 1``.
        clip_range: the per-coordinate bound on an update's change, in the model's units.
        bits: the modulus of the masked sum, ``2^bits`` (at most 64).
    """

    threshold: int
    neighbours: int
    clip_range: float
    bits: int = 64

    def __post_init__(self) -> None:
        if not 16 <= self.bits <= 64:
            raise InputError(f"secureAggregation.bits: expected 16 to 64, got {self.bits}")
        if not self.clip_range > 0:
            raise InputError("secureAggregation.clipRange: expected a number above 0")
        if self.neighbours < 1:
            raise InputError("secureAggregation.neighbours: expected at least 1")
        holders = self.neighbours + 1
        # More than half the holders: no two disjoint sets of shares can each rebuild a
        # secret, so asking some holders for one secret and others for the other fails.
        if not holders // 2 < self.threshold <= holders:
            raise InputError(
                f"secureAggregation.threshold: expected more than half of neighbours + 1 "
                f"and at most neighbours + 1 ({holders // 2 + 1} to {holders}), got "
                f"{self.threshold}"
            )

    @property
    def modulus_mask(self) -> int:
        return (1 << self.bits) - 1

    def levels(self, clusters: int, max_weight: int) -> int:
        """``L`` for a round of ``clusters`` clusters each weighing at most ``max_weight``.

        Raises:
            InputError: the grid would have fewer than ``MIN_LEVELS`` levels.
        """
        levels = ((1 << self.bits) - 1) // (max(1, clusters) * max(1, max_weight))
        if levels < MIN_LEVELS:
            raise InputError(
                f"secureAggregation.bits: {self.bits} bits leave {levels} levels for "
                f"{clusters} clusters weighing up to {max_weight} examples each (at least "
                f"{MIN_LEVELS} needed): raise bits or lower influence.numExamples.max"
            )
        return levels

    def error_bound(self, levels: int) -> float:
        """The most the unmasked mean may differ, per coordinate, from the weighted mean
        of the clipped changes (the module docstring): the grid's ``c / L``, plus float64's
        own rounding where the mean is turned back into the model's units (the integer sum
        to a float, the scaling by ``2c / L`` and the shift by ``-c``: at most ``4 eps c``
        with ``eps = 2^-52``), which is the larger term once ``L`` passes about 10^15."""
        return self.clip_range / levels + 4 * _EPS * self.clip_range
