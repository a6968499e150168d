"""The privacy budget a DP experiment has spent: epsilon at a given delta, over its rounds.

Each DP round is one Gaussian mechanism (noise ``noise_multiplier`` times the clip, on the
sum of the clipped updates) applied to a Poisson sample of the clusters with probability
``sampling_rate``; rounds compose. Google's ``dp-accounting`` does the arithmetic (its RDP
accountant: a ``PoissonSampledDpEvent`` of a ``GaussianDpEvent`` per round, composed; at
sampling rate 1 that is the plain Gaussian mechanism, RDP ``alpha / (2 z^2)`` per round).

Rounds are kept as runs, ``(noise_multiplier, sampling_rate, rounds)``, so that a round
record can carry the whole history in a few numbers and anyone can recompute the epsilon
from that record alone, without the records before it. ``dp-accounting`` is imported
only here, and only when an epsilon is computed, so that the CLI's start and rendering
never pay for it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

__all__ = ["Run", "epsilon", "epsilon_of_runs", "extend_runs"]

# One run of identical rounds: (noise multiplier, sampling rate, how many rounds).
Run = tuple[float, float, int]


def extend_runs(runs: Iterable[Run], noise_multiplier: float, sampling_rate: float) -> list[Run]:
    """``runs`` with one more round of ``(noise_multiplier, sampling_rate)``, merged into
    the last run when it is the same mechanism.

    Returns:
        A new list; ``runs`` is left as it is.
    """
    out = [(float(z), float(q), int(n)) for z, q, n in runs]
    z, q = float(noise_multiplier), float(sampling_rate)
    if out and out[-1][0] == z and out[-1][1] == q:
        out[-1] = (z, q, out[-1][2] + 1)
    else:
        out.append((z, q, 1))
    return out


def epsilon_of_runs(runs: Sequence[Run], delta: float) -> float:
    """The epsilon at ``delta`` of the composed rounds (RDP accountant), deterministic.

    Returns:
        The epsilon; ``math.inf`` when a round had no noise (noise multiplier 0, no
        guarantee) and 0.0 for no rounds at all.

    Raises:
        ValueError: a noise multiplier below 0, a sampling rate outside (0, 1], a run
            of fewer than one round, or delta outside (0, 1).
    """
    if not 0 < delta < 1:
        raise ValueError(f"delta: expected a number in (0, 1), got {delta!r}")
    for z, q, n in runs:
        if z < 0 or not 0 < q <= 1 or n < 1:
            raise ValueError(
                "each run: expected noise_multiplier >= 0, sampling_rate in (0, 1] and "
                f"rounds >= 1, got ({z!r}, {q!r}, {n!r})"
            )
    if not runs:
        return 0.0
    if any(z == 0 for z, _, _ in runs):
        return math.inf
    import dp_accounting
    from dp_accounting import rdp

    accountant = rdp.RdpAccountant()
    for z, q, n in runs:
        event = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(z))
        accountant.compose(event, n)
    return float(accountant.get_epsilon(delta))


def epsilon(rounds: Sequence[tuple[float, float]], delta: float) -> float:
    """The epsilon at ``delta`` after ``rounds``, each ``(noise_multiplier, sampling_rate)``.

    Raises:
        ValueError: as :func:`epsilon_of_runs`.
    """
    runs: list[Run] = []
    for z, q in rounds:
        runs = extend_runs(runs, z, q)
    return epsilon_of_runs(runs, delta)
