"""A cluster's side of SecAgg+ (Bell et al. 2020), one function per phase.

Each phase is a step of the cluster's Job (or of the Job before it), and what it sends
goes up through the channels the loop has: the key advertisement through the cluster's
authenticated status channel, the encrypted shares and the masked input through the
store. Between phases the cluster keeps its :class:`ClientKeys` (never sent anywhere).

1. :func:`advertise`: two fresh X25519 key pairs, the public halves advertised.
2. :func:`share_keys`: a fresh self-mask seed ``b``; ``b`` and the mask key's private half
   split by Shamir, ``t`` of ``k + 1``, among the cluster's neighbours and itself, each
   share encrypted (AES-GCM) to its holder under a key only the two of them derive.
3. :func:`masked_input`: the change quantised (``_quantize``), weighted, plus the mask of
   ``b``, plus for each neighbour that shared the pairwise mask (added or subtracted by
   name order, so that the pair's masks cancel in the sum); modulo ``2^bits``. This is
   what the store holds: uniformly random to anyone without the masks.
4. :func:`reveal`: for each cluster whose shares it holds, the share of ``b`` if that
   cluster's masked input arrived, else the share of its mask key; never both for one.
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from fl_gitops.secagg._context import Advertisement, RoundContext
from fl_gitops.secagg._crypto import agree, decrypt, encrypt, new_private_key, public_bytes, split
from fl_gitops.secagg._errors import BadMessage
from fl_gitops.secagg._prg import expand
from fl_gitops.secagg._quantize import U64, quantize

__all__ = ["ClientKeys", "Reveal", "advertise", "masked_input", "reveal", "share_keys"]

SELF_SEED = "self"
MASK_KEY = "mask"


@dataclass(frozen=True)
class ClientKeys:
    """A cluster's secrets for one round; kept on the cluster between its phases."""

    cluster: str
    share_private: bytes
    mask_private: bytes
    self_seed: bytes | None = None


@dataclass(frozen=True)
class Reveal:
    """One share a survivor reveals: of ``about``'s self-mask seed or of its mask key."""

    about: str
    kind: str  # SELF_SEED or MASK_KEY
    share: bytes


def advertise(cluster: str) -> tuple[ClientKeys, Advertisement]:
    """Phase 1: fresh keys for the round, and what the cluster advertises of them."""
    keys = ClientKeys(cluster, new_private_key(), new_private_key())
    return keys, Advertisement(
        cluster, public_bytes(keys.share_private), public_bytes(keys.mask_private)
    )


def _share_key(ctx: RoundContext, private: bytes, peer: str, sender: str, holder: str) -> bytes:
    """The key sealing ``sender``'s shares to ``holder``: either end's private key with the
    other end's (``peer``'s) advertised public key."""
    return agree(private, ctx.roster[peer].share_key, ctx.info("share", sender, holder))


def share_keys(keys: ClientKeys, ctx: RoundContext) -> tuple[ClientKeys, dict[str, bytes]]:
    """Phase 2: the keys with a fresh self-mask seed, and one sealed message per holder
    of this cluster's shares (itself included), keyed by the holder."""
    t = ctx.params.threshold
    holders = ctx.holders(keys.cluster)
    seed = os.urandom(32)
    seed_shares = split(seed, t, len(holders))
    key_shares = split(keys.mask_private, t, len(holders))
    sealed = {}
    for i, holder in enumerate(holders):
        aad = ctx.info("share", keys.cluster, holder)
        body = bytes([i]) + seed_shares[i] + key_shares[i]
        sealed[holder] = encrypt(
            _share_key(ctx, keys.share_private, holder, keys.cluster, holder), body, aad
        )
    return replace(keys, self_seed=seed), sealed


def pair_mask(ctx: RoundContext, private: bytes, me: str, other: str, count: int) -> U64:
    """The mask ``me`` and ``other`` share, from ``me``'s private mask key."""
    seed = agree(private, ctx.roster[other].mask_key, ctx.pair(me, other))
    return expand(seed, count, ctx.params.bits)


def masked_input(
    keys: ClientKeys,
    ctx: RoundContext,
    sharers: Collection[str],
    change: np.ndarray[Any, Any],
    weight: int,
    levels: int,
) -> U64:
    """Phase 3: this cluster's masked, weighted, quantised change (a flat vector).

    Args:
        sharers: the clusters whose shares reached their holders (``U1``); masks are
            shared only with neighbours among them, whose mask keys can be rebuilt.
        change: the update minus the global model, flat, in the model's units.
        weight: the cluster's ``num_examples`` (at most the round's weight ceiling).
        levels: the round's grid, ``SecAggParams.levels``.
    """
    if keys.self_seed is None:
        raise ValueError("masked_input needs the keys share_keys returned")
    bits_mask = np.uint64(ctx.params.modulus_mask)
    y = quantize(change.reshape(-1), ctx.params.clip_range, levels, weight)
    count = y.size
    y += expand(keys.self_seed, count, ctx.params.bits)
    for other in ctx.graph[keys.cluster]:
        if other not in sharers:
            continue
        mask = pair_mask(ctx, keys.mask_private, keys.cluster, other, count)
        if keys.cluster < other:
            y += mask
        else:
            y -= mask
    y &= bits_mask
    return y


def open_share(
    keys: ClientKeys, ctx: RoundContext, sender: str, sealed: bytes
) -> tuple[bytes, bytes]:
    """A share this cluster holds of ``sender``'s secrets: (of its seed, of its mask key).

    Raises:
        BadMessage: not sealed by ``sender`` for this cluster in this round, or not the
            share at this cluster's index.
    """
    holders = ctx.holders(sender)
    if keys.cluster not in holders:
        raise BadMessage(f"{sender}: a share for a cluster that does not hold its shares")
    body = decrypt(
        _share_key(ctx, keys.share_private, sender, sender, keys.cluster),
        sealed,
        ctx.info("share", sender, keys.cluster),
    )
    if len(body) != 65 or body[0] != holders.index(keys.cluster):
        raise BadMessage(f"{sender}: a share that is not the one for this cluster")
    return body[1:33], body[33:65]


def reveal(
    keys: ClientKeys,
    ctx: RoundContext,
    inbox: Mapping[str, bytes],
    survivors: Collection[str],
) -> list[Reveal]:
    """Phase 4: for each cluster that sealed shares to this one (``inbox``: sender ->
    message), its seed's share if its masked input arrived (``survivors``, ``U2``), else
    its mask key's share. A share that does not open is skipped (that sender's shares
    are its own problem; the threshold covers it)."""
    out = []
    for sender in sorted(inbox):
        if sender not in ctx.roster:
            continue
        try:
            seed_share, key_share = open_share(keys, ctx, sender, inbox[sender])
        except BadMessage:
            continue
        if sender in survivors:
            out.append(Reveal(sender, SELF_SEED, seed_share))
        else:
            out.append(Reveal(sender, MASK_KEY, key_share))
    return out
