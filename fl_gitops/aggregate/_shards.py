"""One round aggregated in N shards by tensor slice, to the bytes of one pod's round.

Why: one pod reading every update of a round is bound by its disk and its cores; N pods
(a Kubernetes Indexed Job, or ``fl-gitops aggregate --shard I/N`` by hand) each read only
their slice of every update. The combining is elementwise, so the slices are independent,
but the round-wide decisions are not (which updates the distance bound refuses, DP's clip
factors, Krum's choice): those come from statistics of the whole updates. So a shard runs
in phases, each shard's files written to one shared directory:

1. ``stats``: the checks on the update's metadata and header (every shard the same), the
   NaN/Inf check of its slice, and each update's squared distance to the global model over
   its slice, as the partial float sums one pod's round adds up (one value per cell of the
   grid the engine reads on, see below). An update named by its block list
   (``blake3-blocks:``, what clusters report now) is checked block by block as the slice is
   read, against the list the store keeps beside it (``_ranges``): the shard reads its
   slice and at most a block beyond each end. One named by a digest of the whole file is
   hashed whole by the shard that owns it (update j belongs to shard j mod N). A folding
   combiner (FedAvg and its server optimizers) also sums the slice in the same read, kept
   when the reduce accepts every update in it, as one pod's pass does; only over the
   prefix of the slice whose float64 fits twice the slice's bytes (all of a float32
   slice, half of a 16-bit one: ``_subslice``), the rest read again to combine it. Slices
   are read by ``pread``, or for a store URI by fsspec's ``cat_file(path, start, end)``.
2. The reduce, run by every shard (and checked by the merge) the same way: the digests,
   the NaN/Inf checks and the distances (the cells added in the order one pod adds them),
   then the engine's own bound, quorum and ``choose``. Krum first needs its pairwise
   distances over the accepted updates: a phase ``partials`` per shard (one K x K sum per
   chunk run of a tensor), the runs summed in model order, then ``choose``.
3. ``combine``: the shard's slice of the combined values, finished (division, DP noise,
   server step with its state) and written as the slice of the new model's data bytes,
   with the decision (the result and the round record) every shard reaches alike. The
   slice is walked in sub-slices, each combined, finished and written (its state
   spooled) before the next, so that a shard's memory is about twice its slice plus a
   constant whatever the dtype (issue 12: at most three times).

Every file carries the plan's id, N, the round, the base model, the strategy and a digest
of the other inputs (options, bounds, seed, prior state, each candidate's digest): a shard
refuses another's file written for anything else, naming it.

:func:`merge_shards` then writes the global model (the layout's header and the shards'
bytes in order), its digest, the state and the result as ``aggregate_round`` returns it.

Bit for bit. Sums over elements are float sums whose grouping matters. The shard plan cuts
the model only at a multiple of the chunk (a power of two, ``DEFAULT_CHUNK``) within a
tensor, and every grid the engine sums over is a power of two no larger (its reading steps,
its cache blocks, its K x c stacks): so each cell a pod sums lies within one shard, and the
shard computes it with the same function. The reduce adds the cells per update in the
order the pod's pass does (the update file's tensor order, then offset). DP noise is drawn
tensor by tensor from one generator: a shard draws (and drops) the noise of everything
before its slice, so its noise is the pod's whatever N, at the cost of drawing that prefix.
"""

from __future__ import annotations

import array
import bisect
import contextlib
import fnmatch
import hashlib
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from fl_gitops.aggregate import checks
from fl_gitops.aggregate._blas import with_one_blas_thread
from fl_gitops.aggregate._engine import (
    AggregateResult,
    NotEnoughUpdates,
    Update,
    _as_values,
    _Candidate,
    _digest_mismatch,
    _is_float,
    _Round,
    _round_record,
    _stack_step,
    _state_dtype,
    _weighted_metrics,
    run_sums,
)
from fl_gitops.aggregate._ranges import (
    BlockCheckedFile,
    BlockMismatch,
    RangeFile,
    StoreRangeFile,
    is_uri,
    open_checked,
    open_range,
    whole_digest,
)
from fl_gitops.aggregate._ranges import local_path as _local_path
from fl_gitops.aggregate._ranges import remote as _remote
from fl_gitops.aggregate._subslice import (
    StateViews,
    StateWriter,
    fold_elements,
)
from fl_gitops.aggregate._subslice import subslice_elements as subslice_for
from fl_gitops.aggregate.checks import Expectation, Limits
from fl_gitops.aggregate.strategies import plan as make_plan
from fl_gitops.aggregate.strategies._arith import (
    BLOCK,
    add_weighted,
    distance_scratch,
    finite,
    squared_distance_bound,
)
from fl_gitops.aggregate.strategies.base import F64, Block, Choice, Slice
from fl_gitops.aggregate.strategies.fedavg import MeanChoice
from fl_gitops.errors import InputError, StoreError
from fl_gitops.tensors import (
    BF16,
    DEFAULT_CHUNK,
    MAX_HEADER_BYTES,
    BlockList,
    Header,
    HeaderError,
    Layout,
    TensorInfo,
    load_bytes,
    narrow_into,
    parse_header,
    read_header,
    replaced_atomically,
    serialize,
    sha256_file,
    widen_f16,
    write_atomic,
)

__all__ = [
    "Piece",
    "RangeFile",
    "Shard",
    "ShardDirError",
    "ShardPlan",
    "StoreRangeFile",
    "aggregate_shard",
    "check_update_file",
    "is_uri",
    "merge_shards",
    "open_range",
    "parse_shard",
    "poll_for",
    "read_shortfall",
    "shard_combine",
    "shard_partials",
    "shard_plan_of",
    "shard_stats",
]

_FORMAT = "fl-gitops/aggregation-shard/v1"


class ShardDirError(InputError):
    """A shard directory is missing a shard's file, or holds one of another round or plan."""


def parse_shard(text: str, flag: str = "--shard") -> tuple[int, int]:
    """``"I/N"`` -> ``(I, N)``, with 0 <= I < N.

    Raises:
        InputError: naming ``flag`` and the expected format.
    """
    left, sep, right = text.partition("/")
    try:
        if not sep:
            raise ValueError
        index, of = int(left), int(right)
    except ValueError:
        index, of = -1, 0
    if not 0 <= index < of:
        raise InputError(f"{flag}: expected I/N with 0 <= I < N (e.g. 0/4), got {text!r}")
    return index, of


@dataclass(frozen=True)
class Piece:
    """Elements ``[start, stop)`` of one tensor (flattened) that a shard owns."""

    name: str
    start: int
    stop: int

    @property
    def size(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class ShardPlan:
    """The model's elements (tensors in name order, end to end) cut into N contiguous runs.

    Deterministic from the global model's header, N and the chunk alone, so every shard
    computes the same plan. Each cut is at a tensor's start or at a multiple of ``chunk``
    elements inside a tensor (see the module docstring), the one nearest an even split.

    Attributes:
        of: N.
        chunk: the grid unit (a power of two).
        cuts: N + 1 offsets into the model's elements.
        sizes: (name, elements) of each tensor in name order.
        id: names the plan (the header's tensors, N, chunk) in every shard's files.
    """

    of: int
    chunk: int
    cuts: tuple[int, ...]
    sizes: tuple[tuple[str, int], ...]
    id: str

    @classmethod
    def of_header(cls, header: Header, of: int, chunk: int = DEFAULT_CHUNK) -> ShardPlan:
        if of < 1:
            raise ValueError(f"a shard plan needs N >= 1, got {of}")
        if chunk < 1 or chunk & (chunk - 1):
            raise ValueError(f"the shard grid's chunk must be a power of two, got {chunk}")
        sizes = tuple((n, header.tensors[n].size) for n in sorted(header.tensors))
        points: list[int] = []
        pos = 0
        for _, size in sizes:
            points.extend(range(pos, pos + size, chunk))
            pos += size
        points.append(pos)
        cuts = [0]
        for k in range(1, of):
            ideal = k * pos // of
            i = bisect.bisect_left(points, ideal)
            near = [p for p in points[max(0, i - 1) : i + 1]]
            best = min(near, key=lambda p: (abs(p - ideal), p))
            cuts.append(max(best, cuts[-1]))
        cuts.append(pos)
        sig = json.dumps(
            [[n, header.tensors[n].dtype, list(header.tensors[n].shape)] for n, _ in sizes]
            + [of, chunk]
        )
        ident = "sha256:" + hashlib.sha256(sig.encode()).hexdigest()
        return cls(of=of, chunk=chunk, cuts=tuple(cuts), sizes=sizes, id=ident)

    def pieces(self, shard: int) -> list[Piece]:
        """Shard ``shard``'s pieces, in name order (at most one per tensor)."""
        lo, hi = self.cuts[shard], self.cuts[shard + 1]
        out = []
        pos = 0
        for name, size in self.sizes:
            a, b = max(lo - pos, 0), min(hi - pos, size)
            if a < b:
                out.append(Piece(name, a, b))
            pos += size
        return out


def check_update_file(cluster: str, path: Any, expect: Expectation) -> Header:
    """``checks.check_file`` for a local path; for a store URI the same checks, the header
    read by range (its first 8 bytes, then its length, bounded)."""
    if not is_uri(path):
        return checks.check_file(cluster, path, expect)
    f = StoreRangeFile(os.fspath(path))
    try:
        size = f.size()
    except FileNotFoundError:
        raise checks.UpdateFileMissing(
            cluster, "metadata is present but the update file is not"
        ) from None
    except OSError as exc:
        reason = f"update file cannot be read ({type(exc).__name__})"
        raise checks.UnreadableUpdate(cluster, reason) from None
    if size > expect.max_bytes:
        raise checks.UpdateTooLarge(
            cluster, f"update file is {size} bytes, larger than the bound of {expect.max_bytes}"
        )
    try:
        first = f.read(0, min(size, 8))
        n = int.from_bytes(first, "little") if len(first) == 8 else 0
        header = parse_header(f.read(0, min(size, 8 + min(n, MAX_HEADER_BYTES))), size)
    except HeaderError as exc:
        reason = f"not a valid safetensors file: {exc}"
        raise checks.NotSafetensors(cluster, reason) from None
    except OSError as exc:
        reason = f"update file cannot be read ({type(exc).__name__})"
        raise checks.UnreadableUpdate(cluster, reason) from None
    return checks.check_header(cluster, header, expect)


def _values(f: RangeFile, info: TensorInfo, start: int, count: int) -> np.ndarray[Any, Any]:
    """Elements ``[start, start + count)`` of a tensor, read as one range, for arithmetic:
    BF16 and float16 widened (exactly) to float32 here, one read's worth, once its bytes
    are checked. float16 too, because numpy's float16 arithmetic converts element by
    element (the NaN check, the sum's widening multiply and the distance ran at a fifth of
    float32's speed); every use takes the same values from float32 as from float16 (the
    sum and the exact distance widen them to float64, the bound's difference and the clip's
    (1 - s)·base are taken in float32 for float16 too), so the same bytes."""
    item = info.np_dtype.itemsize
    raw = f.read(info.start + start * item, count * item)
    arr = np.frombuffer(raw, dtype=info.np_dtype)
    return widen_f16(arr) if arr.dtype == np.float16 else _as_values(arr)


def _checked_values(
    cand: _Candidate, f: RangeFile, info: TensorInfo, start: int, count: int
) -> np.ndarray[Any, Any]:
    """:func:`_values` of an accepted update, read again to combine it.

    Raises:
        StoreError: its bytes changed in the store since phase 1 checked them (the shard
            fails, and its Job retries it, rather than combine bytes nobody reported).
    """
    try:
        return _values(f, info, start, count)
    except BlockMismatch:
        raise StoreError(
            f"update of {cand.cluster}: its bytes changed in the store after they were checked"
        ) from None


def _squared_distance(chunk: np.ndarray[Any, Any], base: np.ndarray[Any, Any]) -> float:
    """``_arith.squared_distance`` with one float64 temporary instead of two (the widened
    chunk, then the difference taken in place): the same subtraction of the same values,
    the same dot, so the same float; 8 bytes an element less beside a chunk's read."""
    d = chunk.astype(np.float64)
    np.subtract(d, base, out=d)
    return float(np.dot(d, d))


def _reads(piece: Piece, chunk: int) -> Iterator[tuple[int, int]]:
    """``(start, count)`` reads of at most ``chunk`` elements, aligned to the grid."""
    pos = piece.start
    while pos < piece.stop:
        end = min(piece.stop, (pos // chunk + 1) * chunk)
        yield pos, end - pos
        pos = end


def _join(out: str, name: str) -> str:
    return os.path.join(out, name) if _local_path(out) == out else f"{out.rstrip('/')}/{name}"


def _put(path: str, data: bytes | memoryview) -> None:
    """Write a shard's file whole: a local file atomically (rename), an object by one PUT
    (an object store never shows a partial object)."""
    local = _local_path(path)
    if local is not None:
        write_atomic(local, data)
        return
    fs, key = _remote(path)
    fs.pipe_file(key, bytes(data))


@contextlib.contextmanager
def _put_stream(path: str) -> Iterator[Any]:
    """A shard's file written piece by piece, so that its bytes are never all in memory:
    a local file under a temporary name renamed when whole, an object by a multipart
    upload committed when whole (and abandoned, never committed, on an error)."""
    local = _local_path(path)
    if local is not None:
        with replaced_atomically(local) as tmp, open(tmp, "wb") as f:
            yield f
        return
    fs, key = _remote(path)
    f = fs.open(key, "wb")
    try:
        yield f
    except BaseException:
        with contextlib.suppress(Exception):
            f.discard()
        raise
    f.close()


def _get(path: str) -> bytes:
    """A shard's file, whole. Raises FileNotFoundError when it is not there."""
    local = _local_path(path)
    if local is not None:
        with open(local, "rb") as f:
            return f.read()
    fs, key = _remote(path)
    return bytes(fs.cat_file(key))


def _exists(path: str) -> bool:
    local = _local_path(path)
    if local is not None:
        return os.path.exists(local)
    fs, key = _remote(path)
    fs.invalidate_cache(key.rsplit("/", 1)[0])  # a listing cached earlier must not hide it
    return bool(fs.exists(key))


def _names(directory: str) -> list[str] | None:
    """The file names in a shard directory, or None when it is not one."""
    local = _local_path(directory)
    if local is not None:
        return sorted(os.listdir(local)) if os.path.isdir(local) else None
    fs, key = _remote(directory)
    fs.invalidate_cache(key)
    try:
        found = fs.ls(key, detail=False)
    except FileNotFoundError:
        return None
    return sorted(str(name).rstrip("/").rsplit("/", 1)[-1] for name in found)


def _file(out: str, shard: int, of: int, kind: str) -> str:
    return _join(out, f"shard-{shard:04d}-of-{of:04d}.{kind}")


def _json_bytes(doc: Mapping[str, Any]) -> bytes:
    return (json.dumps(doc, indent=1) + "\n").encode()


def _sha256(data: bytes | memoryview) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Shard:
    """One shard's view of a round: the same inputs as ``aggregate_round``, plus I/N."""

    def __init__(
        self,
        base: str | os.PathLike[str],
        updates: Iterable[Update | tuple[Any, ...]],
        *,
        strategy: str,
        round: int,
        shard: int,
        of: int,
        out: str | os.PathLike[str],
        options: Mapping[str, Any] | None = None,
        state: bytes | None = None,
        roster: Iterable[str] | None = None,
        limits: Limits | None = None,
        seed: int = 0,
        base_digest: str | None = None,
        chunk_elements: int = DEFAULT_CHUNK,
        opener: Callable[[str], RangeFile] = open_range,
        rejected: Mapping[str, str] | None = None,
        subslice_elements: int | None = None,
        fold_budget: int | None = None,
    ) -> None:
        if not 0 <= shard < of:
            raise InputError(f"shard {shard}/{of}: expected 0 <= I < N")
        if subslice_elements is not None and subslice_elements < 1:
            raise ValueError(f"a sub-slice needs at least one element, got {subslice_elements}")
        self.plan = make_plan(strategy, options)
        self.limits = limits or Limits()
        self.base_path = os.fspath(base)
        try:
            header = read_header(self.base_path)
        except HeaderError as exc:
            raise StoreError(f"global model {self.base_path}: not safetensors: {exc}") from None
        self.header = header
        self.base_digest = base_digest or sha256_file(self.base_path)
        expect = Expectation(
            round=round,
            base_digest=self.base_digest,
            base_header=header,
            roster=checks.roster_set(list(roster) if roster is not None else None),
            limits=self.limits,
        )
        # Views into the prior state's bytes, read a sub-slice at a time (never the whole
        # model's state in float64); the round itself never reads it (``job.state``).
        self.prior = StateViews(state, self.plan, header)
        self.job = _Round(
            self.base_path, self.base_digest, self.plan, expect, {}, seed, chunk_elements, None
        )
        items = [u if isinstance(u, Update) else Update(*u) for u in updates]
        self.cands = self.job.candidates(items, check_update_file)
        self.checked = dict(self.job.rejected)
        self.shard, self.of = shard, of
        self.chunk = chunk_elements
        self.splan = ShardPlan.of_header(header, of, chunk_elements)
        self.pieces = self.splan.pieces(shard)
        slice_bytes = sum(p.size * header.tensors[p.name].np_dtype.itemsize for p in self.pieces)
        self.subslice = subslice_elements or subslice_for(slice_bytes)
        # Phase 1 folds the sum over the first ``fold`` elements of the slice (piece by
        # piece), as many float64 values as the budget holds; the rest is read again.
        self.fold = fold_elements(slice_bytes, fold_budget)
        self.out = os.fspath(out)
        self.opener = opener
        # The block lists phase 1 checked, by cluster: the combine's reads check against them.
        self._lists: dict[str, BlockList] = {}
        # What this shard wrote (kind -> digest) and what it read of every shard's files
        # ("I/kind" -> digest): its decision names both, the merge compares every shard's
        # ledger, and a shard reading back its own file refuses bytes it did not write.
        self.wrote: dict[str, str] = {}
        self.seen: dict[str, str] = {}
        # Refused before aggregation (unreadable metadata): merged into the result.
        self.before = dict(rejected or {})
        self.inputs = self._inputs(state)
        # A folding combiner's slice sum from phase 1, and the updates it holds.
        self.folded: dict[str, F64] | None = None
        self.folded_from: list[str] = []
        self.slice_digest = ""
        combiner = self.plan.combiner
        self.folds = combiner.folds
        if self.folds:
            self.exact = False
            self.measure = self.job.measures(len(self.cands))
        else:
            self.exact = combiner.needs_norms
            self.measure = self.exact or self.job.measures(len(self.cands))

    # ------------------------------------------------------------------ identity

    def ident(self) -> dict[str, Any]:
        """What every file of this round's shards carries, and the merge checks."""
        return {
            "format": _FORMAT,
            "plan": self.splan.id,
            "of": self.of,
            "round": self.job.expect.round,
            "base_model": self.base_digest,
            "strategy": self.plan.strategy,
            "inputs": self.inputs,
        }

    def _inputs(self, state: bytes | None) -> str:
        """A digest of everything else the shards must agree on: the options, the bounds,
        the seed, the prior state and each candidate's digest and examples."""
        doc = {
            "options": dict(self.plan.options),
            "limits": self.limits.record(),
            "seed": self.job.seed,
            "state": None if state is None else hashlib.sha256(state).hexdigest(),
            "updates": [[c.cluster, c.meta.sha256, c.meta.num_examples] for c in self.cands],
            "rejected": sorted({**self.checked, **self.before}.items()),
        }
        return "sha256:" + hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()

    def path(self, shard: int, kind: str) -> str:
        return _file(self.out, shard, self.of, kind)

    def put(self, kind: str, data: bytes) -> str:
        """Write this shard's file ``kind``, its digest recorded in the ledger."""
        path = self.path(self.shard, kind)
        _put(path, data)
        self.wrote[kind] = _sha256(data)
        return path

    def fetch(self, shard: int, kind: str) -> tuple[str, bytes]:
        """Shard ``shard``'s file ``kind``, its digest recorded in the ledger.

        Raises:
            ShardDirError: it is missing, or it is this shard's own and not the bytes it
                wrote (changed in the store since).
        """
        path = self.path(shard, kind)
        data = _shard_file(path)
        digest = _sha256(data)
        if shard == self.shard and self.wrote.get(kind, digest) != digest:
            raise ShardDirError(f"{path}: not the bytes this shard wrote (changed in the store)")
        self.seen[f"{shard}/{kind}"] = digest
        return path, data

    def load(self, shard: int, kind: str) -> dict[str, Any]:
        path, data = self.fetch(shard, kind)
        doc = _json_doc(path, data)
        mine = self.ident()
        for key, want in mine.items():
            if doc.get(key) != want:
                # The file's own value is not shown: only what this shard expected.
                raise ShardDirError(
                    f"{path}: written for another round or plan (its {key} is not {want!r})"
                )
        if doc.get("candidates") is not None and doc["candidates"] != self.names():
            raise ShardDirError(f"{path}: written for other updates than this shard's")
        return doc

    def load_cells(self, shard: int) -> dict[str, np.ndarray[Any, Any]]:
        path, data = self.fetch(shard, "cells.safetensors")
        try:
            meta = parse_header(data, len(data)).metadata
            cells = load_bytes(data)
        except HeaderError:
            raise ShardDirError(f"{path}: not a shard's file") from None
        if meta.get("ident") != json.dumps(self.ident(), sort_keys=True):
            raise ShardDirError(f"{path}: written for another round or plan")
        return cells

    def names(self) -> list[str]:
        return [c.cluster for c in self.cands]

    # ------------------------------------------------------------------ phase 1

    def cell_width(self, info: TensorInfo) -> int:
        """The grid the pod's pass sums an update's distance on, for this dtype."""
        if not self.folds:
            return self.chunk
        step = max(1, min(self.chunk, self.job.slot_bytes // info.np_dtype.itemsize))
        return min(BLOCK, step)

    # Each phase that takes dot products (the exact distances, Krum's Gram product) runs on
    # one BLAS thread, as ``aggregate_round`` does (``_blas``): a dot split across threads
    # sums in another order, and the shards' distances must be the pod's to the bit.

    def read_step(self) -> int:
        """Phase 1's reads, in elements: the grid's chunk; for a folding combiner, whose
        distance cells are at most ``BLOCK`` wide, the sub-slice when it is a power of two
        from ``BLOCK`` up (a multiple of every cell: the same cells), so that what a read
        holds beside the folded sum shrinks with a small slice as the walk does."""
        sub = self.subslice
        if self.folds and BLOCK <= sub < self.chunk and sub & (sub - 1) == 0:
            return sub
        return self.chunk

    @with_one_blas_thread
    def stats(self) -> str:
        """Phase 1: check and measure this shard's slice of every update; hash its own.

        Writes ``stats.json`` (digests, NaN/Inf, read errors) and ``cells.safetensors``
        (per update and tensor, the float64 partial sums of its squared distance, one per
        cell of the pod's grid, in offset order).
        """
        updates: dict[str, Any] = {}
        cells: dict[str, np.ndarray[Any, Any]] = {}
        # A folding combiner's sum is built as the slices are read, over every candidate,
        # as one pod's pass does: kept when the reduce accepts them all, else rebuilt.
        if self.folds:
            self.folded = {
                name: np.zeros(n, dtype=np.float64) for name, n in self._fold_sizes().items()
            }
            self.folded_from = []
        # An update named by its block list is checked block by block as its slice is
        # read (``_ranges.open_checked``); one named by a digest of the whole file (or whose
        # list is not the one its digest names) is hashed whole, on a helper thread
        # (hashlib and BLAKE3 release the GIL), by the shard that owns it (update j belongs
        # to shard j mod N), while the slices are read, checked and summed here.
        hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fl-gitops-shard-hash")
        files = [self._open(cand) for cand in self.cands]
        owned = {
            cand.cluster: hasher.submit(whole_digest, cand.path, cand.meta.sha256)
            for j, (cand, f) in enumerate(zip(self.cands, files, strict=True))
            if not isinstance(f, BlockCheckedFile) and j % self.of == self.shard
        }
        base = self.opener(self.base_path)
        try:
            measured = self._stats_all(base, files)
            for j, cand in enumerate(self.cands):
                doc, mine = measured[j]
                updates[cand.cluster] = doc
                if doc.pop("mismatch", False):
                    # Its bytes are not the ones reported: the digest they do hash to, as
                    # one pod names it (read whole, once, only for such an update).
                    owned[cand.cluster] = hasher.submit(whole_digest, cand.path, cand.meta.sha256)
                elif isinstance(files[j], BlockCheckedFile) and doc["error"] is None:
                    doc["digest"] = cand.meta.sha256
                if cand.cluster in owned:
                    try:
                        doc["digest"] = owned[cand.cluster].result()
                    except OSError as exc:
                        doc["error"] = f"update file cannot be read ({type(exc).__name__})"
                if self.folds and doc["error"] is None:
                    self.folded_from.append(cand.cluster)
                for name, values in mine.items():
                    cells[f"{j}/{name}"] = np.frombuffer(values, dtype=np.float64)
        finally:
            base.close()
            for f in files:
                if isinstance(f, RangeFile):
                    f.close()
            hasher.shutdown(cancel_futures=True)
        meta = {"ident": json.dumps(self.ident(), sort_keys=True)}
        self.put("cells.safetensors", serialize(cells, meta))
        # Written last: its presence says the shard's phase 1 is complete.
        doc = {**self.ident(), "shard": self.shard, "candidates": self.names(), "updates": updates}
        return self.put("stats.json", _json_bytes(doc))

    def _fold_sizes(self) -> dict[str, int]:
        """Piece -> how many of its leading elements phase 1 folds (the slice's first
        ``self.fold``, in piece order); a piece beyond the budget is not listed."""
        out: dict[str, int] = {}
        left = self.fold
        for piece in self.pieces:
            n = min(piece.size, left)
            if n <= 0:
                break
            out[piece.name] = n
            left -= n
        return out

    def _open(self, cand: _Candidate) -> RangeFile | str:
        """A candidate's update file for range reads, checked block by block when it can
        be (its header then read again through the check, so the layout the shard reads
        by is the reported one); or why it cannot be read."""
        try:
            f = self.opener(cand.path)
        except OSError as exc:
            return f"update file cannot be read ({type(exc).__name__})"
        try:
            checked = open_checked(cand.path, cand.meta.sha256, f)
        except OSError:
            checked = None
        if checked is None:
            return f
        try:
            head = checked.read(0, cand.header.data_start)
            same = parse_header(head, checked.size()) == cand.header
        except (BlockMismatch, HeaderError, OSError):
            same = False
        if not same:  # checked whole instead, and so refused by the digest it hashes to
            return f
        self._lists[cand.cluster] = checked.blocks
        return checked

    def _reread(self, cand: _Candidate) -> RangeFile:
        """An accepted update's file, read again to combine it: checked block by block
        against the list phase 1 checked, when it had one (:func:`_checked_values` then
        refuses bytes changed since).

        Raises:
            StoreError: it cannot be opened any more.
        """
        blocks = self._lists.get(cand.cluster)
        if blocks is not None:
            try:
                return BlockCheckedFile(self.opener(cand.path), blocks)
            except OSError as exc:
                reason = f"update file cannot be read ({type(exc).__name__}) after it was checked"
                raise StoreError(f"update of {cand.cluster}: {reason}") from None
        f = self._open(cand)
        if isinstance(f, str):
            raise StoreError(f"update of {cand.cluster}: {f} after it was checked")
        return f

    def _stats_all(
        self, base: RangeFile, files: Sequence[RangeFile | str]
    ) -> list[tuple[dict[str, Any], dict[str, array.array[float]]]]:
        """Every candidate's checks and distance cells over this shard's slice, chunk by
        chunk with the updates side by side: the global model's chunk is read once for all
        of them (not once per update), and each element of a folded sum still adds the
        updates in cluster order, as one pod's pass does. A block that is not the reported
        one stops that update's reads (``mismatch``)."""
        docs: list[dict[str, Any]] = [
            {"digest": None, "bad": [], "error": None} for _ in self.cands
        ]
        # Each cell a float64 in an array (a Python float in a list took 32 bytes).
        cells: list[dict[str, array.array[float]]] = [{} for _ in self.cands]
        for j, f in enumerate(files):
            if isinstance(f, str):
                docs[j]["error"] = f
        for piece in self.pieces:
            binfo = self.header.tensors[piece.name]
            acc = self.folded.get(piece.name) if self.folded is not None else None
            for start, count in _reads(piece, self.read_step()):
                b: np.ndarray[Any, Any] | None = None
                tmp = np.empty(min(count, BLOCK), dtype=np.float64) if acc is not None else None
                scratches: dict[int, np.ndarray[Any, Any]] = {}
                for j, (cand, f) in enumerate(zip(self.cands, files, strict=True)):
                    doc = docs[j]
                    if isinstance(f, str) or doc["error"] is not None or "mismatch" in doc:
                        continue
                    info = cand.header.tensors[piece.name]
                    floating = _is_float(info.np_dtype)
                    if self.measure and floating and self._in_parts(info, count):
                        if b is None:
                            b = self._base_chunk(base, binfo, start, count)
                        cell = self._cell_in_parts(doc, f, info, piece.name, start, count, b)
                        if cell is not None:
                            cells[j].setdefault(piece.name, array.array("d")).append(cell)
                        continue
                    try:
                        values = _values(f, info, start, count)
                    except HeaderError:
                        doc["error"] = "file ended while it was read (truncated)"
                        continue
                    except BlockMismatch:
                        doc["mismatch"] = True
                        continue
                    if floating and piece.name not in doc["bad"]:
                        with np.errstate(over="ignore", invalid="ignore"):  # Inf - Inf: caught
                            ok = finite(values)
                        if not ok:
                            doc["bad"].append(piece.name)
                    # Folded only within the budget's prefix of the piece.
                    at = start - piece.start
                    fold = 0 if acc is None else min(count, acc.size - at)
                    if acc is not None and tmp is not None and fold > 0:
                        seg = acc[at : at + fold]
                        part = values if fold == count else values[:fold]
                        add_weighted(seg, [part], [self.job.weight(cand)], tmp)
                    if not (self.measure and floating):
                        continue
                    sums = cells[j].setdefault(piece.name, array.array("d"))
                    if b is None:
                        b = self._base_chunk(base, binfo, start, count)
                    width = self.cell_width(info)
                    scratch = scratches.get(width)
                    if scratch is None:
                        scratch = scratches[width] = distance_scratch(b.dtype, min(count, width))
                    for off in range(0, count, width):
                        part, bpart = values[off : off + width], b[off : off + width]
                        with np.errstate(over="ignore", invalid="ignore"):
                            if self.exact:
                                sums.append(_squared_distance(part, bpart))
                            else:
                                sums.append(squared_distance_bound(part, bpart, scratch))
        return list(zip(docs, cells, strict=True))

    def _base_chunk(
        self, base: RangeFile, info: TensorInfo, start: int, count: int
    ) -> np.ndarray[Any, Any]:
        """The global model's values of one read, for every update's distance there."""
        try:
            return _values(base, info, start, count)
        except HeaderError:
            raise StoreError(
                f"global model {self.base_path}: file ended while it was read (truncated)"
            ) from None

    def _in_parts(self, info: TensorInfo, count: int) -> bool:
        """Whether a read of ``count`` elements is taken in sub-slices: for a combiner
        that does not fold (its distance cells are a whole chunk wide), when the
        sub-slice is smaller than the read, which is then one cell."""
        return not self.folds and self.subslice < count <= self.cell_width(info)

    def _cell_in_parts(
        self,
        doc: dict[str, Any],
        f: RangeFile,
        info: TensorInfo,
        name: str,
        start: int,
        count: int,
        b: np.ndarray[Any, Any],
    ) -> float | None:
        """One chunk-wide distance cell of an update, its values read a sub-slice at a
        time into one buffer of the difference, then one dot: the difference of the same
        values in the same type element by element, and the dot over the same array, as
        ``_squared_distance`` and ``squared_distance_bound`` take it whole, so the same
        float (the bound's difference is its own function's, into the buffer); beside the
        read, the difference alone, not the widened chunk and its copies.
        None (the reason in ``doc``) when the update's read fails."""
        exact = self.exact
        d = np.empty(count, dtype=np.float64) if exact else distance_scratch(b.dtype, count)
        with np.errstate(over="ignore", invalid="ignore"):  # Inf - Inf: caught, as above
            for at, n in _reads(Piece(name, start, start + count), self.subslice):
                try:
                    values = _values(f, info, at, n)
                except HeaderError:
                    doc["error"] = "file ended while it was read (truncated)"
                    return None
                except BlockMismatch:
                    doc["mismatch"] = True
                    return None
                if name not in doc["bad"] and not finite(values):
                    doc["bad"].append(name)
                lo = at - start
                part, bpart = d[lo : lo + n], b[lo : lo + n]
                if exact:
                    part[...] = values
                    np.subtract(part, bpart, out=part)
                else:
                    # Its difference into ``part``, as it takes it (float16 widened first);
                    # the dot of the piece is not used: the cell's is taken over ``d``.
                    squared_distance_bound(values, bpart, part)
            return float(np.dot(d, d))

    def _norm(self, j: int, cand: _Candidate, cells: Sequence[Mapping[str, Any]]) -> float:
        """The update's distance, its cells added one by one in the pod's order: the update
        file's tensor order, then offset (shards hold consecutive runs of a tensor)."""
        runs = [
            part[key]
            for name in sorted(cand.header.tensors, key=lambda n: cand.header.tensors[n].start)
            for part in cells
            if (key := f"{j}/{name}") in part
        ]
        flat = np.concatenate(runs) if runs else np.zeros(0)
        # add.accumulate adds left to right, as ``sumsq += cell`` does (no pairwise sum).
        return math.sqrt(float(np.add.accumulate(flat)[-1])) if flat.size else 0.0

    # ------------------------------------------------------------------ the reduce

    @with_one_blas_thread
    def reduce(self) -> list[_Candidate]:
        """The accepted updates, from every shard's statistics, as the pod decides them."""
        docs = [self.load(i, "stats.json") for i in range(self.of)]
        cells = [self.load_cells(i) for i in range(self.of)] if self.measure else []
        ok = []
        for j, cand in enumerate(self.cands):
            parts = [d["updates"][cand.cluster] for d in docs]
            error = next((p["error"] for p in parts if p["error"]), None)
            if error is not None:
                kind = checks.NotSafetensors if "truncated" in error else checks.UnreadableUpdate
                self.job.rejected[cand.cluster] = kind(cand.cluster, error).reason
                continue
            # Checked whole, by the shard that owns it; or block by block, by every shard
            # over its slice (any one that found a block not reported names the digest
            # the whole file hashes to).
            found = [p["digest"] for p in parts if p["digest"] is not None]
            digest = next((d for d in found if d != cand.meta.sha256), found[0] if found else "")
            if digest != cand.meta.sha256:
                self.job.rejected[cand.cluster] = _digest_mismatch(cand, digest).reason
                continue
            bad = {name for p in parts for name in p["bad"]}
            if bad:
                first = min(bad, key=lambda n: cand.header.tensors[n].start)
                self.job.rejected[cand.cluster] = checks.NonFiniteValues(
                    cand.cluster, f"tensor {first!r} holds NaN or Inf"
                ).reason
                continue
            if self.measure:
                cand.norm = self._norm(j, cand, cells)
            self.job.verified[cand.cluster] = cand.meta.sha256
            ok.append(cand)
        kept = self.job.bound(ok) if self.measure else ok
        try:
            self.job.require(len(kept))
        except NotEnoughUpdates as exc:
            raise exc.with_rejected(self.before) from None
        return kept

    # ------------------------------------------------------------------ Krum's partials

    def _stack(
        self,
        cands: Sequence[_Candidate],
        piece: Piece,
        k: int,
        files: dict[str, RangeFile] | None = None,
        base: RangeFile | None = None,
        width: int | None = None,
    ) -> Iterator[Block]:
        """Blocks of the piece on the pod's K x c grid, the updates side by side, in one
        K x c buffer refilled block after block (the pod's ``_blocks`` does the same). Each
        file is opened again here and closed at the end, unless it is taken from (and left
        open in) ``files``; the global model likewise, unless ``base`` is given.

        ``width``: narrower blocks than the pod's, for a combine (elementwise, so any grid
        gives its bytes; only Krum's partial sums need the pod's)."""
        size = self.header.tensors[piece.name].size
        step = _stack_step(size, k, self.chunk)
        if width is not None:
            step = max(1, min(step, width))
        # One flat buffer, each block a contiguous K x n view of its front (a column slice
        # of a K x step array is not contiguous, and BLAS would copy it for Krum's product).
        stack = np.empty(len(cands) * max(0, min(step, piece.size)), dtype=np.float64)
        own_files, own_base = files is None, base is None
        held: dict[str, RangeFile] = {} if files is None else files
        reader = self.opener(self.base_path) if base is None else base
        binfo = self.header.tensors[piece.name]
        try:
            handles = [self._file(c, held) for c in cands]
            for start in range(piece.start, piece.stop, step):
                n = min(step, piece.stop - start)
                view = stack[: len(cands) * n].reshape(len(cands), n)
                for i, (c, f) in enumerate(zip(cands, handles, strict=True)):
                    view[i] = _checked_values(c, f, c.header.tensors[piece.name], start, n)

                def read_base(s: int = start, n: int = n) -> np.ndarray[Any, Any]:
                    return _values(reader, binfo, s, n)

                yield Block(Slice(piece.name, start, n), view, read_base)
        finally:
            if own_files:
                for f in held.values():
                    f.close()
            if own_base:
                reader.close()

    @with_one_blas_thread
    def partials(self, kept: list[_Candidate]) -> str | None:
        """Phase 2 (Krum): this shard's part of the combiner's statistics, one sum per run of
        ``chunk`` elements of a tensor (its blocks added in order), in model order: the
        first level of the pod's two-level sum (``_Round.partials``)."""
        partials = self.plan.combiner.partials
        if partials is None:
            return None
        runs: list[F64] = []
        for piece in self.pieces:
            runs.extend(run_sums(self._stack(kept, piece, len(kept)), partials, self.chunk))
        k = len(kept)
        arr = np.stack(runs) if runs else np.zeros((0, k, k))
        meta = {"ident": json.dumps(self.ident(), sort_keys=True)}
        return self.put("partials.safetensors", serialize({"cells": arr}, meta))

    def summed(self, kept: list[_Candidate]) -> F64 | None:
        """Every shard's runs added in model order: the pod's second level."""
        if self.plan.combiner.partials is None:
            return None
        total: F64 | None = None
        for i in range(self.of):
            path, data = self.fetch(i, "partials.safetensors")
            for run in _read_partials(path, data, self.ident(), len(kept)):
                total = run if total is None else total + run
        return total

    # ------------------------------------------------------------------ phase 3

    @with_one_blas_thread
    def combine(self, kept: list[_Candidate], choice: Choice) -> None:
        """This shard's slice of the new model's data bytes, and of the new state.

        The slice is walked in sub-slices (``subslice_elements``, cut on a grid of that
        many elements of each tensor, and where phase 1's fold ends): each one combined
        in float64, finished, rounded and written (its state to a spool) before the next,
        so that no float64 value of the slice outlives its sub-slice, but for phase 1's
        folded prefix, which is used up (and freed piece by piece) as the walk passes it.
        """
        contributors = [kept[i] for i in choice.keep]
        layout = Layout.plan({n: (t.np_dtype, t.shape) for n, t in self.header.tensors.items()})
        choice = self._noise_from_here(choice)
        folded = self.folded
        if folded is not None and self.folded_from != [c.cluster for c in contributors]:
            folded = None  # not the contributors' sum: rebuilt below by reading them again
        self.folded = None
        h = hashlib.sha256()
        base = self.opener(self.base_path)
        # Each contributor's file, opened at its first read again and kept across the
        # sub-slices: a block-checked file keeps the block the last read ended in, so the
        # walk fetches (and checks) each block once, as one read of the slice would.
        files: dict[str, RangeFile] = {}
        try:
            with StateWriter() as states:
                with _put_stream(self.path(self.shard, "model.bin")) as sink:
                    for piece in self.pieces:
                        acc = folded.pop(piece.name, None) if folded is not None else None
                        for sub in _subslices(piece, self.subslice, acc):
                            # No name is bound to the values (a view into ``acc`` for a
                            # folded sub-slice), so the piece's folded sum is freed with
                            # ``acc``, before the next piece is read again.
                            self._finish(
                                sub, layout, choice,
                                self._combined(contributors, choice, piece, sub, acc, base, files),
                                base, states, sink, h,
                            )  # fmt: skip
                        del acc
                meta = {"ident": json.dumps(self.ident(), sort_keys=True)}
                path = self.path(self.shard, "state.safetensors")
                with _put_stream(path) as sink:
                    self.wrote["state.safetensors"] = states.write_to(sink, meta)
        finally:
            base.close()
            for f in files.values():
                f.close()
        self.slice_digest = "sha256:" + h.hexdigest()

    def _finish(
        self,
        sub: Piece,
        layout: Layout,
        choice: Choice,
        values: F64,
        base: RangeFile,
        states: StateWriter,
        sink: Any,
        h: Any,
    ) -> None:
        """One sub-slice's combined values finished into the model's dtype and written."""
        info = self.header.tensors[sub.name]
        dtype = layout.entries[sub.name][0]
        out = np.empty(sub.size, dtype=dtype)
        bf16 = dtype == BF16
        prev = {
            s: self.prior.values(f"{s}/{sub.name}", sub.start, sub.stop)
            for s in self.plan.state_names
        }

        def read_base(p: Piece = sub, i: TensorInfo = info) -> F64:
            return _values(base, i, p.start, p.size).astype(np.float64)

        # BF16: finished in float64 in place, then rounded once, as the pod does.
        into = values if bf16 else out
        st = choice.finish(sub.name, values, into, _is_float(info.np_dtype), read_base, prev)
        if bf16:
            narrow_into(out, values)
        for s, arr in st.items():
            states.add(s, sub.name, arr.reshape(-1).astype(_state_dtype(info.np_dtype)))
        raw = memoryview(out.view(np.uint8))  # type: ignore[arg-type]
        sink.write(raw)
        h.update(raw)

    def _noise_from_here(self, choice: Choice) -> Choice:
        """DP's generator advanced past the noise of every element before this shard's."""
        if not isinstance(choice, MeanChoice) or choice.rng is None or not self.pieces:
            return choice
        rng = choice.rng
        first = self.pieces[0]
        for name, size in self.splan.sizes:
            if not _is_float(self.header.tensors[name].np_dtype):
                continue
            skip = size if name < first.name else first.start if name == first.name else 0
            for start in range(0, skip, self.chunk):
                rng.normal(0.0, choice.noise_std, size=min(self.chunk, skip - start))
            if name >= first.name:
                break
        return replace(choice, rng=rng)

    def _combined(
        self,
        contributors: list[_Candidate],
        choice: Choice,
        piece: Piece,
        sub: Piece,
        acc: F64 | None,
        base: RangeFile,
        files: dict[str, RangeFile],
    ) -> F64:
        """One sub-slice's combined float64 values: phase 1's sum where it folded this
        sub-slice (``acc``: the piece's folded prefix, exactly these contributors), else
        the contributors read again and summed, or combined block by block."""
        at = sub.start - piece.start
        if acc is not None and at + sub.size <= acc.size:
            # Phase 1 summed exactly these updates, unclipped, by these weights.
            assert all(s == 1.0 for s in choice.scales)
            return acc[at : at + sub.size]
        binfo = self.header.tensors[sub.name]
        if choice.linear:
            out = np.zeros(sub.size, dtype=np.float64)
            tmp = np.empty(min(max(sub.size, 1), BLOCK), dtype=np.float64)
            for cand, w, s in zip(contributors, choice.weights, choice.scales, strict=True):
                info = cand.header.tensors[sub.name]
                f = self._file(cand, files)
                for start, count in _reads(sub, self.chunk):
                    chunk = _checked_values(cand, f, info, start, count)
                    b = _values(base, binfo, start, count) if s != 1.0 else None
                    seg = out[start - sub.start : start - sub.start + count]
                    add_weighted(seg, [chunk], [w], tmp, [s], b)
            return out
        out = np.empty(sub.size, dtype=np.float64)
        # K x c no larger than the sub-slice's float64: the walk's memory whatever K.
        width = max(1, self.subslice // max(1, len(contributors)))
        for block in self._stack(contributors, sub, len(contributors), files, base, width):
            sl = block.slice
            out[sl.offset - sub.start : sl.offset - sub.start + sl.size] = choice.combine(block)
        return out

    def _file(self, cand: _Candidate, files: dict[str, RangeFile]) -> RangeFile:
        """A contributor's file for the combine, opened again once (``_reread``)."""
        f = files.get(cand.cluster)
        if f is None:
            f = files[cand.cluster] = self._reread(cand)
        return f


def _subslices(piece: Piece, size: int, folded: F64 | None) -> Iterator[Piece]:
    """A piece in sub-slices of at most ``size`` elements, cut on a grid of ``size``
    elements of its tensor and where its folded prefix (``folded``) ends."""
    cut = piece.start + (0 if folded is None else folded.size)
    pos = piece.start
    while pos < piece.stop:
        end = min(piece.stop, (pos // size + 1) * size)
        if pos < cut < end:
            end = cut
        yield Piece(piece.name, pos, end)
        pos = end


def _shard_file(path: str) -> bytes:
    """A shard's file, whole.

    Raises:
        ShardDirError: it is not there, or cannot be read.
    """
    try:
        return _get(path)
    except FileNotFoundError:
        raise ShardDirError(f"{path}: missing (has that shard run?)") from None
    except OSError as exc:
        raise ShardDirError(f"{path}: cannot be read ({type(exc).__name__})") from None


def _read_json(path: str) -> dict[str, Any]:
    return _json_doc(path, _shard_file(path))


def _json_doc(path: str, data: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except ValueError as exc:
        raise ShardDirError(f"{path}: not a shard's file ({type(exc).__name__})") from None
    if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
        raise ShardDirError(f"{path}: not a shard's file")
    return doc


def _read_partials(path: str, data: bytes, ident: Mapping[str, Any], k: int) -> F64:
    try:
        tensors = load_bytes(data)
        meta = parse_header(data, len(data)).metadata
    except HeaderError:
        raise ShardDirError(f"{path}: not a shard's file") from None
    if meta.get("ident") != json.dumps(dict(ident), sort_keys=True):
        raise ShardDirError(f"{path}: written for another round or plan")
    cells = tensors.get("cells")
    if cells is None or cells.ndim != 3 or cells.shape[1:] != (k, k):
        raise ShardDirError(f"{path}: not a shard's file")
    return np.asarray(cells, dtype=np.float64)


def poll_for(paths: Sequence[str], timeout: float = 600.0, every: float = 0.2) -> None:
    """Wait until every path exists (the other shards' phase done), at most ``timeout`` s.

    Raises:
        ShardDirError: naming the files still missing when the time is up.
    """
    deadline = time.monotonic() + timeout
    while True:
        missing = [p for p in paths if not _exists(p)]
        if not missing:
            return
        if time.monotonic() >= deadline:
            raise ShardDirError(
                f"waited {timeout:g} s for the other shards; still missing: {', '.join(missing)}"
            )
        time.sleep(every)


Wait = Callable[[Sequence[str]], None]


def shard_stats(shard: Shard) -> str:
    """Phase 1 of one shard (see the module docstring); returns the file written."""
    return shard.stats()


def shard_partials(shard: Shard, wait: Wait = poll_for) -> list[_Candidate]:
    """After every shard's phase 1: the reduce, then (Krum) this shard's partials."""
    wait([shard.path(i, "stats.json") for i in range(shard.of)])
    kept = shard.reduce()
    shard.partials(kept)
    return kept


def shard_combine(shard: Shard, kept: list[_Candidate], wait: Wait = poll_for) -> str:
    """The choice (from every shard's partials, if any), this shard's slice, the decision."""
    combiner = shard.plan.combiner
    if combiner.partials is not None:
        wait([shard.path(i, "partials.safetensors") for i in range(shard.of)])
    stats = shard.summed(kept)
    choice = combiner.choose(shard.job.pool_of(kept, stats))
    shard.combine(kept, choice)
    contributors = [kept[i] for i in choice.keep]
    weights = {c.cluster: s for c, s in zip(contributors, choice.shares, strict=True)}
    metrics = _weighted_metrics(kept)
    record = _round_record(
        shard.job, shard.plan, shard.limits, contributors, kept, weights, metrics, "",
        choice, bool(shard.prior),
    )  # fmt: skip
    rejected = dict(sorted({**shard.job.rejected, **shard.before}.items()))
    record["rejected"] = rejected
    header = shard.header
    decision = {
        **shard.ident(),
        "shard": shard.shard,
        "contributors": [c.cluster for c in contributors],
        "weights": weights,
        "rejected": rejected,
        "metrics": metrics,
        "state_names": list(shard.plan.state_names),
        "tensors": [[n, header.tensors[n].np_dtype.str, list(header.tensors[n].shape)]
                    for n in sorted(header.tensors)],
        "record": record,
        # Every shard's files as this shard read them: the same in every decision, each
        # shard's own checked against what it wrote (the merge compares them).
        "read": dict(sorted(shard.seen.items())),
        # This shard's model bytes and state, checked by the merge (a stale or swapped
        # model.bin or state.safetensors is refused).
        "slice": shard.slice_digest,
        "state": shard.wrote["state.safetensors"],
    }  # fmt: skip
    return shard.put("decision.json", _json_bytes(decision))


@with_one_blas_thread
def aggregate_shard(
    base: str | os.PathLike[str],
    updates: Iterable[Update | tuple[Any, ...]],
    *,
    strategy: str,
    round: int,
    shard: int,
    of: int,
    out: str | os.PathLike[str],
    options: Mapping[str, Any] | None = None,
    state: bytes | None = None,
    roster: Iterable[str] | None = None,
    limits: Limits | None = None,
    seed: int = 0,
    base_digest: str | None = None,
    chunk_elements: int = DEFAULT_CHUNK,
    wait: Wait = poll_for,
    opener: Callable[[str], RangeFile] = open_range,
    rejected: Mapping[str, str] | None = None,
    record_shortfall: bool = False,
    on_written: Callable[[str, str], None] | None = None,
    subslice_elements: int | None = None,
    fold_budget: int | None = None,
) -> str:
    """Run shard ``shard`` of ``of`` of a round, every phase, into the shared dir ``out``.

    The other shards run at the same time (an Indexed Job's pods with parallelism N, or
    processes by hand) and write into the same ``out``; ``wait`` blocks until their files
    of a phase are there (default: polls, up to 600 s). Arguments as ``aggregate_round``;
    ``rejected`` holds the updates refused before aggregation (the caller could not read
    their metadata), merged into the result.

    With ``record_shortfall`` (the Job's shards), too few valid updates is an outcome,
    not a failure: written as ``shard-I-of-N.shortfall.json`` (see :func:`read_shortfall`),
    so that the reconcile pass retries or fails the round with the reasons one pod gives.

    ``on_written(path, digest)`` is told the file this shard ended with and the digest of
    the bytes it wrote (the Job's shard reports it through the hub as it ends: see
    ``hub.ShardJobState.messages``).

    Memory: the combine walks the slice ``subslice_elements`` at a time (None: 2^20, or
    fewer for a small slice, ``_subslice.subslice_elements``), and phase 1 folds
    the sum only over the slice's first ``fold_budget`` bytes of float64 (None: twice the
    slice's own bytes, ``_subslice.FOLD_SHARE``), the rest read again to combine it. Neither
    changes a byte of the result, so the shards of one round need not agree on them.

    Returns:
        The path of this shard's decision file (or of its shortfall file).

    Raises:
        NotEnoughUpdates, StrategyOptionsError, StoreError: as ``aggregate_round``.
        ShardDirError: another shard's file is missing, or from another round or plan.
    """
    if _local_path(os.fspath(out)) is not None:
        os.makedirs(_local_path(os.fspath(out)) or ".", exist_ok=True)
    job = Shard(
        base, updates, strategy=strategy, round=round, shard=shard, of=of, out=out,
        options=options, state=state, roster=roster, limits=limits, seed=seed,
        base_digest=base_digest, chunk_elements=chunk_elements, opener=opener,
        rejected=rejected, subslice_elements=subslice_elements, fold_budget=fold_budget,
    )  # fmt: skip
    shard_stats(job)
    try:
        kept = shard_partials(job, wait)
    except NotEnoughUpdates as exc:
        if not record_shortfall:
            raise
        doc = {
            **job.ident(),
            "shard": job.shard,
            "valid": exc.valid,
            "needed": exc.needed,
            "rejected": exc.rejected,
            "requirement": exc.requirement,
            "read": dict(sorted(job.seen.items())),
        }
        path = job.put("shortfall.json", _json_bytes(doc))
        if on_written is not None:
            on_written(path, job.wrote["shortfall.json"])
        return path
    path = shard_combine(job, kept, wait)
    if on_written is not None:
        on_written(path, job.wrote["decision.json"])
    return path


def read_shortfall(
    directory: str, of: int, messages: Mapping[int, str] | None = None
) -> NotEnoughUpdates | None:
    """The round's shortfall, when its shards found too few valid updates (every shard
    reaches the same reduce, so shard 0's file says it for all); None when they did not.

    Raises:
        ShardDirError: the file is there but is not what a shard writes (or, with
            ``messages``, not the one shard 0 reported through the hub).
    """
    path = _file(directory, 0, of, "shortfall.json")
    if not _exists(path):
        return None
    doc = _authentic(path, 0, messages)
    try:
        return NotEnoughUpdates(
            int(doc["round"]),
            valid=int(doc["valid"]),
            needed=int(doc["needed"]),
            rejected={str(k): str(v) for k, v in dict(doc["rejected"]).items()},
            requirement=None if doc["requirement"] is None else str(doc["requirement"]),
        )
    except (KeyError, TypeError, ValueError):
        raise ShardDirError(f"{path}: not a shard's file") from None


def shard_plan_of(directory: str, of: int) -> str:
    """The id of the plan the shards in ``directory`` ran (shard 0's decision names it)."""
    plan = _read_json(_file(directory, 0, of, "decision.json")).get("plan")
    if not isinstance(plan, str):
        raise ShardDirError(f"{_file(directory, 0, of, 'decision.json')}: not a shard's file")
    return plan


def _shard_files(dirs: Sequence[str | os.PathLike[str]]) -> dict[int, str]:
    """Shard index -> its decision file, over the given dirs; every N the same."""
    where = ", ".join(str(os.fspath(d)) for d in dirs)
    found: dict[int, str] = {}
    ofs: set[int] = set()
    for d in dirs:
        here = str(os.fspath(d))
        names = _names(here)
        if names is None:
            raise ShardDirError(f"{here}: not a directory")
        for name in names:
            if not fnmatch.fnmatchcase(name, "shard-*-of-*.decision.json"):
                continue
            try:
                i, of = int(name[6:10]), int(name[14:18])
            except ValueError:
                continue
            found[i] = _join(here, name)
            ofs.add(of)
    if not found:
        raise ShardDirError(f"{where}: no shard's decision file")
    if len(ofs) != 1:
        raise ShardDirError(f"{where}: shards of different plans")
    (of,) = ofs
    missing = [i for i in range(of) if i not in found]
    if missing:
        raise ShardDirError(
            f"{where}: shard(s) {', '.join(map(str, missing))} of {of} missing (no decision file)"
        )
    return found


def merge_shards(
    dirs: Sequence[str | os.PathLike[str]], messages: Mapping[int, str] | None = None
) -> AggregateResult:
    """The round from its shards' files: the same result ``aggregate_round`` returns.

    Args:
        messages: what each shard reported through the hub as it ended (the digest of its
            decision file, ``hub.ShardJobState.messages``): every decision must hash to it.
            None for a merge by hand, of shards the user ran, which trusts the files.

    Raises:
        ShardDirError: a shard missing, or its files from another round, plan or decision,
            or (with ``messages``) not the ones its shard reported through the hub.
    """
    files = _shard_files(dirs)
    try:
        return _merge(files, messages)
    except (KeyError, TypeError, ValueError, IndexError):
        # A decision file that parses but lacks what a shard writes: not one of ours.
        where = ", ".join(str(os.fspath(d)) for d in dirs)
        raise ShardDirError(f"{where}: a shard's file is not what a shard writes") from None


def _merged_state(
    files: Mapping[int, str],
    parts: Mapping[str, list[tuple[int, int]]],
    dtypes: Mapping[str, np.dtype[Any]],
    specs: Mapping[str, tuple[np.dtype[Any], tuple[int, ...]]],
    metadata: Mapping[str, str],
    digests: Mapping[int, str],
) -> bytes:
    """The round's state file, assembled in place from the shards' parts: each shard's
    state read again (it must hash as it did the first time) and its tensors' bytes copied
    to their place, so that the merge holds the state once and one shard's part beside it,
    and twice only as it is handed over as bytes (``AggregateResult.new_state``'s type);
    joining the parts held it four times (the parts, the joined tensors, the file and its
    copy as bytes). The bytes ``serialize`` gives.

    Raises:
        ShardDirError: a shard's state changed between the two reads.
        ValueError: the parts do not make up the model's tensors (not a shard's file).
    """
    shapes = {k: specs[k.partition("/")[2]][1] for k in parts}
    for key, got in parts.items():
        if sum(n for _, n in got) != math.prod(shapes[key]):
            raise ValueError(f"state {key!r}: its parts do not make up the tensor")
    layout = Layout.plan({k: (dtypes[k], shapes[k]) for k in parts}, metadata)
    out = bytearray(layout.total)
    into = memoryview(out)
    into[: len(layout.header)] = layout.header
    filled = dict.fromkeys(parts, 0)
    owners = sorted({i for got in parts.values() for i, _ in got})
    for i in owners:
        path = files[i][: -len("decision.json")] + "state.safetensors"
        data = _shard_file(path)
        if _sha256(data) != digests[i]:
            raise ShardDirError(f"{path}: changed while the merge read it")
        header = parse_header(data, len(data))
        for key in sorted(header.tensors):
            info = header.tensors[key]
            at = len(layout.header) + layout.entries[key][2] + filled[key]
            into[at : at + info.nbytes] = memoryview(data)[info.start : info.start + info.nbytes]
            filled[key] += info.nbytes
        del data
    into.release()
    return bytes(out)


def _authentic(path: str, index: int, messages: Mapping[int, str] | None) -> dict[str, Any]:
    """Shard ``index``'s file at ``path``, once it hashes to what the shard reported through
    the hub (when ``messages`` holds those reports)."""
    data = _shard_file(path)
    if messages is not None:
        reported = messages.get(index)
        if reported is None:
            raise ShardDirError(
                f"shard {index}: its pod reported no digest of its decision through the hub"
            )
        actual = _sha256(data)
        if actual != reported:
            raise ShardDirError(
                f"{path}: hashes to {actual}, not to {reported}, which its shard reported "
                "through the hub as it ended (changed in the store since)"
            )
    return _json_doc(path, data)


def _merge(files: Mapping[int, str], messages: Mapping[int, str] | None) -> AggregateResult:
    docs = [_authentic(files[i], i, messages) for i in sorted(files)]
    first = docs[0]
    own = ("shard", "slice", "state")
    for i, doc in enumerate(docs):
        same = {k: v for k, v in doc.items() if k not in own}
        if same != {k: v for k, v in first.items() if k not in own} or doc.get("shard") != i:
            raise ShardDirError(f"{files[i]}: its round or decision differs from shard 0's")
    specs = {n: (np.dtype(d), tuple(s)) for n, d, s in first["tensors"]}
    layout = Layout.plan(specs)
    h = hashlib.sha256(layout.header)
    # The model is assembled in place, a slice at a time, so that the merge holds the model
    # once and one shard's slice beside it (collecting the slices and joining them held it
    # twice: 28 GB for a 14 GB model).
    model = bytearray(layout.total)
    into = memoryview(model)  # a bytearray's own slice assignment copies the bytes first
    into[: len(layout.header)] = layout.header
    at = len(layout.header)
    # Each state tensor's parts, shard by shard ((shard, elements), in order), and dtype;
    # the bytes are copied into place in a second read (see _merged_state).
    parts: dict[str, list[tuple[int, int]]] = {}
    dtypes: dict[str, np.dtype[Any]] = {}
    state_digests: dict[int, str] = {}
    keys = ("format", "plan", "of", "round", "base_model", "strategy", "inputs")
    ident = {k: first[k] for k in keys}
    want = json.dumps(ident, sort_keys=True)
    for i in sorted(files):
        path = files[i][: -len("decision.json")]
        data = _shard_file(path + "model.bin")
        sdata = _shard_file(path + "state.safetensors")
        try:
            sheader = parse_header(sdata, len(sdata))
        except HeaderError:
            raise ShardDirError(f"{path}state.safetensors: not a shard's file") from None
        if sheader.metadata.get("ident") != want:
            raise ShardDirError(f"{path}state.safetensors: written for another round or plan")
        state_digests[i] = _sha256(sdata)
        if "state" in docs[i] and state_digests[i] != docs[i]["state"]:
            raise ShardDirError(f"{path}state.safetensors: not the bytes its decision file names")
        del sdata
        if "sha256:" + hashlib.sha256(data).hexdigest() != docs[i]["slice"]:
            raise ShardDirError(f"{path}model.bin: not the bytes its decision file names")
        if at + len(data) > layout.total:
            raise ShardDirError("the shards' model bytes do not add up to the model's size")
        h.update(data)
        into[at : at + len(data)] = data
        at += len(data)
        del data
        for key in sorted(sheader.tensors):
            info = sheader.tensors[key]
            if dtypes.setdefault(key, info.np_dtype) != info.np_dtype:
                raise ValueError(f"state {key!r}: parts of two dtypes")
            parts.setdefault(key, []).append((i, info.size))
    into.release()
    if at != layout.total:
        raise ShardDirError("the shards' model bytes do not add up to the model's size")
    digest = "sha256:" + h.hexdigest()
    new_state = None
    if first["state_names"]:
        meta = {"strategy": first["strategy"], "round": str(first["round"])}
        new_state = _merged_state(files, parts, dtypes, specs, meta, state_digests)
    record = {**first["record"], "model": digest}
    return AggregateResult(
        model=model,
        digest=digest,
        contributors=list(first["contributors"]),
        weights=dict(first["weights"]),
        rejected=dict(first["rejected"]),
        metrics=dict(first["metrics"]),
        new_state=new_state,
        record=record,
    )
