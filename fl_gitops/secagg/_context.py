"""What every party of one round agrees on: the round's name for the keys it derives, the
key roster, and the neighbour graph drawn from them."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from fl_gitops.secagg._errors import BadMessage
from fl_gitops.secagg._graph import neighbours
from fl_gitops.secagg._params import SecAggParams

__all__ = ["Advertisement", "RoundContext"]

_HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class Advertisement:
    """A cluster's two public keys for a round, as its authenticated status channel
    carries them (so the hub, and through Git every cluster, knows they are its own):
    ``share_key`` to encrypt shares to it, ``mask_key`` for the masks it shares."""

    cluster: str
    share_key: bytes
    mask_key: bytes

    def to_json(self) -> dict[str, str]:
        return {"shareKey": self.share_key.hex(), "maskKey": self.mask_key.hex()}

    @classmethod
    def from_json(cls, cluster: str, doc: Mapping[str, object]) -> Advertisement:
        """Raises:
        BadMessage: not two 32-byte hex keys (the value is not shown).
        """
        keys = [doc.get("shareKey"), doc.get("maskKey")]
        if not all(isinstance(k, str) and len(k) == 64 and set(k) <= _HEX for k in keys):
            raise BadMessage(f"{cluster}: a key advertisement that is not two X25519 keys")
        return cls(cluster, bytes.fromhex(str(keys[0])), bytes.fromhex(str(keys[1])))


@dataclass(frozen=True)
class RoundContext:
    """One round's secure aggregation: its parameters and its key roster (every cluster
    that advertised keys, ``U0``). Cluster names order the pairs: of two neighbours, the
    one whose name sorts first adds their pairwise mask, the other subtracts it.

    The label binds every key derived in the round to the experiment, the round, its
    attempt and the roster's names, so that no two rounds, attempts or rosters (a round's
    shares made again over another roster) ever derive the same key."""

    experiment: str
    round: int
    params: SecAggParams
    roster: Mapping[str, Advertisement]
    attempt: int = 1

    @cached_property
    def roster_id(self) -> str:
        """16 hex digits naming the roster's clusters (the graph's names)."""
        names = "\n".join(sorted(self.roster)).encode()
        return hashlib.sha256(names).hexdigest()[:16]

    @cached_property
    def label(self) -> bytes:
        return (
            f"fl-gitops/secagg/v1|{self.experiment}|{self.round}|{self.attempt}|{self.roster_id}"
        ).encode()

    @cached_property
    def graph(self) -> dict[str, tuple[str, ...]]:
        seed = hashlib.sha256(self.label + "|".join(sorted(self.roster)).encode()).digest()
        return neighbours(list(self.roster), self.params.neighbours, seed)

    def holders(self, cluster: str) -> tuple[str, ...]:
        """Who holds shares of ``cluster``'s secrets, in share order: its neighbours and
        itself, sorted."""
        return tuple(sorted((*self.graph[cluster], cluster)))

    def info(self, purpose: str, a: str, b: str) -> bytes:
        return self.label + f"|{purpose}|{a}|{b}".encode()

    def pair(self, a: str, b: str) -> bytes:
        """The pair's name in the order both ends use."""
        lo, hi = sorted((a, b))
        return self.info("mask", lo, hi)
