"""The hub's side of SecAgg+: only the sum of the survivors' changes is ever unmasked.

From the masked inputs (``U2``, the survivors), the shares the survivors reveal, and the
key roster: each survivor's self-mask seed is rebuilt from ``t`` shares and its mask
removed; each cluster that shared but sent no input (dropped, in ``U1`` but not ``U2``)
has its mask key rebuilt and the pairwise masks it shared with surviving neighbours
removed. Pairs of survivors cancel in the sum. Every secret is rebuilt, and checked,
before any mask is removed: when one cannot be (too many dropped), the round fails with
nothing unmasked.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fl_gitops.secagg._client import MASK_KEY, SELF_SEED, Reveal, pair_mask
from fl_gitops.secagg._context import RoundContext
from fl_gitops.secagg._crypto import combine, public_bytes
from fl_gitops.secagg._errors import BadMessage, NotEnoughShares
from fl_gitops.secagg._prg import expand
from fl_gitops.secagg._quantize import F64, U64, dequantize_mean

__all__ = ["Unmasked", "unmask"]


@dataclass(frozen=True)
class Unmasked:
    """The round's unmasked result: the weighted mean change and what it is made of."""

    mean_change: F64
    survivors: tuple[str, ...]
    dropped: tuple[str, ...]
    weight_total: int


def _collect(
    ctx: RoundContext, reveals: Mapping[str, Sequence[Reveal]], survivors: Collection[str]
) -> dict[tuple[str, str], dict[int, bytes]]:
    """``(cluster, kind) -> {holder index: share}``, from survivors' reveals only."""
    shares: dict[tuple[str, str], dict[int, bytes]] = {}
    for holder, items in reveals.items():
        if holder not in survivors:
            continue
        for item in items:
            if item.about not in ctx.roster or item.kind not in (SELF_SEED, MASK_KEY):
                continue
            holders = ctx.holders(item.about)
            if holder not in holders or len(item.share) != 32:
                continue
            shares.setdefault((item.about, item.kind), {})[holders.index(holder)] = item.share
    return shares


def unmask(
    ctx: RoundContext,
    sharers: Collection[str],
    masked: Mapping[str, U64],
    reveals: Mapping[str, Sequence[Reveal]],
    weights: Mapping[str, int],
    levels: int,
    *,
    length: int | None = None,
) -> Unmasked:
    """The weighted mean change of the survivors (``masked``'s clusters).

    Args:
        sharers: ``U1``, the clusters whose shares were delivered.
        masked: ``U2``: survivor -> its masked input (all the same length). With
            ``length`` given, each input is read once, when it is added, so that a mapping
            that reads from the store holds one input at a time (the hub's memory is the
            sum and one input, whatever the fleet).
        length: the inputs' length, when known (else taken from the inputs).
        reveals: holder -> the shares it revealed.
        weights: each survivor's weight, as it reported it through the hub.
        levels: the round's grid.

    Raises:
        NotEnoughShares: fewer survivors than the threshold, or a secret with fewer than
            the threshold of shares: nothing is unmasked.
        BadMessage: a rebuilt mask key that is not the one its cluster advertised.
    """
    params = ctx.params
    survivors = tuple(sorted(c for c in masked if c in sharers))
    if len(survivors) < params.threshold:
        raise NotEnoughShares(
            f"{len(survivors)} masked inputs arrived, at least {params.threshold} needed "
            "(fewer would let the sum show one cluster's update)"
        )
    dropped = tuple(sorted(c for c in sharers if c not in masked and c in ctx.roster))
    shares = _collect(ctx, reveals, set(survivors))

    def rebuilt(cluster: str, kind: str, what: str) -> bytes:
        got = shares.get((cluster, kind), {})
        if len(got) < params.threshold:
            raise NotEnoughShares(
                f"{what}: {len(got)} shares of its {kind_names[kind]}, {params.threshold} needed"
            )
        return combine(got, params.threshold)

    kind_names = {SELF_SEED: "self-mask", MASK_KEY: "mask key"}
    seeds = {c: rebuilt(c, SELF_SEED, c) for c in survivors}
    mask_keys: dict[str, bytes] = {}
    for cluster in dropped:
        key = rebuilt(cluster, MASK_KEY, f"{cluster} dropped")
        if public_bytes(key) != ctx.roster[cluster].mask_key:
            raise BadMessage(f"{cluster}: its shares rebuild a key it did not advertise")
        mask_keys[cluster] = key
    if length is None:
        count = {v.size for v in masked.values()}
        if len(count) != 1:
            raise BadMessage("masked inputs of different lengths")
        (n,) = count
    else:
        n = length
    total = np.zeros(n, dtype=np.uint64)
    for cluster in survivors:
        vector = masked[cluster]
        if vector.size != n:
            raise BadMessage(f"{cluster}: a masked input of another length")
        total += vector
        del vector
        total -= expand(seeds[cluster], n, params.bits)
    for gone, key in mask_keys.items():
        for other in ctx.graph[gone]:
            if other not in survivors:
                continue
            mask = pair_mask(ctx, key, gone, other, n)
            # The survivor added the mask if its name sorts first, else subtracted it.
            if other < gone:
                total -= mask
            else:
                total += mask
    total &= np.uint64(params.modulus_mask)
    weight_total = sum(int(weights[c]) for c in survivors)
    return Unmasked(
        dequantize_mean(total, weight_total, params.clip_range, levels),
        survivors,
        dropped,
        weight_total,
    )
