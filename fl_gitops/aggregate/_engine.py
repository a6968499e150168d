"""Aggregate one round: check the updates, run the strategy's combining step, write the model.

One entry point, :func:`aggregate_round`, serves ``fl-gitops aggregate``, the reconcile job
(through :func:`aggregate_from_store`) and training loops in tests and benchmarks. It is a
pure function of its inputs (files, options, state, seed): no clock, no environment.

The combining is the strategy's own (its module's :class:`~.strategies.base.Combiner`:
statistics per slice, a choice, a combine per slice, a finish per tensor). This module owns
what every strategy shares: reading the updates in bounded memory, the checks, the fixed
order and the digest.

Memory is bounded by streaming. When the combiner folds (a weighted sum of every valid
update), the engine holds a float64 accumulator and a chunk of a few updates at a time,
reading each update once: up to eight updates that share a file layout are read side by side
(:class:`~fl_gitops.tensors.Lockstep`), their bytes hashed by reader threads (one per core)
while the main thread checks them for NaN and Inf and adds them, in cluster order, to each
accumulator block while it is in cache. Should an update fail its digest or value check at
the end of that pass, the sum is rebuilt without it, so a rejection costs a re-read and never
leaks into the result. The same pass measures each update's distance to the global model
for the influence bounds (``checks.Limits``: by default, 10 x the round's median distance);
the median is known at the end of the pass, and an update it refuses is dropped the same
way. When the combiner needs an update's norm before using it (clipping), or does not fold,
the checks (and the distances) take a pass of their own first. Statistics per slice
(Krum's distances) and coordinate-wise combines (median, trimmed mean) read the same slice
of every update side by side, so memory is K times a slice, not K models. Updates are summed
in a fixed order (by cluster name), each element getting the same float64 operations in the
same order however the updates are grouped or chunked (``strategies/_arith.py``): any
arrival order and any chunk size give the same bytes.

Where the time goes (K=32 updates of 100 MB, ``bench/aggregate.py``): SHA-256 of every
update is required and costs about 50 ms of CPU per 100 MB, more than half of the total; the
weighted sum about 18 ms. With a warm page cache a plain read of the files is several times
faster than all the cores can hash them, so the pass is bound by hashing, not by reading.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import hashlib
import math
import os
import tempfile
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fl_gitops import __version__
from fl_gitops.aggregate import checks
from fl_gitops.aggregate._blas import with_one_blas_thread
from fl_gitops.aggregate.checks import Expectation, Limits, UpdateMeta
from fl_gitops.aggregate.strategies import Plan
from fl_gitops.aggregate.strategies import plan as make_plan
from fl_gitops.aggregate.strategies._arith import (
    BLOCK,
    add_weighted,
    finite,
    squared_distance,
    squared_distance_bound,
)
from fl_gitops.aggregate.strategies.base import (
    F64,
    Block,
    Choice,
    Combiner,
    Pool,
    Slice,
    TooFewUpdates,
)
from fl_gitops.errors import FlGitopsError, StoreError, UpdateRejected
from fl_gitops.reports import HubReport
from fl_gitops.store import ModelStore, NotInStore
from fl_gitops.tensors import (
    BF16,
    DEFAULT_CHUNK,
    Header,
    HeaderError,
    Layout,
    Lockstep,
    ReadFailed,
    TensorReader,
    ThreadBuffers,
    Widener,
    aligned_empty,
    narrow_into,
    new_hasher,
    parse_header,
    read_ahead,
    read_header,
    same_layout,
    sha256_digest,
    sha256_file,
    value_dtype,
    values_f64,
    widen,
)

__all__ = [
    "AggregateResult",
    "NotEnoughUpdates",
    "Update",
    "aggregate_from_store",
    "aggregate_round",
    "load_state",
]

# Budget for the K x chunk float64 stack of coordinate-wise strategies and Krum.
_STACK_BYTES = 64 * 1024 * 1024


class NotEnoughUpdates(FlGitopsError):
    """Too few valid updates remain to aggregate the round (the CLI exits 1).

    Carries the facts, not only a sentence: ``valid`` updates were left, ``needed`` were
    required (the quorum, or what the strategy needs), ``rejected`` says why each other
    update was refused, and ``requirement`` is the strategy's own condition when it was the
    strategy (Krum's n >= 2f + 3) rather than the quorum that was not met.
    """

    def __init__(
        self,
        round_: int,
        *,
        valid: int,
        needed: int,
        rejected: Mapping[str, str],
        requirement: str | None = None,
    ) -> None:
        self.round = round_
        self.valid = valid
        self.needed = needed
        self.requirement = requirement
        self.rejected = dict(sorted(rejected.items()))
        self.more = [f"rejected {c}: {r}" for c, r in self.rejected.items()]
        detail = requirement or f"{valid} valid update(s), at least {needed} needed"
        super().__init__(f"round {round_}: {detail}")

    def with_rejected(self, more: Mapping[str, str]) -> NotEnoughUpdates:
        """The same shortfall with further rejections (found before aggregation) merged in."""
        return NotEnoughUpdates(
            self.round,
            valid=self.valid,
            needed=self.needed,
            rejected={**self.rejected, **more},
            requirement=self.requirement,
        )


@dataclass(frozen=True)
class Update:
    """One cluster's update as aggregation sees it: a local file and its metadata.

    ``reported`` is what the cluster reported through the hub (its digest, examples and
    metrics), when known: it overrides the metadata's ``sha256``, ``num_examples`` and
    ``metrics``, because anyone who can write to the store can rewrite the metadata, while
    only the cluster can write its own work's status.
    """

    cluster: str
    path: str | os.PathLike[str]
    meta: Mapping[str, Any]
    reported: HubReport | None = None


@dataclass(frozen=True)
class AggregateResult:
    """What a round produced.

    Attributes:
        model: the new global model's safetensors bytes (a bytearray from a merge of
            shards, assembled in place to hold the model once).
        digest: ``sha256:<hex>`` of ``model``.
        contributors: the clusters whose updates went into the model, sorted.
        weights: each contributor's weight, summing to 1.
        rejected: cluster -> reason, for every update refused.
        metrics: the accepted updates' metrics, averaged weighted by num_examples.
        new_state: the strategy's state after this round (safetensors bytes), or None.
        record: a JSON-able account of the round, for the store and the round log.
    """

    model: bytes | bytearray
    digest: str
    contributors: list[str]
    weights: dict[str, float]
    rejected: dict[str, str]
    metrics: dict[str, float]
    new_state: bytes | None
    record: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Candidate:
    cluster: str
    path: str
    meta: UpdateMeta
    header: Header
    norm: float | None = None
    # Where the expected digest comes from: "hub" (reported) or "metadata" (the store's).
    authority: str = "metadata"


def _is_float(dtype: np.dtype[Any]) -> bool:
    return dtype.kind == "f" or dtype == BF16


def _state_dtype(dtype: np.dtype[Any]) -> np.dtype[Any]:
    """The dtype a strategy's state is kept in: the model's, but float32 for a BF16 model,
    because a server optimiser's moments rounded to 8 bits every round drift (the model
    itself is rounded once per round from float64, like every other dtype)."""
    return value_dtype(dtype)


def _as_values(
    arr: np.ndarray[Any, Any], buf: np.ndarray[Any, Any] | None = None
) -> np.ndarray[Any, Any]:
    """An array read for arithmetic: BF16 widened (exactly) to float32, in ``buf`` if given
    (at least as large), anything else as it is."""
    if arr.dtype != BF16:
        return arr
    return widen(arr, None if buf is None else buf[: arr.size])


_widener = Widener()


def add_values(
    segment: F64,
    rows: list[np.ndarray[Any, Any]],
    weights: Sequence[float],
    tmp: F64,
    scales: Sequence[float] | None = None,
    base: np.ndarray[Any, Any] | None = None,
    distances: list[float] | None = None,
    scratch: np.ndarray[Any, Any] | None = None,
) -> set[int]:
    """``add_weighted`` on rows (and a base) that may be BF16: those are widened to float32
    a summing block at a time (``BLOCK`` elements, a cache-resident buffer per row), so no
    float32 copy larger than a block is made; and since ``add_weighted`` works block by
    block, calling it on each block in turn is the same arithmetic, to the bit, as one
    call on the whole segment.

    float16 rows are widened the same way when their distances are measured: the sum's
    products are the same (float16 and float32 both widen exactly to float64), and the
    distance is then taken in float32 from cache, as ``squared_distance_bound`` takes it,
    instead of through numpy's element-by-element float16 arithmetic (about 4x the whole
    kernel's time). The global model's float16 block is widened once for every row, but only
    when no row is clipped (a clipped row's ``(1 − s)·base`` stays the float16 product)."""
    measured = distances is not None and scales is None
    narrow = (BF16, np.dtype(np.float16)) if measured else (BF16,)
    wide = any(r.dtype in narrow for r in rows) or (base is not None and base.dtype in narrow)
    if not wide:
        return add_weighted(segment, rows, weights, tmp, scales, base, distances, scratch)
    bad: set[int] = set()
    k = len(rows)
    widened = all(r.dtype in narrow for r in rows)  # then no row needs a staging copy
    for start in range(0, segment.size, BLOCK):
        stop = start + BLOCK
        parts = [
            _widener.get(i, r[start:stop]) if r.dtype in narrow else r[start:stop]
            for i, r in enumerate(rows)
        ]
        b = None
        if base is not None:
            b = _widener.get(k, base[start:stop]) if base.dtype in narrow else base[start:stop]
        bad |= add_weighted(
            segment[start:stop],
            parts,
            weights,
            tmp,
            scales,
            b,
            distances,
            scratch,
            in_cache=widened,
        )
    return bad


# A mean reads this many updates side by side and adds them to each accumulator block
# while it is in cache: the accumulator (twice the model in float64) crosses memory once
# per group instead of once per update (K=32 x 100 MB: 8 took about 5% less time than 4,
# 16 more than 4).
_LANES = 8
# The kernel is asked to start reading the first bytes of each update of the next group
# (its own readahead then follows the reads): the disk never waits for a group to start,
# and the page cache holds at most a group's worth of bytes read ahead.
_PREFETCH_BYTES = 16 * 1024 * 1024
# Each update of a group is read up to this many chunks ahead of the summing.
_DEPTH = 3
# The side-by-side read buffers (three per update in a group) take at most about half the
# model, between 64 KB and 1 MB each: small enough that a chunk read on one core is still in
# the shared cache when it is hashed and summed (on 100 MB updates, 1 MB chunks took about
# 10% less CPU than 4 MB ones), large enough that the per-chunk work (a queue hand-off, a
# numpy call per block per update, each a chance for the reader threads to take the GIL)
# does not dominate: K = 24 x 50 MB ran in 0.43 s with 512 KB chunks against 0.54 s with
# 128 KB ones (a share of 1/8), and the distance bound cost 7% against 13%.
_SLOT_SHARE = 2
_SLOT_MIN = 64 * 1024
_SLOT_MAX = 1024 * 1024


def _pow2_floor(n: int) -> int:
    """The largest power of two <= ``n`` (1 for n < 1)."""
    return 1 << (max(1, n).bit_length() - 1)


def _slot_bytes(header: Header) -> int:
    """A power of two, so that the reading steps of every tensor (and the distance
    bound's float sums over them) fall on a grid a sharded round can cut along
    (``_shards``: every shard boundary is a multiple of the chunk within its tensor)."""
    model = sum(t.nbytes for t in header.tensors.values())
    return _pow2_floor(max(_SLOT_MIN, min(_SLOT_MAX, model // (_SLOT_SHARE * _DEPTH * _LANES))))


def _stack_step(size: int, k: int, chunk: int) -> int:
    """The width of one K x c block of a tensor of ``size`` elements: a power of two within
    the stack budget and at most ``chunk``, so that blocks (and Krum's partial sums over
    them) fall on the grid shards cut along."""
    return max(1, min(size, _pow2_floor(_STACK_BYTES // (8 * k)), _pow2_floor(chunk)))


def _prefetch(path: str, length: int = 0) -> None:
    """Ask the kernel to start reading a file's first ``length`` bytes (0: all of it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        read_ahead(fd, 0, length or os.fstat(fd).st_size)
    finally:
        os.close(fd)


_distance_buffers = ThreadBuffers()


def _distance_scratch(dtype: np.dtype[Any], size: int) -> np.ndarray[Any, Any]:
    """This thread's reused scratch for the distance bound over ``dtype`` values."""
    # distance_scratch's dtype: the values' float type, float32 if narrower.
    return _distance_buffers.get("distance", np.result_type(dtype, np.float32), size)


class _Scan:
    """One pass over an update file: hash every byte, check values, and sum the update's
    squared distance to the global model slice by slice when it is needed (a norm bound, or a
    combiner that clips by it).

    The hash runs on a helper thread while the main thread checks the same
    chunk (hashlib and numpy both release the GIL), and the pass waits for both before it
    reads the next chunk into the shared buffer.
    """

    def __init__(
        self,
        cand: _Candidate,
        base: TensorReader | None,
        need_norm: bool,
        chunk: int,
        pool: ThreadPoolExecutor | None,
        exact: bool = True,
    ) -> None:
        self.chunk = chunk
        self.cand = cand
        self.base = base
        self.need_norm = need_norm
        self.pool = pool
        # Exact (float64) when a combiner clips by the norm; a bound alone takes the
        # cheaper sum (``squared_distance_bound``), as the summing pass does.
        self.exact = exact

    def run(self) -> float | None:
        cand = self.cand
        h = new_hasher(cand.meta.sha256)
        bad_tensor: str | None = None
        sumsq = 0.0
        # A BF16 chunk is widened into these (one chunk each, never the tensor) after its
        # bytes went to the hash.
        wide = np.empty(0, dtype=np.float32)
        wide_base = np.empty(0, dtype=np.float32)
        with TensorReader(cand.path, cand.header) as reader:
            with open(cand.path, "rb") as f:
                h.update(f.read(cand.header.data_start))
            for info in sorted(cand.header.tensors.values(), key=lambda t: t.start):
                check = _is_float(info.np_dtype)
                bf16 = info.np_dtype == BF16
                for offset, raw_chunk in reader.chunks(info.name, self.chunk):
                    raw = memoryview(raw_chunk.view(np.uint8))  # type: ignore[arg-type]
                    pending = self.pool.submit(h.update, raw) if self.pool else None
                    if pending is None:
                        h.update(raw)
                    try:
                        chunk = raw_chunk
                        if bf16 and check:
                            if wide.size < raw_chunk.size:
                                wide = np.empty(raw_chunk.size, dtype=np.float32)
                            chunk = _as_values(raw_chunk, wide)
                        if check and bad_tensor is None and not finite(chunk):
                            bad_tensor = info.name
                        if self.need_norm and check and self.base is not None:
                            b = self.base.range(info.name, offset, chunk.size)
                            if b.dtype == BF16:
                                if wide_base.size < b.size:
                                    wide_base = np.empty(b.size, dtype=np.float32)
                                b = _as_values(b, wide_base)
                            if self.exact:
                                sumsq += squared_distance(chunk, b)
                            else:
                                d = _distance_scratch(b.dtype, b.size)
                                with np.errstate(over="ignore", invalid="ignore"):
                                    sumsq += squared_distance_bound(chunk, b, d)
                    finally:
                        if pending is not None:
                            pending.result()
        digest = f"{cand.meta.sha256.partition(':')[0]}:{h.hexdigest()}"
        if digest != cand.meta.sha256:
            raise _digest_mismatch(cand, digest)
        if bad_tensor is not None:
            raise checks.NonFiniteValues(cand.cluster, f"tensor {bad_tensor!r} holds NaN or Inf")
        return math.sqrt(sumsq) if self.need_norm else None


def _norm(cand: _Candidate) -> float:
    """A measured distance; NaN (from NaN values, refused anyway) counts as infinitely far."""
    assert cand.norm is not None
    return math.inf if math.isnan(cand.norm) else cand.norm


def _digest_mismatch(cand: _Candidate, digest: str) -> checks.DigestMismatch:
    """The rejection of an update whose bytes hash to ``digest``, naming both digests."""
    if cand.authority == "hub":
        reason = f"the store's update hashes to {digest}, the hub reported {cand.meta.sha256}"
    else:
        reason = f"file hashes to {digest}, metadata says {cand.meta.sha256}"
    return checks.DigestMismatch(cand.cluster, reason)


def load_state(data: bytes | None, plan: Plan, base: Header) -> dict[str, np.ndarray[Any, Any]]:
    """Parse a strategy's state file and check it fits the plan and the model.

    Raises:
        StoreError: the bytes are not a state file of this strategy for this model.
    """
    return {
        key: values_f64(view.reshape(base.tensors[key.partition("/")[2]].shape))
        for key, view in state_views(data, plan, base).items()
    }


def state_views(data: bytes | None, plan: Plan, base: Header) -> dict[str, np.ndarray[Any, Any]]:
    """A strategy's state file, checked to fit the plan and the model, as flat views into
    its bytes (tensor by tensor, in its own dtype): what :func:`load_state` converts
    whole, and a shard converts a sub-slice at a time.

    Raises:
        StoreError: the bytes are not a state file of this strategy for this model.
    """
    if data is None or not plan.state_names:
        return {}
    try:
        header = parse_header(data, len(data))
    except HeaderError as exc:
        raise StoreError(f"strategy state for {plan.strategy}: not safetensors: {exc}") from None
    owner = header.metadata.get("strategy")
    if owner != plan.strategy:
        raise StoreError(
            f"strategy state: written by strategy {owner!r}, expected {plan.strategy!r}"
        )
    views: dict[str, np.ndarray[Any, Any]] = {}
    for key, info in header.tensors.items():
        family, _, name = key.partition("/")
        if family not in plan.state_names or name not in base.tensors:
            raise StoreError(f"strategy state: unexpected tensor {key!r}")
        if info.shape != base.tensors[name].shape:
            raise StoreError(
                f"strategy state: tensor {key!r} has shape {list(info.shape)}, expected "
                f"{list(base.tensors[name].shape)}"
            )
        views[key] = np.frombuffer(data, dtype=info.np_dtype, count=info.size, offset=info.start)
    return views


def run_sums(blocks: Iterable[Block], partials: Callable[[Block], F64], chunk: int) -> list[F64]:
    """The combiner's partials of these blocks (one tensor's, or one piece's) summed within
    each run of ``chunk`` elements, in order: the first level of the two-level sum, the
    pod's and a shard's alike. A function of its own so that the last block, and with it
    its K x c stack, is let go before the caller makes the next stack: held by a loop
    variable it made two stacks at once, 50 MB more at K = 24."""
    runs: list[F64] = []
    at = -1
    for block in blocks:
        part = partials(block)
        if block.slice.offset // chunk != at:
            runs.append(np.zeros_like(part))
            at = block.slice.offset // chunk
        runs[-1] += part
    return runs


def _groups(cands: list[_Candidate]) -> Iterator[list[_Candidate]]:
    """Runs of up to ``_LANES`` consecutive updates that share one file layout."""
    group: list[_Candidate] = []
    for cand in cands:
        if group and (len(group) == _LANES or not same_layout(group[0].header, cand.header)):
            yield group
            group = []
        group.append(cand)
    if group:
        yield group


def _authoritative(u: Update) -> Mapping[str, Any]:
    """The metadata to check: the store's, with what the hub reported in its place."""
    if u.reported is None or not isinstance(u.meta, Mapping):
        return u.meta
    return {
        **u.meta,
        "sha256": u.reported.digest,
        "num_examples": u.reported.num_examples,
        "metrics": dict(u.reported.metrics),
    }


class _Round:
    """The state of one aggregation, from checks to the new model's bytes.

    The combining itself is the strategy's (``plan.combiner``); this runs it: the updates
    read in cluster order, side by side in bounded memory, hashed and checked, the
    combiner's partial statistics summed slice by slice, its choice applied slice by slice
    or, when the choice is a weighted sum, folded update by update as each file is read.
    """

    def __init__(
        self,
        base_path: str,
        base_digest: str,
        plan: Plan,
        expect: Expectation,
        state: Mapping[str, np.ndarray[Any, Any]],
        seed: int,
        chunk: int,
        pool: ThreadPoolExecutor | None,
    ) -> None:
        self.pool = pool
        self.base_path = base_path
        self.plan = plan
        self.combiner: Combiner = plan.combiner
        self.expect = expect
        self.header = expect.base_header
        self.base_digest = base_digest
        self.state = state
        self.seed = seed
        self.chunk = chunk
        self.slot_bytes = _slot_bytes(self.header)
        self.rejected: dict[str, str] = {}
        self.median_distance: float | None = None
        # cluster -> digest, for every update whose bytes hashed to the expected digest.
        self.verified: dict[str, str] = {}

    # -------------------------------------------------------------- checks

    def candidates(
        self,
        updates: Iterable[Update],
        check_file: Callable[[str, Any, Expectation], Header] | None = None,
    ) -> list[_Candidate]:
        """The updates that pass the metadata and header checks, in cluster order.

        ``check_file`` reads and checks an update's header (default ``checks.check_file``;
        a shard passes one that reads a store URI by byte range)."""
        check_file = check_file or checks.check_file
        seen: dict[str, Update] = {}
        for u in updates:
            if u.cluster in seen:
                raise ValueError(f"two updates for cluster {u.cluster!r}")
            seen[u.cluster] = u
        out = []
        for cluster in sorted(seen):
            u = seen[cluster]
            try:
                meta = checks.check_meta(cluster, _authoritative(u), self.expect)
                header = check_file(cluster, u.path, self.expect)
            except UpdateRejected as exc:
                self.rejected[cluster] = exc.reason
                continue
            authority = "metadata" if u.reported is None else "hub"
            out.append(_Candidate(cluster, os.fspath(u.path), meta, header, authority=authority))
        return out

    def measures(self, n: int) -> bool:
        """Whether ``n`` candidates need their distance to the global model for a bound."""
        limits = self.expect.limits
        return limits.max_l2_norm is not None or (
            limits.median_distance_multiple is not None and n >= 2
        )

    def scan_all(self, cands: list[_Candidate], base: TensorReader) -> list[_Candidate]:
        exact = self.combiner.needs_norms
        need_norm = exact or self.measures(len(cands))
        ok = []
        for i, cand in enumerate(cands):
            for ahead in cands[i : i + 2] if i == 0 else cands[i + 1 : i + 2]:
                _prefetch(ahead.path)
            try:
                scan = _Scan(cand, base, need_norm, self.chunk, self.pool, exact)
                cand.norm = scan.run()
            except UpdateRejected as exc:
                self.rejected[cand.cluster] = exc.reason
                continue
            except HeaderError:
                # Shorter than its header said by the time it was read.
                reason = "file ended while it was read (truncated)"
                self.rejected[cand.cluster] = checks.NotSafetensors(cand.cluster, reason).reason
                continue
            except OSError as exc:
                code = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
                reason = f"update file cannot be read ({code})"
                self.rejected[cand.cluster] = checks.UnreadableUpdate(cand.cluster, reason).reason
                continue
            self.verified[cand.cluster] = cand.meta.sha256
            ok.append(cand)
        return self.bound(ok) if need_norm else ok

    def bound(self, cands: list[_Candidate]) -> list[_Candidate]:
        """The candidates within the distance bounds (each one's ``norm`` measured).

        First the absolute bound (``max_l2_norm``), then the relative one: farther than
        ``median_distance_multiple`` times the lower median of the distances left (with
        two or more updates). The median is the round's own: taken once, over every update
        that passed the other checks, never again after a rejection (so a bound does not
        peel a round away update by update).
        """
        limits = self.expect.limits
        absolute = limits.max_l2_norm
        ok = []
        for cand in cands:
            norm = _norm(cand)
            if absolute is not None and not norm <= absolute:
                self.rejected[cand.cluster] = checks.NormBoundExceeded(
                    cand.cluster,
                    f"L2 distance to the global model is {norm:.6g}, "
                    f"over the bound of {absolute:.6g}",
                ).reason
                continue
            ok.append(cand)
        multiple = limits.median_distance_multiple
        if multiple is None or len(ok) < 2:
            return ok
        median = sorted(_norm(c) for c in ok)[(len(ok) - 1) // 2]
        self.median_distance = median
        limit = multiple * median
        kept = []
        for cand in ok:
            norm = _norm(cand)
            if not norm <= limit:
                self.rejected[cand.cluster] = checks.DistanceBoundExceeded(
                    cand.cluster,
                    f"L2 distance to the global model is {norm:.6g}, over {multiple:g} x "
                    f"the round's median distance of {median:.6g}",
                ).reason
                continue
            kept.append(cand)
        return kept

    def require(self, n: int) -> None:
        """Raises NotEnoughUpdates below the quorum or what the combiner needs."""
        needed = max(1, self.expect.limits.min_updates)
        if n < needed:
            raise NotEnoughUpdates(
                self.expect.round, valid=n, needed=needed, rejected=self.rejected
            )
        try:
            self.combiner.require(n)
        except TooFewUpdates as exc:
            raise NotEnoughUpdates(
                self.expect.round,
                valid=n,
                needed=exc.needed,
                rejected=self.rejected,
                requirement=exc.requirement,
            ) from None

    def pool_of(self, cands: list[_Candidate], stats: F64 | None) -> Pool:
        norms = None
        if self.combiner.needs_norms:
            norms = tuple(c.norm if c.norm is not None else 0.0 for c in cands)
        return Pool(
            clusters=tuple(c.cluster for c in cands),
            weights=tuple(self.weight(c) for c in cands),
            norms=norms,
            stats=stats,
            seed=self.seed,
        )

    # -------------------------------------------------------------- reading for the combiner

    def weight(self, cand: _Candidate) -> float:
        return float(cand.meta.num_examples) if self.combiner.weighted else 1.0

    def _fresh_acc(self) -> dict[str, np.ndarray[Any, Any]]:
        return {n: np.zeros(t.size, dtype=np.float64) for n, t in self.header.tensors.items()}

    def fold(
        self, cands: list[_Candidate], choice: Choice, base: TensorReader
    ) -> dict[str, np.ndarray[Any, Any]]:
        """A linear choice's Σ wᵢ·ũᵢ over the whole model, one update (already checked) at
        a time: the arithmetic of ``choice.combine`` on each slice, element by element."""
        acc = self._fresh_acc()
        tmp = np.empty(BLOCK, dtype=np.float64)
        for cand, w, s in zip(cands, choice.weights, choice.scales, strict=True):
            with TensorReader(cand.path, cand.header) as reader:
                for name in sorted(cand.header.tensors):
                    total = acc[name]
                    for offset, chunk in reader.chunks(name, self.chunk):
                        b = base.range(name, offset, chunk.size) if s != 1.0 else None
                        segment = total[offset : offset + chunk.size]
                        add_values(segment, [chunk], [w], tmp, [s], b)
        return acc

    def mean_fused(
        self, cands: list[_Candidate], base: TensorReader | None = None
    ) -> tuple[dict[str, np.ndarray[Any, Any]], list[_Candidate]]:
        """Check and sum the updates in one pass, a group at a time (a folding combiner).

        Each group (up to ``_LANES`` updates in cluster order that share one file layout)
        is read side by side, every byte hashed, and added to the accumulator block by
        block in cluster order: each element gets the same float64 additions in the same
        order as one update at a time, so the bytes do not depend on the grouping. Should
        an update of a group fail its digest or value check (known only at the end of the
        group), the sum is rebuilt from scratch without it, every update read and checked
        again: a rejection costs a re-read and never leaks into the result.

        With ``base``, each update's distance to the global model is measured in the same
        pass (``cand.norm``), from the chunks already in cache, for the distance bounds.
        """
        acc = self._fresh_acc()
        tmp = np.empty(BLOCK, dtype=np.float64)
        # Read buffers for one group, reused by every group: fresh pages cost a fault each.
        # (One more lane: the global model, read beside the updates to measure them.)
        lanes = _LANES + (1 if base is not None else 0)
        buffers = [aligned_empty(self.slot_bytes) for _ in range(_DEPTH * lanes)]
        todo = list(cands)
        while True:
            groups = list(_groups(todo))
            accepted: list[_Candidate] = []
            for g, group in enumerate(groups):
                for ahead in groups[g : g + 2] if g == 0 else groups[g + 1 : g + 2]:
                    for cand in ahead:
                        _prefetch(cand.path, _PREFETCH_BYTES)
                bad = self._sum_group(group, acc, tmp, buffers, base)
                if bad:
                    self.rejected.update(bad)
                    todo = [c for c in todo if c.cluster not in bad]
                    for a in acc.values():
                        a.fill(0.0)
                    break
                accepted.extend(group)
                self.verified.update((c.cluster, c.meta.sha256) for c in group)
            else:
                return acc, accepted

    def _sum_group(
        self,
        group: list[_Candidate],
        acc: dict[str, np.ndarray[Any, Any]],
        tmp: np.ndarray[Any, Any],
        buffers: list[np.ndarray[Any, Any]],
        base: TensorReader | None,
    ) -> dict[str, str]:
        """Read, hash, check and add a group of updates (and measure each one's distance
        to ``base``, if given); return the rejections."""
        weights = [self.weight(c) for c in group]
        bad_tensor: list[str | None] = [None] * len(group)
        sumsq = [0.0] * len(group)
        floating = {n: _is_float(t.np_dtype) for n, t in self.header.tensors.items()}
        paths = [c.path for c in group]
        headers = [c.header for c in group]
        # The global model rides along as an unhashed lane when it shares the updates'
        # layout (the usual case): its chunks come from the reader threads, side by side.
        beside = base is not None and same_layout(self.header, group[0].header)
        if beside:
            paths.append(self.base_path)
            headers.append(self.header)
        try:
            # An overflowing difference is a distance of inf (refused); not worth a warning.
            with (
                np.errstate(over="ignore", invalid="ignore"),
                Lockstep(
                    paths,
                    headers,
                    slot_bytes=self.slot_bytes,
                    max_elements=self.chunk,
                    depth=_DEPTH,
                    buffers=buffers,
                    hashed=len(group),
                    algorithms=[c.meta.sha256.partition(":")[0] for c in group],
                ) as lockstep,
            ):
                for name, offset, views in lockstep.chunks():
                    n = views[0].size
                    segment = acc[name][offset : offset + n]
                    b = d = None
                    if beside:
                        b = views.pop()
                    if base is not None and floating[name]:
                        # Measured as each block is summed, while it is in cache.
                        if b is None:
                            b = base.range(name, offset, n)
                        d = _distance_scratch(value_dtype(b.dtype), min(n, BLOCK))
                    else:
                        b = None
                    measured = sumsq if b is not None else None
                    for i in add_values(segment, views, weights, tmp, None, b, measured, d):
                        if bad_tensor[i] is None:
                            bad_tensor[i] = name
                digests = lockstep.digests()
        except ReadFailed as exc:
            if exc.index >= len(group):  # the global model's lane: not a cluster's fault
                raise StoreError(f"global model {self.base_path}: {exc}") from None
            cand = group[exc.index]
            if exc.error is not None:
                reason = f"update file cannot be read at byte {exc.offset} ({exc.error})"
                return {cand.cluster: checks.UnreadableUpdate(cand.cluster, reason).reason}
            reason = f"file ended at byte {exc.offset} while it was read (truncated)"
            return {cand.cluster: checks.NotSafetensors(cand.cluster, reason).reason}
        rejected = {}
        for cand, digest, bad, sq in zip(group, digests, bad_tensor, sumsq, strict=True):
            if base is not None:
                cand.norm = math.sqrt(sq)
            if digest != cand.meta.sha256:
                rejected[cand.cluster] = _digest_mismatch(cand, digest).reason
            elif bad is not None:
                rejected[cand.cluster] = checks.NonFiniteValues(
                    cand.cluster, f"tensor {bad!r} holds NaN or Inf"
                ).reason
        return rejected

    def _blocks(self, cands: list[_Candidate], base: TensorReader, name: str) -> Iterator[Block]:
        """The blocks of one tensor: the K updates side by side, a K x c float64 stack."""
        k = len(cands)
        size = self.header.tensors[name].size
        step = _stack_step(size, k, self.chunk)
        # One flat buffer, each block a contiguous K x n view of its front (a column slice
        # of a K x step array is not contiguous, and BLAS would copy it for Krum's product).
        stack = np.empty(k * step, dtype=np.float64)
        with contextlib.ExitStack() as stack_ctx:
            readers = [stack_ctx.enter_context(TensorReader(c.path, c.header)) for c in cands]
            for offset in range(0, size, step):
                n = min(step, size - offset)
                view = stack[: k * n].reshape(k, n)
                for i, reader in enumerate(readers):
                    view[i] = _as_values(reader.range(name, offset, n))
                yield Block(
                    Slice(name, offset, n),
                    view,
                    functools.partial(_base_values, base, name, offset, n),
                )

    def partials(self, cands: list[_Candidate], base: TensorReader) -> F64 | None:
        """The combiner's partial statistics, summed over every slice in model order."""
        partials = self.combiner.partials
        if partials is None:
            return None
        # Summed in two levels: the blocks of each run of ``chunk`` elements of a tensor,
        # then those runs in model order. A run never straddles a shard boundary, so a
        # shard sends one sum per run (not per block) and the total is the same floats.
        total: F64 | None = None
        for name in sorted(self.header.tensors):
            for run in run_sums(self._blocks(cands, base, name), partials, self.chunk):
                total = run if total is None else total + run
        return total

    def combine(
        self, cands: list[_Candidate], choice: Choice, base: TensorReader
    ) -> dict[str, np.ndarray[Any, Any]]:
        """A choice's combined values, slice by slice over the kept updates side by side."""
        names = sorted(self.header.tensors)
        return {name: self._combined(cands, choice, base, name) for name in names}

    def _combined(
        self, cands: list[_Candidate], choice: Choice, base: TensorReader, name: str
    ) -> F64:
        """One tensor combined (its own function, as :meth:`_runs`, so that its stack is let
        go before the next tensor's is made)."""
        agg = np.empty(self.header.tensors[name].size, dtype=np.float64)
        for block in self._blocks(cands, base, name):
            sl = block.slice
            agg[sl.offset : sl.offset + sl.size] = choice.combine(block)
        return agg

    # -------------------------------------------------------------- the new model

    def finish(
        self,
        agg: dict[str, np.ndarray[Any, Any]],
        choice: Choice,
        base: TensorReader,
    ) -> tuple[bytes, str, bytes | None]:
        """Let the choice finish each tensor (divide, noise, server step) and write the model.

        Returns the model's bytes, its ``sha256:<hex>`` and the new strategy state. The
        model is hashed a tensor at a time on the pool while the next tensor is written.
        """
        plan = self.plan
        layout = Layout.plan({n: (t.np_dtype, t.shape) for n, t in self.header.tensors.items()})
        out = layout.allocate()
        hasher = _ChainedHash(self.pool)
        hasher.update(out[: len(layout.header)])
        new_state: dict[str, np.ndarray[Any, Any]] = {}
        # Sorted names are the layout's order: once a tensor is written, every byte before
        # its end is final and can be hashed.
        for name in sorted(self.header.tensors):
            info = self.header.tensors[name]
            view = layout.view(out, name)
            values = agg.pop(name).reshape(info.shape)
            prev = {s: self.state.get(f"{s}/{name}") for s in plan.state_names}
            bf16 = info.np_dtype == BF16
            st = choice.finish(
                name,
                values,
                # BF16: finished in float64 in place, then rounded once (no float32 step).
                values if bf16 else view,
                _is_float(info.np_dtype),
                functools.partial(_read_f64, base, name),
                prev,
            )
            if bf16:
                narrow_into(view, values)
            for s, arr in st.items():
                new_state[f"{s}/{name}"] = arr.astype(_state_dtype(info.np_dtype))
            del values
            hasher.update(view.reshape(-1).view(np.uint8))
        state_bytes = None
        if plan.state_names:
            state_layout = Layout.plan(
                {n: (a.dtype, a.shape) for n, a in new_state.items()},
                {"strategy": plan.strategy, "round": str(self.expect.round)},
            )
            buf = state_layout.allocate()
            for n, a in new_state.items():
                state_layout.view(buf, n)[...] = a
            state_bytes = buf.tobytes()
        model = out.tobytes()
        digest = "sha256:" + hasher.hexdigest()
        return model, digest, state_bytes


def _read_f64(base: TensorReader, name: str) -> F64:
    return values_f64(base.read(name))


def _base_values(base: TensorReader, name: str, offset: int, n: int) -> np.ndarray[Any, Any]:
    """The global model's elements ``[offset, offset + n)`` of a tensor, for arithmetic."""
    return _as_values(base.range(name, offset, n))


class _ChainedHash:
    """SHA-256 of consecutive buffers, each hashed on the pool while the caller goes on.

    One update runs at a time, in order: the next waits for the previous. Buffers must
    stay unchanged until :meth:`hexdigest`.
    """

    def __init__(self, pool: ThreadPoolExecutor | None) -> None:
        self._h = hashlib.sha256()
        self._pool = pool
        self._pending: Future[None] | None = None

    def update(self, data: np.ndarray[Any, Any]) -> None:
        self._wait()
        if self._pool is None:
            self._h.update(memoryview(data))  # type: ignore[arg-type]
        else:
            self._pending = self._pool.submit(self._h.update, memoryview(data))  # type: ignore[arg-type]

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def hexdigest(self) -> str:
        self._wait()
        return self._h.hexdigest()


def _weighted_metrics(cands: list[_Candidate]) -> dict[str, float]:
    """Each metric's mean over the updates that report it, weighted by their examples.

    Never ``inf``: the weights are normalised (each at most 1) before they multiply a value
    bounded by ``checks`` (at most 1e15), and the terms are added exactly (``fsum``).
    """
    names = sorted({name for c in cands for name in c.meta.metrics})
    out: dict[str, float] = {}
    for name in names:
        having = [c for c in cands if name in c.meta.metrics]
        total = math.fsum(c.meta.num_examples for c in having)
        value = math.fsum(c.meta.num_examples / total * c.meta.metrics[name] for c in having)
        if math.isfinite(value):
            out[name] = value
    return out


def _finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


@contextlib.contextmanager
def _base_file(base: str | os.PathLike[str] | bytes) -> Iterator[str]:
    if isinstance(base, bytes | bytearray | memoryview):
        fd, tmp = tempfile.mkstemp(prefix="fl-gitops-base-", suffix=".safetensors")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(base)
            yield tmp
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
    else:
        yield os.fspath(base)


def _round_record(
    job: _Round,
    plan: Plan,
    limits: Limits,
    contributors: list[_Candidate],
    accepted: list[_Candidate],
    weights: Mapping[str, float],
    metrics: Mapping[str, float],
    digest: str,
    choice: Choice,
    resumed: bool,
) -> dict[str, Any]:
    """The round record: one builder for one pod's round and a sharded round's merge."""
    capped = sorted(
        c.cluster
        for c in accepted
        if limits.cap_num_examples
        and limits.max_num_examples is not None
        and c.meta.num_examples == limits.max_num_examples
    )
    return {
        "round": job.expect.round,
        "strategy": plan.strategy,
        "options": dict(plan.options),
        "base_model": job.base_digest,
        "model": digest,
        "contributors": [c.cluster for c in contributors],
        "weights": dict(weights),
        "num_examples": {c.cluster: c.meta.num_examples for c in accepted},
        # The digest of every update whose bytes were verified (each contributor, and any
        # then refused by a distance bound, which a re-aggregation must see again to find
        # the same median): what `fl-gitops verify` checks the store against.
        "updates": dict(sorted(job.verified.items())),
        "seed": job.seed,
        "rejected": dict(sorted(job.rejected.items())),
        "metrics": dict(metrics),
        "state": {"names": list(plan.state_names), "resumed": resumed},
        "limits": limits.record(),
        "influence": {
            "median_distance": _finite_or_none(job.median_distance),
            "capped_num_examples": capped,
        },
        "fl_gitops_version": __version__,
        **choice.record,
    }


@with_one_blas_thread
def aggregate_round(
    base: str | os.PathLike[str] | bytes,
    updates: Iterable[Update | tuple[Any, ...]],
    *,
    strategy: str,
    round: int,
    options: Mapping[str, Any] | None = None,
    state: bytes | None = None,
    roster: Collection[str] | None = None,
    limits: Limits | None = None,
    seed: int = 0,
    base_digest: str | None = None,
    chunk_elements: int = DEFAULT_CHUNK,
) -> AggregateResult:
    """Check a round's updates and aggregate the valid ones into the next global model.

    Args:
        base: the global model the round trained from (a local path, or its bytes).
        updates: ``Update(cluster, path, meta)`` or ``(cluster, path, meta)`` tuples, in
            any order; ``path`` is a local safetensors file, ``meta`` its JSON metadata.
        strategy: a name from ``STRATEGIES``.
        round: the round being aggregated; updates for another round are rejected.
        options: the strategy's options (validated here; defaults filled in).
        state: the strategy's state after the previous round (safetensors bytes from
            ``ModelStore.get_state``), or None to start fresh.
        roster: the clusters allowed to contribute; None allows any.
        limits: size, norm and quorum bounds.
        seed: seeds the DP noise (the only randomness).
        base_digest: the base's digest if already known (else computed from its bytes).
        chunk_elements: how many elements to read at a time.

    Returns:
        The new model, its digest, contributors, weights, rejections, metrics, the new
        strategy state and a round record.

    Raises:
        StrategyOptionsError: unknown strategy or bad options.
        NotEnoughUpdates: fewer valid updates than ``limits.min_updates`` (or than Krum
            needs); carries the rejections.
        StoreError: the base is not safetensors, or ``state`` does not fit.
    """
    plan = make_plan(strategy, options)
    limits = limits or Limits()
    items = [u if isinstance(u, Update) else Update(*u) for u in updates]
    # The disk starts on the first updates while the base is read and hashed (a hint only).
    for u in sorted(items, key=lambda u: u.cluster)[:_LANES]:
        _prefetch(os.fspath(u.path), _PREFETCH_BYTES)
    with _base_file(base) as base_path:
        try:
            base_header = read_header(base_path)
        except HeaderError as exc:
            raise StoreError(f"global model {base_path}: not safetensors: {exc}") from None
        if base_digest is None:
            base_digest = (
                sha256_digest(base)
                if isinstance(base, bytes | bytearray | memoryview)
                else sha256_file(base_path)
            )
        expect = Expectation(
            round=round,
            base_digest=base_digest,
            base_header=base_header,
            roster=checks.roster_set(roster),
            limits=limits,
        )
        prior = load_state(state, plan, base_header)
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fl-gitops-hash")
        job = _Round(base_path, base_digest, plan, expect, prior, seed, chunk_elements, pool)
        cands = job.candidates(items)
        with pool, TensorReader(base_path, base_header) as base_reader:
            combiner = plan.combiner
            if combiner.folds:
                # One read of each update: checked, measured and summed in the same pass.
                measure = job.measures(len(cands))
                acc, accepted = job.mean_fused(cands, base_reader if measure else None)
                if measure:
                    kept = job.bound(accepted)
                    if len(kept) < len(accepted):
                        # The sum held an update the bound refused: rebuilt without it,
                        # the same bytes as a round it was never part of.
                        acc, accepted = job.mean_fused(kept)
                job.require(len(accepted))
                choice = combiner.choose(job.pool_of(accepted, None))
                assert choice.linear and len(choice.keep) == len(accepted)
                contributors = accepted
            else:
                accepted = job.scan_all(cands, base_reader)
                job.require(len(accepted))
                stats = job.partials(accepted, base_reader)
                choice = combiner.choose(job.pool_of(accepted, stats))
                contributors = [accepted[i] for i in choice.keep]
                if choice.linear:
                    acc = job.fold(contributors, choice, base_reader)
                else:
                    acc = job.combine(contributors, choice, base_reader)
            weights = {
                c.cluster: share for c, share in zip(contributors, choice.shares, strict=True)
            }
            model, digest, new_state = job.finish(acc, choice, base_reader)
    metrics = _weighted_metrics(accepted)
    record = _round_record(
        job, plan, limits, contributors, accepted, weights, metrics, digest, choice, bool(prior)
    )
    return AggregateResult(
        model=model,
        digest=digest,
        contributors=[c.cluster for c in contributors],
        weights=weights,
        rejected=dict(sorted(job.rejected.items())),
        metrics=metrics,
        new_state=new_state,
        record=record,
    )


def stored_meta(
    store: ModelStore,
    round: int,
    cluster: str,
    reported: Mapping[str, HubReport] | None,
) -> tuple[Mapping[str, Any], HubReport | None, str] | tuple[None, None, str]:
    """A cluster's update metadata and its report through the hub, or the reason it is
    refused before aggregation (no report when reports are the authority, no metadata or
    unreadable metadata): one pod's round and a sharded round's inputs refuse alike.

    Returns:
        ``(meta, report, "")``, or ``(None, None, reason)``.
    """
    report = None
    if reported is not None:
        report = reported.get(cluster)
        if report is None:
            return (
                None,
                None,
                checks.NotReported(cluster, "no result reported through the hub").reason,
            )
    try:
        return store.read_update_meta(round, cluster), report, ""
    except UpdateRejected as exc:
        return None, None, exc.reason
    except NotInStore:
        # Its Job reported success but no update arrived: permanent for this round.
        return None, None, "no update in the store (its Job reported success)"


def aggregate_from_store(
    store: ModelStore,
    round: int,
    base_digest: str,
    *,
    strategy: str,
    options: Mapping[str, Any] | None = None,
    roster: Collection[str] | None = None,
    limits: Limits | None = None,
    seed: int = 0,
    clusters: Collection[str] | None = None,
    reported: Mapping[str, HubReport] | None = None,
) -> AggregateResult:
    """Aggregate round ``round`` from the store (what the reconcile job calls).

    Reads the verified base model, the complete updates of ``clusters`` (default: every one
    the store lists, and every one the hub reported) and the strategy's state after round
    ``round - 1``. Writes nothing: the caller stores ``result.model`` (``put_model``),
    ``result.new_state`` (``put_state(strategy, round, ...)``) and ``result.record``
    (``put_round_record``).

    Args:
        reported: what each cluster reported through the hub (the authority), or None
            for a by-hand aggregation that trusts the store's metadata. When given, an
            update is accepted only when its bytes hash to the reported digest, and is
            weighed by the reported ``num_examples``, with the reported metrics; a cluster
            with no report is rejected.

    Raises:
        StoreError: the base model is missing or corrupt, or the store cannot be read.
        NotEnoughUpdates, StrategyOptionsError: as :func:`aggregate_round`.
    """
    if clusters is not None:
        names = sorted(clusters)
    else:
        names = store.list_updates(round)
        if reported is not None:
            names = sorted(set(names) | set(reported))
    state = store.get_state(strategy, round - 1) if round > 0 else None
    rejected: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        base_path = stack.enter_context(store.model_file(base_digest))
        # A remote store copies no update larger than the checks would accept.
        max_bytes = (limits or Limits()).max_update_bytes or (
            os.path.getsize(base_path) + checks.DEFAULT_SIZE_SLACK
        )
        updates = []
        for cluster in names:
            meta, report, reason = stored_meta(store, round, cluster, reported)
            if meta is None:
                rejected[cluster] = reason
                continue
            try:
                path = stack.enter_context(store.update_file(round, cluster, max_bytes))
            except UpdateRejected as exc:
                rejected[cluster] = exc.reason
                continue
            except NotInStore:
                rejected[cluster] = checks.UpdateFileMissing(
                    cluster, "metadata is present but the update file is not"
                ).reason
                continue
            updates.append(Update(cluster, path, meta, report))
        try:
            result = aggregate_round(
                base_path,
                updates,
                strategy=strategy,
                round=round,
                options=options,
                state=state,
                roster=roster,
                limits=limits,
                seed=seed,
                base_digest=base_digest,
            )
        except NotEnoughUpdates as exc:
            raise exc.with_rejected(rejected) from None
    authority = {"authority": "hub" if reported is not None else "store"}
    if not rejected:
        return dataclasses.replace(result, record={**result.record, **authority})
    # A new result: the one aggregate_round returned is frozen, and stays as it was.
    merged = dict(sorted({**result.rejected, **rejected}.items()))
    return dataclasses.replace(
        result, rejected=merged, record={**result.record, **authority, "rejected": merged}
    )
