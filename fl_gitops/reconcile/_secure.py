"""The hub's side of secure aggregation in the loop: a round's phases, one commit each.

A secure round's Jobs run one phase at a time on the clusters (``client/secure.py``); each
phase ends the way a plain round does (every Job done, or the timeout with enough of them,
``_decide.decide``), and the pass then reads what the phase's Jobs reported through the hub
and commits the next phase with what every party must agree on for it (``secagg.yaml``,
``SecAggRound``, and each round config):

- ``keys`` (once per experiment, and for a cluster new to it): the share keys; then
  ``share`` with the clusters that advertised one as the round's holders (``U0``).
- ``share``: ``U1``, the clusters whose sealed shares are in the store as they reported
  them, with their mask keys and the round's grid; then ``train`` on ``U1``.
- ``train``: ``U2``, the clusters whose masked input is in the store as reported; then
  ``reveal`` on ``U2``, with ``U2`` committed before any survivor reveals a share.
- ``reveal``: the survivors' reveals; only the sum is unmasked (``secagg.unmask``), and
  fed to the strategy as the round's one update; the round is committed as any round is,
  and the next round starts at ``train`` when every eligible cluster shared its secrets
  for it in its training Job, else at ``share`` (or ``keys`` for a cluster with no share
  key), so that a cluster that dropped comes back.

Fewer than the threshold at any phase, or a secret that cannot be rebuilt (``SecAggError``),
fails the round by the completion policy (``below_quorum``: retried as a new attempt, which starts
at ``share`` with fresh secrets, or failed), with nothing unmasked. Every phase is decided
from Git, the hub and the store alone, so a pass killed at any point does it again.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fl_gitops.blueprint import Blueprint
from fl_gitops.errors import InputError
from fl_gitops.hub import ClusterStatus
from fl_gitops.render import RoundState
from fl_gitops.reports import HubReport, SecAggReport
from fl_gitops.secagg import (
    BadMessage,
    NotEnoughShares,
    Reveal,
    SecAggError,
    SecAggParams,
    unmask,
)
from fl_gitops.secagg._loop import (
    MAX_MESSAGE_BYTES,
    SecAggRound,
    message_name,
    params_of,
    read_message,
    sha256_of,
)
from fl_gitops.store import ModelStore

__all__ = [
    "Next",
    "Unmasked",
    "after_round",
    "aggregate_sum",
    "next_phase",
    "round_account",
    "start_phase",
    "unmask_round",
]

_SUM = "secagg-sum"  # the round's one update fed to the strategy: the survivors' mean


@dataclass(frozen=True)
class Next:
    """The phase to commit: its round state, its roster and its record."""

    state: RoundState
    roster: tuple[str, ...]
    record: SecAggRound
    message: str


def params(blueprint: Blueprint) -> SecAggParams:
    section = blueprint.strategy.secure_aggregation
    assert section is not None
    return params_of(section)


def start_phase(
    blueprint: Blueprint,
    state: RoundState,
    roster: Sequence[str],
    known: SecAggRound | None,
) -> Next:
    """The first phase of a round (or of a retry of it): ``share`` over the roster when
    every cluster of it has a share key, else ``keys``."""
    share_keys = dict(known.share_keys) if known is not None else {}
    roster = tuple(sorted(roster))
    if roster and all(c in share_keys for c in roster):
        record = SecAggRound(state.round, state.attempt, "share", share_keys, roster)
        message = f"{len(roster)} clusters share round {state.round}'s mask secrets"
    else:
        record = SecAggRound(state.round, state.attempt, "keys", share_keys)
        message = f"{len(roster)} clusters advertise their share keys"
    nxt = RoundState(
        round=state.round,
        model_digest=state.model_digest,
        attempt=state.attempt,
        secagg=record.phase,
    )
    return Next(nxt, roster, record, message)


def _reported(
    clusters: Sequence[str], statuses: Mapping[str, ClusterStatus], phase: str
) -> dict[str, tuple[HubReport, SecAggReport]]:
    """The succeeded clusters' reports of this phase (``secagg.phase`` as asked), each
    with its ``secagg`` values typed."""
    out = {}
    for cluster in clusters:
        status = statuses.get(cluster)
        report = status.report if status is not None else None
        if report is not None and report.secagg is not None:
            sa = SecAggReport.from_fields(report.secagg)
            if sa.phase == phase:
                out[cluster] = (report, sa)
    return out


def _enough(p: SecAggParams, got: int, what: str) -> None:
    if got < p.threshold:
        raise SecAggError(
            f"secure aggregation: {got} clusters {what}, at least threshold {p.threshold} "
            "needed; nothing unmasked"
        )


def next_phase(
    blueprint: Blueprint,
    state: RoundState,
    record: SecAggRound,
    clusters: Sequence[str],
    statuses: Mapping[str, ClusterStatus],
    store: ModelStore,
) -> Next:
    """The phase after ``record``'s (``keys``, ``share`` or ``train``), from what the
    succeeded ``clusters`` reported.

    Raises:
        SecAggError: fewer than the threshold got through.
        InputError: the round's grid is under 4096 levels for this many clusters (the
            blueprint's bits and numExamples.max cannot run this fleet).
    """
    p = params(blueprint)
    phase = record.phase
    reports = _reported(clusters, statuses, phase)

    def step(to: str) -> RoundState:
        return RoundState(
            round=state.round, model_digest=state.model_digest, attempt=state.attempt, secagg=to
        )

    if phase == "keys":
        keys = dict(record.share_keys)
        fresh = {c: sa.share_key for c, (_, sa) in reports.items() if sa.share_key is not None}
        keys.update(fresh)
        context = tuple(sorted(fresh))
        _enough(p, len(context), "advertised a share key")
        nxt = SecAggRound(state.round, state.attempt, "share", keys, context)
        return Next(step("share"), context, nxt, f"share keys of {len(context)} clusters")
    if phase == "share":
        u1: dict[str, str] = {}
        digests: dict[str, str] = {}
        ctx = record.ctx(blueprint.name, p)
        for cluster, (_, sa) in reports.items():
            if (
                cluster not in record.context
                or sa.share_key != record.share_keys.get(cluster)
                or sa.mask_key is None
                or sa.shares is None
            ):
                continue
            name = message_name("shares", record.attempt, ctx.roster_id, cluster)
            try:
                read_message(store, state.round, name, sa.shares, limit=MAX_MESSAGE_BYTES)
            except BadMessage:
                continue
            u1[cluster], digests[cluster] = sa.mask_key, sa.shares
        _enough(p, len(u1), "shared their mask secrets")
        try:
            levels = p.levels(len(u1), blueprint.influence.max_num_examples)
        except InputError as exc:
            raise SecAggError(f"secure aggregation: {exc}; nothing unmasked") from None
        nxt = record.with_(phase="train", mask_keys=u1, shares=digests, levels=levels)
        return Next(step("train"), tuple(sorted(u1)), nxt, f"U1: {len(u1)} clusters shared")
    if phase == "train":
        survivors: dict[str, dict[str, Any]] = {}
        metrics: dict[str, dict[str, float]] = {}
        next_keys: dict[str, str] = {}
        next_shares: dict[str, str] = {}
        ctx = record.ctx(blueprint.name, p)
        size = _model_elements(store, state.model_digest)
        ceiling = blueprint.influence.max_num_examples
        for cluster, (report, sa) in reports.items():
            if cluster not in record.mask_keys or sa.share_key != record.share_keys.get(cluster):
                continue
            if (
                report.num_examples > ceiling
                and blueprint.influence.above_max_num_examples != "cap"
            ):
                continue  # its input is not used: it counts as dropped, its masks removed
            name = message_name("masked", record.attempt, ctx.roster_id, cluster)
            try:
                data = read_message(store, state.round, name, report.digest, limit=8 * size)
            except BadMessage:
                continue
            if len(data) != 8 * size:
                continue
            survivors[cluster] = {
                "digest": report.digest,
                "numExamples": report.num_examples,
                "weight": min(report.num_examples, ceiling),
            }
            metrics[cluster] = dict(report.metrics)
            if sa.mask_key is not None and sa.shares is not None:
                next_keys[cluster], next_shares[cluster] = sa.mask_key, sa.shares
        _enough(p, len(survivors), "sent a masked input")
        # Every secret the sum needs must have threshold holders among the survivors, or
        # no reveal is asked for at all (a survivor's seed revealed for nothing is spent).
        for cluster in sorted(record.mask_keys):
            holding = [h for h in ctx.holders(cluster) if h in survivors]
            if len(holding) < p.threshold:
                what = "survivor" if cluster in survivors else "dropped cluster"
                raise SecAggError(
                    f"secure aggregation: {cluster} ({what}) has {len(holding)} surviving "
                    f"holders of its shares, threshold {p.threshold} needed; nothing unmasked"
                )
        nxt = record.with_(
            phase="reveal",
            survivors=survivors,
            metrics=metrics,
            next_mask_keys=next_keys,
            next_shares=next_shares,
        )
        dropped = len(record.mask_keys) - len(survivors)
        return Next(
            step("reveal"),
            tuple(sorted(survivors)),
            nxt,
            f"U2: {len(survivors)} survivors, {dropped} dropped",
        )
    raise AssertionError(f"no phase after {phase}")


def _model_elements(store: ModelStore, digest: str) -> int:
    from fl_gitops.models import bytes_to_tensors

    tensors = bytes_to_tensors(store.get_model(digest))
    return int(sum(t.size for t in tensors.values()))


@dataclass(frozen=True)
class Unmasked:
    """A secure round's result before the strategy: the pseudo-update and the account."""

    mean: dict[str, np.ndarray[Any, Any]]  # the model plus the survivors' mean change
    survivors: tuple[str, ...]
    dropped: tuple[str, ...]
    weights: dict[str, int]
    revealed_by: tuple[str, ...]
    error_bound: float


def unmask_round(
    blueprint: Blueprint,
    state: RoundState,
    record: SecAggRound,
    clusters: Sequence[str],
    statuses: Mapping[str, ClusterStatus],
    store: ModelStore,
) -> Unmasked:
    """The survivors' weighted mean change, unmasked from their masked inputs and the
    reveals of the ``clusters`` whose reveal Job succeeded, as the model it makes.

    Raises:
        SecAggError: too few reveals, a secret that cannot be rebuilt, or a masked input
            that is no longer the one reported: nothing is unmasked.
    """
    p = params(blueprint)
    ctx = record.ctx(blueprint.name, p)
    digests = {
        cluster: sa.reveal
        for cluster, (_, sa) in _reported(clusters, statuses, "reveal").items()
        if sa.reveal is not None
    }
    return unmask_from(
        blueprint,
        state,
        record,
        stored_reveals(store, state.round, record, ctx.roster_id, digests),
        store,
    )


def stored_reveals(
    store: ModelStore,
    round_: int,
    record: SecAggRound,
    roster_id: str,
    digests: Mapping[str, str | None],
) -> dict[str, list[Reveal]]:
    """The survivors' reveals in the store, each read only if its bytes hash to the digest
    its cluster reported (``None``: taken unchecked, for an auditor who then compares the
    model it rebuilds with the committed one); an unreadable one is left out."""
    reveals: dict[str, list[Reveal]] = {}
    for cluster, digest in digests.items():
        if cluster not in record.survivors:
            continue
        name = message_name("reveal", record.attempt, roster_id, cluster)
        try:
            data = read_message(store, round_, name, digest, limit=MAX_MESSAGE_BYTES)
            items = json.loads(data)
            reveals[cluster] = [Reveal(str(a), str(k), bytes.fromhex(s)) for a, k, s in items]
        except (BadMessage, ValueError, TypeError):
            continue
    return reveals


def unmask_from(
    blueprint: Blueprint,
    state: RoundState,
    record: SecAggRound,
    reveals: Mapping[str, list[Reveal]],
    store: ModelStore,
) -> Unmasked:
    """The survivors' weighted mean change from their masked inputs and these reveals."""
    from fl_gitops.models import bytes_to_tensors
    from fl_gitops.tensors import BF16, narrow, values_f64

    p = params(blueprint)
    ctx = record.ctx(blueprint.name, p)
    base = bytes_to_tensors(store.get_model(state.model_digest))
    size = int(sum(t.size for t in base.values()))
    masked = _StoredInputs(store, state.round, record, ctx.roster_id, size)
    weights = {c: int(v["weight"]) for c, v in record.survivors.items()}
    try:
        out = unmask(
            ctx, set(record.mask_keys), masked, dict(reveals), weights, record.levels, length=size
        )
    except (NotEnoughShares, BadMessage) as exc:
        raise SecAggError(
            f"secure aggregation: {exc} ({len(reveals)} of {len(record.survivors)} survivors "
            "revealed); nothing unmasked"
        ) from None
    model: dict[str, np.ndarray[Any, Any]] = {}
    offset = 0
    for name in sorted(base):
        tensor = base[name]
        values = values_f64(tensor).reshape(-1) + out.mean_change[offset : offset + tensor.size]
        offset += tensor.size
        shaped = values.reshape(tensor.shape)
        model[name] = narrow(shaped) if tensor.dtype == BF16 else shaped.astype(tensor.dtype)
    return Unmasked(
        model,
        out.survivors,
        out.dropped,
        weights,
        tuple(sorted(reveals)),
        p.error_bound(record.levels),
    )


class _StoredInputs(Mapping[str, Any]):
    """The survivors' masked inputs, each read from the store (and checked against the
    digest its cluster reported) only when the unmasking adds it: one in memory at a time."""

    def __init__(
        self, store: ModelStore, round_: int, record: SecAggRound, roster_id: str, size: int
    ) -> None:
        self.store, self.round, self.record = store, round_, record
        self.roster_id, self.size = roster_id, size

    def __getitem__(self, cluster: str) -> np.ndarray[Any, Any]:
        said = self.record.survivors[cluster]
        name = message_name("masked", self.record.attempt, self.roster_id, cluster)
        data = read_message(self.store, self.round, name, said["digest"], limit=8 * self.size)
        return np.frombuffer(data, dtype="<u8")

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self.record.survivors))

    def __len__(self) -> int:
        return len(self.record.survivors)


def aggregate_sum(
    blueprint: Blueprint,
    state: RoundState,
    unmasked: Unmasked,
    store: ModelStore,
    *,
    strategy: str,
    options: Mapping[str, Any],
) -> Any:
    """The strategy's step on the unmasked mean, run by the engine as the round's one
    update (a weighted sum of one is itself, so FedAvg's model is the mean, and a server
    optimiser's step takes the mean's change as its pseudo-gradient)."""
    from fl_gitops.aggregate import aggregate_round
    from fl_gitops.aggregate.checks import Limits
    from fl_gitops.tensors import serialize

    data = serialize(unmasked.mean)
    fd, path = tempfile.mkstemp(prefix="fl-gitops-secagg-", suffix=".safetensors", dir=_scratch())
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        meta = {
            "round": state.round,
            "cluster": _SUM,
            "base_model": state.model_digest,
            "num_examples": 1,
            "metrics": {},
            "sha256": sha256_of(data),
        }
        with store.model_file(state.model_digest) as base_path:
            return aggregate_round(
                base_path,
                [(_SUM, path, meta)],
                strategy=strategy,
                round=state.round,
                options=options,
                state=store.get_state(strategy, state.round - 1),
                limits=Limits(median_distance_multiple=None, max_num_examples=None),
                base_digest=state.model_digest,
            )
    finally:
        os.unlink(path)


def _scratch() -> str | None:
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def round_account(record: SecAggRound, unmasked: Unmasked, p: SecAggParams) -> dict[str, Any]:
    """The round record's ``secureAggregation`` block: counts and parameters, no secret
    and no cluster's message."""
    return {
        "threshold": p.threshold,
        "neighbours": p.neighbours,
        "clipRange": p.clip_range,
        "bits": p.bits,
        "levels": record.levels,
        "errorBound": float(f"{unmasked.error_bound:.6g}"),
        "u1": len(record.mask_keys),
        "u2": len(unmasked.survivors),
        "dropped": len(unmasked.dropped),
        "revealed": len(unmasked.revealed_by),
        "maskedInputs": {c: v["digest"] for c, v in sorted(record.survivors.items())},
    }


def after_round(
    blueprint: Blueprint,
    record: SecAggRound,
    decided: Sequence[str],
    model_digest: str,
) -> Next:
    """The next round's first phase: ``train`` when every eligible cluster (decided, with a
    share key) shared its secrets for it in its training Job, else ``share`` (or ``keys``)."""
    p = params(blueprint)
    round_ = record.round + 1
    eligible = tuple(sorted(c for c in decided if c in record.share_keys))
    u1 = dict(record.next_mask_keys)
    try:
        levels = p.levels(len(u1), blueprint.influence.max_num_examples)
    except InputError:
        levels = 0  # too many for the grid: the share phase fails the round cleanly
    if (
        eligible
        and set(u1) == set(eligible)
        and len(u1) >= p.threshold
        and set(u1) <= set(record.mask_keys)
        and levels > 0
    ):
        nxt = SecAggRound(
            round_,
            1,
            "train",
            record.share_keys,
            tuple(sorted(record.mask_keys)),
            mask_keys=u1,
            shares={c: record.next_shares[c] for c in u1},
            levels=levels,
        )
        state = RoundState(round=round_, model_digest=model_digest, secagg="train")
        return Next(state, tuple(sorted(u1)), nxt, f"U1: {len(u1)} clusters shared")
    base = RoundState(round=round_, model_digest=model_digest)
    known = SecAggRound(round_, 1, "keys", record.share_keys)
    start = start_phase(blueprint, base, tuple(sorted(decided)), known)
    return start
