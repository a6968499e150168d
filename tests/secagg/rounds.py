"""One secure round played in memory with real keys, real shares and real masks: the
messages each phase sends are passed as the loop's channels would carry them."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import numpy as np

from fl_gitops.secagg import (
    RoundContext,
    SecAggParams,
    Unmasked,
    advertise,
    masked_input,
    reveal,
    share_keys,
    unmask,
)


@dataclass
class Played:
    ctx: RoundContext
    levels: int
    masked: dict[str, np.ndarray] = field(default_factory=dict)
    sealed: dict[str, dict[str, bytes]] = field(default_factory=dict)  # sender -> holder -> msg


def play(
    changes: Mapping[str, np.ndarray],
    weights: Mapping[str, int],
    params: SecAggParams,
    *,
    drop_before_input: Collection[str] = (),
    drop_before_reveal: Collection[str] = (),
    max_weight: int = 1000,
) -> tuple[Unmasked, Played]:
    """Every cluster advertises and shares; ``drop_before_input`` send no masked input,
    ``drop_before_reveal`` send their input but reveal nothing."""
    keys, adverts = {}, {}
    for cluster in sorted(changes):
        keys[cluster], adverts[cluster] = advertise(cluster)
    ctx = RoundContext("exp", 3, params, adverts)
    levels = params.levels(len(changes), max_weight)
    played = Played(ctx, levels)
    for cluster in sorted(changes):
        keys[cluster], played.sealed[cluster] = share_keys(keys[cluster], ctx)
    sharers = set(changes)
    for cluster in sorted(changes):
        if cluster in drop_before_input:
            continue
        played.masked[cluster] = masked_input(
            keys[cluster], ctx, sharers, changes[cluster], weights[cluster], levels
        )
    survivors = set(played.masked)
    reveals = {}
    for holder in sorted(survivors):
        if holder in drop_before_reveal:
            continue
        inbox = {s: m[holder] for s, m in played.sealed.items() if holder in m}
        reveals[holder] = reveal(keys[holder], ctx, inbox, survivors)
    weights_of = {c: weights[c] for c in survivors}
    return unmask(ctx, sharers, played.masked, reveals, weights_of, levels), played
