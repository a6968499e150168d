"""What secure aggregation needs from the loop: the round's record in Git, the store's
names for the protocol's messages, and a model's change as one flat vector.

The record (``secagg.yaml`` in the experiment directory, ``SecAggRound``) is what every
party agrees on for the round's current phase: the experiment's share keys, the round's
roster of share holders (``context``: the names the neighbour graph is drawn over), and,
once the clusters have shared, ``U1`` with their mask keys and the digests of their sealed
shares; in the reveal phase also ``U2`` (the survivors) with the digests of their masked
inputs, and the next round's ``U1`` as the survivors' training Jobs reported it. The
renderer writes it beside the round state, and the same values go into each round config
(``config_section``), so a cluster needs nothing from the hub that Git does not hold.

The protocol's messages go to the store under ``rounds/<N>/aggregation/``, each named by
the attempt, the roster it was made for and the sender: a digest reported through the hub
(and committed in the record) is what a reader checks each one against, so a writer of
the bucket can make a round fail, never make one use its bytes.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from fl_gitops.errors import InputError, StoreError
from fl_gitops.secagg._context import Advertisement, RoundContext
from fl_gitops.secagg._errors import BadMessage
from fl_gitops.secagg._params import SecAggParams

__all__ = [
    "MAX_MESSAGE_BYTES",
    "SecAggRound",
    "change_vector",
    "message_name",
    "params_of",
    "sha256_of",
]

RECORD_KIND = "SecAggRound"
#: A shares or reveal message in the store: a few hundred bytes per holder.
MAX_MESSAGE_BYTES = 4 << 20
_NO_KEY = bytes(32)


def params_of(section: Mapping[str, Any]) -> SecAggParams:
    """``spec.strategy.secureAggregation`` (as the loader filled it) as the library's."""
    return SecAggParams(
        threshold=int(section["threshold"]),
        neighbours=int(section["neighbours"]),
        clip_range=float(section["clipRange"]),
        bits=int(section.get("bits", 64)),
    )


def sha256_of(data: bytes | bytearray | memoryview) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def message_name(kind: str, attempt: int, roster_id: str, cluster: str) -> str:
    """The store name (in ``rounds/<N>/aggregation/``) of ``cluster``'s ``kind`` message
    (``shares``, ``masked`` or ``reveal``) for an attempt and a roster."""
    return f"secagg-a{attempt}-{roster_id}-{kind}-{cluster}"


def change_vector(
    update: Mapping[str, np.ndarray[Any, Any]], base: Mapping[str, np.ndarray[Any, Any]]
) -> np.ndarray[Any, np.dtype[np.float64]]:
    """The update's change from the global model, every tensor flattened in name order
    (the order the hub lays the unmasked mean back out in), in float64."""
    from fl_gitops.tensors import values_f64

    parts = [
        values_f64(update[k]).reshape(-1) - values_f64(base[k]).reshape(-1) for k in sorted(base)
    ]
    return np.concatenate(parts) if parts else np.zeros(0)


@dataclass(frozen=True)
class SecAggRound:
    """The round's secure-aggregation record (``secagg.yaml``); see the module docstring.

    Attributes:
        round, attempt: the round (and attempt) the phase belongs to.
        phase: ``keys``, ``share``, ``train`` or ``reveal`` (``reports.SECAGG_PHASES``).
        share_keys: every cluster's share key known so far (the experiment's key roster).
        context: the round's share holders' names (``U0``), sorted.
        mask_keys, shares: ``U1``: each sharer's mask key and its shares' digest.
        levels: the round's grid (``SecAggParams.levels``), fixed when ``U1`` is.
        survivors: ``U2`` (reveal): each survivor's masked input digest and weight.
        metrics: the survivors' metrics as they reported them (reveal).
        next_mask_keys, next_shares: the next round's ``U1``, as the survivors' training
            Jobs reported it (reveal), over this round's ``U1`` as the next context.
    """

    round: int
    attempt: int
    phase: str
    share_keys: dict[str, str] = field(default_factory=dict)
    context: tuple[str, ...] = ()
    mask_keys: dict[str, str] = field(default_factory=dict)
    shares: dict[str, str] = field(default_factory=dict)
    levels: int = 0
    survivors: dict[str, dict[str, Any]] = field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    next_mask_keys: dict[str, str] = field(default_factory=dict)
    next_shares: dict[str, str] = field(default_factory=dict)

    def with_(self, **changes: Any) -> SecAggRound:
        return replace(self, **changes)

    def ctx(self, experiment: str, params: SecAggParams) -> RoundContext:
        """The library's context of the round: ``context`` with share keys, and mask keys
        for ``U1`` (a holder that has not shared has no mask key, and needs none)."""
        roster = {
            c: Advertisement(
                c,
                bytes.fromhex(self.share_keys[c]),
                bytes.fromhex(self.mask_keys[c]) if c in self.mask_keys else _NO_KEY,
            )
            for c in self.context
        }
        return RoundContext(experiment, self.round, params, roster, attempt=self.attempt)

    def next_ctx(self, experiment: str, params: SecAggParams) -> RoundContext:
        """The next round's context (attempt 1), over this round's ``U1``: what a training
        Job shares the next round's secrets to."""
        nxt = SecAggRound(
            self.round + 1, 1, "share", self.share_keys, tuple(sorted(self.mask_keys))
        )
        return nxt.ctx(experiment, params)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "round": self.round,
            "attempt": self.attempt,
            "phase": self.phase,
            "shareKeys": dict(sorted(self.share_keys.items())),
            "context": list(self.context),
        }
        if self.mask_keys:
            out["maskKeys"] = dict(sorted(self.mask_keys.items()))
            out["shares"] = dict(sorted(self.shares.items()))
            out["levels"] = self.levels
        if self.survivors:
            out["survivors"] = {c: dict(v) for c, v in sorted(self.survivors.items())}
            out["metrics"] = {c: dict(sorted(m.items())) for c, m in sorted(self.metrics.items())}
        if self.next_mask_keys:
            out["next"] = {
                "maskKeys": dict(sorted(self.next_mask_keys.items())),
                "shares": dict(sorted(self.next_shares.items())),
            }
        return out

    def config_section(self, params: SecAggParams, max_weight: int) -> dict[str, Any]:
        """What each cluster's round config carries: the record's public values its phase
        needs, the parameters and the weight ceiling (never the next round's ``U1``, which
        only the hub needs, nor the survivors' metrics)."""
        doc = self.to_json()
        doc.pop("next", None)
        doc.pop("metrics", None)
        if "survivors" in doc:
            doc["survivors"] = sorted(doc["survivors"])
        doc["params"] = {
            "threshold": params.threshold,
            "neighbours": params.neighbours,
            "clipRange": params.clip_range,
            "bits": params.bits,
        }
        doc["maxWeight"] = max_weight
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], *, source: str) -> SecAggRound:
        """Raises:
        InputError: not a record of this shape (names the source and the field).
        """
        try:
            survivors = {
                str(c): {
                    "digest": str(v["digest"]),
                    "numExamples": int(v["numExamples"]),
                    "weight": int(v["weight"]),
                }
                for c, v in dict(doc.get("survivors") or {}).items()
            }
            nxt = dict(doc.get("next") or {})
            out = cls(
                round=int(doc["round"]),
                attempt=int(doc["attempt"]),
                phase=str(doc["phase"]),
                share_keys=_hex_keys(doc.get("shareKeys") or {}),
                context=tuple(sorted(str(c) for c in doc.get("context") or ())),
                mask_keys=_hex_keys(doc.get("maskKeys") or {}),
                shares={str(c): str(d) for c, d in dict(doc.get("shares") or {}).items()},
                levels=int(doc.get("levels", 0)),
                survivors=survivors,
                metrics={
                    str(c): {str(k): float(x) for k, x in dict(m).items()}
                    for c, m in dict(doc.get("metrics") or {}).items()
                },
                next_mask_keys=_hex_keys(nxt.get("maskKeys") or {}),
                next_shares={str(c): str(d) for c, d in dict(nxt.get("shares") or {}).items()},
            )
        except (KeyError, TypeError, ValueError, BadMessage) as exc:
            raise InputError(f"{source}: not a {RECORD_KIND} record: {exc}") from None
        if not set(out.context) <= set(out.share_keys) or not set(out.mask_keys) <= set(
            out.context
        ):
            raise InputError(f"{source}: context and maskKeys must name clusters with share keys")
        return out


def _hex_keys(raw: object) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        raise ValueError("expected a mapping of cluster to key")
    out = {}
    for cluster, key in raw.items():
        if not (isinstance(key, str) and len(key) == 64 and set(key) <= set("0123456789abcdef")):
            raise BadMessage(f"{cluster}: a key that is not 64 lowercase hex")
        out[str(cluster)] = key
    return out


def read_message(store: Any, round_: int, name: str, digest: str | None, *, limit: int) -> bytes:
    """A protocol message from the store, only if its bytes hash to ``digest`` (None: any
    bytes, for ``verify``, which compares the model it rebuilds from them with Git's).

    Raises:
        BadMessage: missing, larger than ``limit`` or not the bytes reported.
    """
    from fl_gitops.store import UnreadableUpdate, open_regular, read_regular

    uri = store.aggregation_uri(round_, name)
    try:
        if uri.startswith("file://"):
            # A local store is opened as the store opens updates: never through a link,
            # never blocking on a FIFO a writer of the bucket left there, regular files only.
            fd = open_regular(store.root, f"rounds/{round_}/aggregation/{name}", name)
            try:
                raw = read_regular(fd, limit, name, name)
            finally:
                os.close(fd)
            if raw is None:
                raise BadMessage(f"{name}: larger than {limit} bytes")
            data = raw
        else:
            with store.fs.open(uri, "rb") as handle:
                data = handle.read(limit + 1)
    except FileNotFoundError:
        raise BadMessage(f"{name}: not in the store") from None
    except UnreadableUpdate as exc:
        raise BadMessage(f"{name}: {exc.reason}") from None
    except (OSError, StoreError) as exc:
        raise BadMessage(f"{name}: cannot be read ({type(exc).__name__})") from None
    if len(data) > limit:
        raise BadMessage(f"{name}: larger than {limit} bytes")
    if digest is not None and sha256_of(data) != digest:
        raise BadMessage(f"{name}: not the bytes its cluster reported (digest differs)")
    return bytes(data)


def write_message(store: Any, round_: int, name: str, data: bytes) -> str:
    """Put a protocol message in the store; its digest, to report."""
    store.put_aggregation_file(round_, name, data)
    return sha256_of(data)


def json_bytes(doc: object) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def sealed_to_json(sealed: Mapping[str, bytes]) -> bytes:
    return json_bytes({holder: msg.hex() for holder, msg in sorted(sealed.items())})


def sealed_from_json(data: bytes, sender: str) -> dict[str, bytes]:
    """Raises:
    BadMessage: not a map of holder to hex.
    """
    try:
        raw = json.loads(data)
        return {str(h): bytes.fromhex(m) for h, m in dict(raw).items()}
    except (ValueError, TypeError, AttributeError):
        raise BadMessage(f"{sender}: a shares message that is not a map of hex") from None


def names_digest(names: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(sorted(names)).encode()).hexdigest()
