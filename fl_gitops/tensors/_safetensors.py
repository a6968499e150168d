"""Read and write safetensors files tensor by tensor, with numpy and bounded memory.

Why not ``safetensors.safe_open``? It maps the whole file, and every page it touches stays in
the process's resident set until the file is closed: reading a 100 MB update through it costs
100 MB of RSS even one slice at a time. Streaming aggregation must hold only the accumulator
and a chunk of one update, so this module parses the header itself and reads tensor data with
plain ``readinto`` calls, one bounded chunk at a time. Parsing it ourselves also lets an
update check give a precise reason for a file that is not safetensors at all (a pickle, a
zip written by ``torch.save``), is truncated, or has a header that lies about its offsets,
before any byte of it is trusted. Nothing here ever unpickles.

The format (https://github.com/huggingface/safetensors): 8 bytes little-endian header
length N, N bytes of UTF-8 JSON mapping each tensor name to its dtype, shape and
``data_offsets`` (relative to the end of the header), an optional ``__metadata__`` map of
strings, then the tensor bytes, little-endian, contiguous, with no holes.

:func:`serialize` writes files deterministically: tensors sorted by name, compact JSON with
sorted keys, the header padded with spaces to 8 bytes, no varying metadata. Same tensors, same
bytes, whatever the dict's order.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import math
import os
import queue
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np

from fl_gitops._cpus import usable_cores
from fl_gitops.errors import FlGitopsError
from fl_gitops.tensors._bf16 import BF16
from fl_gitops.tensors._buffers import LINE, aligned_empty, in_step
from fl_gitops.tensors._digest import new_hasher

__all__ = [
    "DTYPES",
    "MAX_HEADER_BYTES",
    "Header",
    "HeaderError",
    "Layout",
    "Lockstep",
    "ReadFailed",
    "TensorInfo",
    "TensorReader",
    "load",
    "load_bytes",
    "parse_header",
    "read_ahead",
    "read_header",
    "same_layout",
    "serialize",
]

# safetensors dtype code -> little-endian numpy dtype. BF16 has none in numpy: it is held
# as opaque 2-byte elements (``_bf16.BF16``), read as values only through ``_bf16.widen``.
# The FP8 types are refused with a clear reason rather than misread.
DTYPES: dict[str, np.dtype[Any]] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "BF16": BF16,
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}
_CODES = {dtype: code for code, dtype in DTYPES.items()}

# The reference implementation refuses headers over 100 MB; so do we.
MAX_HEADER_BYTES = 100 * 1024 * 1024
# Elements per chunk when streaming (4 MB of float32).
DEFAULT_CHUNK = 1 << 20


class HeaderError(ValueError, FlGitopsError):
    """A file that is not a well-formed safetensors file; the message says why.

    A ``ValueError`` too, as it was before it joined the tree: callers that catch it so
    keep working.
    """


class ReadFailed(HeaderError):
    """A file ended before the bytes its header promised (truncated while being read).

    ``index`` says which of the files a :class:`Lockstep` reads, ``offset`` where it ended.
    """

    def __init__(self, index: int, path: str, offset: int, error: str | None = None) -> None:
        self.index = index
        self.path = path
        self.offset = offset
        # The errno's name when the read failed rather than ended (EIO...), else None.
        self.error = error
        if error is None:
            super().__init__(f"{path}: file ended at byte {offset} (truncated)")
        else:
            super().__init__(f"{path}: cannot be read at byte {offset} ({error})")


@dataclass(frozen=True)
class TensorInfo:
    """One tensor's entry in a safetensors header."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    start: int  # absolute byte offset in the file
    end: int

    @property
    def np_dtype(self) -> np.dtype[Any]:
        return DTYPES[self.dtype]

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Header:
    """A parsed, bounds-checked safetensors header."""

    tensors: dict[str, TensorInfo]  # sorted by name
    metadata: dict[str, str]
    data_start: int
    file_size: int

    def signature(self) -> dict[str, tuple[str, tuple[int, ...]]]:
        """Tensor name -> (dtype, shape): what must match between a model and an update."""
        return {name: (t.dtype, t.shape) for name, t in self.tensors.items()}


def _sniff(prefix: bytes | bytearray) -> str | None:
    head = bytes(prefix[:4])  # a bytearray's slice is unhashable: no set lookup
    if head[:2] in {b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05"}:
        return "it is a Python pickle, not safetensors (never unpickled)"
    if head == b"PK\x03\x04":
        return "it is a zip archive (torch.save?), not safetensors (never unpickled)"
    return None


def parse_header(prefix: bytes | bytearray, file_size: int) -> Header:
    """Parse and bounds-check a header from the file's first bytes.

    Args:
        prefix: at least the first ``8 + N`` bytes of the file (more is fine).
        file_size: the file's full size, to check the offsets against.

    Raises:
        HeaderError: with the reason.
    """
    if file_size < 8 or len(prefix) < 8:
        sniffed = _sniff(prefix)
        raise HeaderError(sniffed or f"file is {file_size} bytes, too short for a header")
    n = int.from_bytes(prefix[:8], "little")
    if n > MAX_HEADER_BYTES or n > file_size - 8:
        sniffed = _sniff(prefix)
        if sniffed:
            raise HeaderError(sniffed)
        raise HeaderError(
            f"header length {n} does not fit in the file ({file_size} bytes): "
            "truncated, or not safetensors"
        )
    if len(prefix) < 8 + n:
        raise HeaderError(f"header length {n}: only {len(prefix) - 8} header bytes read")
    try:
        raw = json.loads(prefix[8 : 8 + n].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise HeaderError(_sniff(prefix) or "header is not valid UTF-8 JSON") from None
    if not isinstance(raw, dict):
        raise HeaderError("header is not a JSON object")
    metadata = raw.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()
    ):
        raise HeaderError("__metadata__ is not a map of strings to strings")
    data_start = 8 + n
    data_len = file_size - data_start
    infos: list[TensorInfo] = []
    for name, entry in raw.items():
        infos.append(_tensor_info(name, entry, data_start))
    # Offsets must tile the data buffer exactly: no holes, no overlaps, nothing past the end.
    pos = 0
    for info in sorted(infos, key=lambda t: (t.start, t.end)):
        if info.start - data_start != pos:
            raise HeaderError(
                f"tensor {_shown(info.name)}: data starts at {info.start - data_start}, expected "
                f"{pos} (overlapping or missing bytes)"
            )
        pos = info.end - data_start
    if pos != data_len:
        if pos > data_len:
            raise HeaderError(
                f"tensor data needs {pos} bytes but the file holds {data_len} after its "
                "header: truncated"
            )
        raise HeaderError(f"{data_len - pos} bytes after the last tensor")
    tensors = {t.name: t for t in sorted(infos, key=lambda t: t.name)}
    return Header(
        tensors=tensors, metadata=dict(metadata), data_start=data_start, file_size=file_size
    )


# A header comes from whoever wrote the file (a cluster): its reasons show a tensor's name
# only when it looks like one (at most 128 of these characters), a dtype only when it looks
# like a code, and never a shape or offsets that were not valid.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.:/-]{1,128}")
_PLAIN_CODE = re.compile(r"[A-Z0-9_]{1,8}")  # F8_E4M3 too


def _shown(name: str) -> str:
    return repr(name) if _PLAIN_NAME.fullmatch(name) else "(a name not shown)"


def _tensor_info(name: str, entry: object, data_start: int) -> TensorInfo:
    shown = _shown(name)
    if not isinstance(entry, dict):
        raise HeaderError(f"tensor {shown}: entry is not an object")
    dtype = entry.get("dtype")
    if dtype not in DTYPES:
        code = repr(dtype) if isinstance(dtype, str) and _PLAIN_CODE.fullmatch(dtype) else ""
        raise HeaderError(f"tensor {shown}: dtype {code + ' ' if code else ''}is not supported")
    shape = entry.get("shape")
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise HeaderError(f"tensor {shown}: shape is not a list of sizes")
    offsets = entry.get("data_offsets")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(o, int) and not isinstance(o, bool) and o >= 0 for o in offsets)
        or offsets[1] < offsets[0]
    ):
        raise HeaderError(f"tensor {shown}: data_offsets is not [begin, end]")
    expected = math.prod(shape) * DTYPES[dtype].itemsize
    if offsets[1] - offsets[0] != expected:
        of = f"shape {shape} of {dtype}" if len(shape) <= 8 else f"its shape of {dtype}"
        raise HeaderError(
            f"tensor {shown}: {offsets[1] - offsets[0]} bytes for {of}, expected {expected}"
        )
    return TensorInfo(
        name=name,
        dtype=dtype,
        shape=tuple(shape),
        start=data_start + offsets[0],
        end=data_start + offsets[1],
    )


def read_header(path: str | os.PathLike[str]) -> Header:
    """Parse the header of a local safetensors file (reads only the header).

    Raises:
        HeaderError: the file is not well-formed safetensors.
        OSError: it cannot be read.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        first = f.read(8)
        if len(first) < 8:
            return parse_header(first, size)
        n = int.from_bytes(first, "little")
        if n > MAX_HEADER_BYTES or n > size - 8:
            return parse_header(first, size)  # raises, with a sniffed reason
        return parse_header(first + f.read(n), size)


class TensorReader:
    """Read tensors of one local safetensors file with plain reads (no mmap).

    Use as a context manager. :meth:`chunks` reuses one buffer: a chunk is valid only until
    the next one is read, which is what keeps memory bounded.
    """

    def __init__(self, path: str | os.PathLike[str], header: Header | None = None) -> None:
        self.path = os.fspath(path)
        self.header = header if header is not None else read_header(path)
        self._f: io.FileIO | None = None
        self._buf: np.ndarray[Any, Any] | None = None

    def __enter__(self) -> TensorReader:
        self._f = open(self.path, "rb", buffering=0)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
        self._buf = None

    def _readinto(self, start: int, out: memoryview) -> None:
        assert self._f is not None, "use TensorReader as a context manager"
        self._f.seek(start)
        got = 0
        while got < len(out):
            n = self._f.readinto(out[got:])
            if not n:
                raise HeaderError(f"{self.path}: file ended at byte {start + got} (truncated)")
            got += n

    def _read_at(self, at: int, nbytes: int) -> np.ndarray[Any, Any]:
        """``nbytes`` of the file from ``at``, in the reused buffer (grown when too small),
        placed in step with the file offset."""
        if self._buf is None or self._buf.nbytes < nbytes + LINE:
            self._buf = aligned_empty(nbytes)
        raw = in_step(self._buf, at, nbytes)
        self._readinto(at, memoryview(raw))  # type: ignore[arg-type]
        return raw

    def read(self, name: str) -> np.ndarray[Any, Any]:
        """Read one whole tensor into a new array."""
        info = self.header.tensors[name]
        arr = np.empty(info.shape, dtype=info.np_dtype)
        if info.nbytes:
            self._readinto(info.start, memoryview(arr.reshape(-1).view(np.uint8)))  # type: ignore[arg-type]
        return arr

    def range(self, name: str, offset: int, count: int) -> np.ndarray[Any, Any]:
        """Read ``count`` elements of a tensor from flat ``offset``, into a reused buffer."""
        info = self.header.tensors[name]
        if offset < 0 or count < 0 or offset + count > info.size:
            raise IndexError(f"tensor {name!r}: elements [{offset}, {offset + count}) out of range")
        item = info.np_dtype.itemsize
        return self._read_at(info.start + offset * item, count * item).view(info.np_dtype)

    def chunks(
        self, name: str, max_elements: int = DEFAULT_CHUNK
    ) -> Iterator[tuple[int, np.ndarray[Any, Any]]]:
        """Yield ``(flat_offset, 1-D chunk)`` covering a tensor, reusing one buffer."""
        info = self.header.tensors[name]
        total = info.size
        step = max(1, min(max_elements, total))
        item = info.np_dtype.itemsize
        for offset in range(0, total, step):
            count = min(step, total - offset)
            raw = self._read_at(info.start + offset * item, count * item)
            yield offset, raw.view(info.np_dtype)


def same_layout(a: Header, b: Header) -> bool:
    """Whether two files hold the same tensors at the same places after their headers."""
    return _layout_key(a) == _layout_key(b)


def _layout_key(header: Header) -> tuple[tuple[str, str, int, int], ...]:
    base = header.data_start
    return tuple(
        (t.name, t.dtype, t.start - base, t.end - base)
        for t in sorted(header.tensors.values(), key=lambda t: t.start)
    )


_WILLNEED = getattr(os, "POSIX_FADV_WILLNEED", None)


def read_ahead(fd: int, start: int, length: int) -> None:
    """Ask the kernel to start reading a byte range of an open file (a hint; never fails)."""
    if _WILLNEED is None or length <= 0:
        return
    with contextlib.suppress(OSError):
        os.posix_fadvise(fd, start, length, _WILLNEED)


def _pread_exact(fd: int, view: memoryview, start: int, index: int, path: str) -> None:
    got = 0
    while got < len(view):
        try:
            n = os.preadv(fd, [view[got:]], start + got)
        except OSError as exc:
            code = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
            raise ReadFailed(index, path, start + got, code) from None
        if not n:
            raise ReadFailed(index, path, start + got)
        got += n


class Lockstep:
    """Read files that share one layout chunk by chunk, side by side, hashing every byte.

    Each step yields the same span of the same tensor from every file, in file order, so a
    caller can combine the files element by element while that span is in cache: summing
    K updates this way reads and writes the accumulator once per group of files instead of
    once per file. With ``threaded`` (the default), reader threads read and hash up to
    ``depth`` chunks of each file ahead of the caller; file reads and ``hashlib`` release
    the GIL, so on several cores several files are hashed at once while the caller works,
    and a file's bytes are hashed in order because one thread reads it. There are
    ``readers`` threads (default: one per usable core, at most one per file), each serving
    every ``readers``-th file: more threads than cores hash no faster, and each one more
    takes the GIL from the caller at every numpy call it makes (measured here: nine
    threads for nine files made the caller's summing 2.8x slower than one). The kernel is
    asked to read one chunk ahead of each file.

    Use as a context manager. A step's views are valid until the next step. ``buffers``
    (``depth`` per file, ``slot_bytes`` each) lets a caller reuse memory across instances.
    After the last step, :meth:`digests` gives each file's digest over all its bytes,
    header included (``algorithms``: one per hashed file, ``sha256``, ``blake3`` or
    ``blake3-blocks``, default ``sha256``): the bytes hashed are exactly the bytes handed
    out.
    """

    def __init__(
        self,
        paths: Sequence[str | os.PathLike[str]],
        headers: Sequence[Header],
        *,
        slot_bytes: int,
        max_elements: int = DEFAULT_CHUNK,
        threaded: bool = True,
        depth: int = 3,
        buffers: Sequence[np.ndarray[Any, Any]] | None = None,
        hashed: int | None = None,
        readers: int | None = None,
        algorithms: Sequence[str] | None = None,
    ) -> None:
        if not paths or len(paths) != len(headers):
            raise ValueError("Lockstep needs one header per path, and at least one path")
        if not all(same_layout(headers[0], h) for h in headers[1:]):
            raise ValueError("Lockstep reads files of one layout only")
        self.paths = [os.fspath(p) for p in paths]
        self.headers = list(headers)
        # The first ``hashed`` files are hashed; any after them are only read (the global
        # model beside its updates, on the reader threads rather than the caller's).
        self.hashed = len(self.paths) if hashed is None else hashed
        self.algorithms = list(algorithms) if algorithms is not None else ["sha256"] * self.hashed
        if len(self.algorithms) != self.hashed:
            raise ValueError("Lockstep needs one digest algorithm per hashed file")
        self.threaded = threaded
        self.readers = max(1, min(len(paths), readers or usable_cores()))
        self.depth = max(2, depth) if threaded else 1
        self._steps: list[tuple[str, int, int, int]] = []  # name, offset, rel start, nbytes
        for info in sorted(headers[0].tensors.values(), key=lambda t: t.start):
            item = info.np_dtype.itemsize
            step = max(1, min(max_elements, slot_bytes // item))
            rel = info.start - headers[0].data_start
            for offset in range(0, info.size, step):
                count = min(step, info.size - offset)
                self._steps.append((info.name, offset, rel + offset * item, count * item))
        self._slot_bytes = max((s[3] for s in self._steps), default=0)
        if buffers is not None and (
            len(buffers) < self.depth * len(paths)
            or any(b.dtype != np.uint8 or b.nbytes < self._slot_bytes + LINE for b in buffers)
        ):
            raise ValueError(
                f"Lockstep needs {self.depth * len(paths)} uint8 buffers of slot_bytes + LINE"
                " (tensors.aligned_empty)"
            )
        self._buffers = buffers
        self._fds: list[int] = []
        self._hashes: list[Any] = []
        self._finished = False
        self._readers: list[threading.Thread] = []
        self._free: list[queue.SimpleQueue[int | None]] = []

    def __enter__(self) -> Lockstep:
        try:
            for i, path in enumerate(self.paths):
                fd = os.open(path, os.O_RDONLY)
                self._fds.append(fd)
                start = self.headers[i].data_start
                read_ahead(fd, 0, start + 2 * self._slot_bytes)
                head = memoryview(bytearray(start))
                _pread_exact(fd, head, 0, i, path)
                if i < self.hashed:
                    h = new_hasher(self.algorithms[i])
                    h.update(head)
                    self._hashes.append(h)
                else:
                    self._hashes.append(None)
        except BaseException:
            self._close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._close()

    def _close(self) -> None:
        self._stop_readers()
        for fd in self._fds:
            os.close(fd)
        self._fds = []

    def _stop_readers(self) -> None:
        """Tell every reader thread to stop, and wait: none reads a closed file.

        A thread is recorded before its ``start()``, so that a Ctrl-C at any point of the
        start leaves none that nobody stops. One whose start was interrupted before it ran
        cannot be joined (``join`` raises "cannot join thread before it is started", which
        once replaced the Ctrl-C with a bug, exit 3): it never runs, or runs to the None
        waiting in its first file's queue and reads nothing, so it is passed over.
        """
        for free in self._free:
            free.put(None)
        for thread in self._readers:
            with contextlib.suppress(RuntimeError):  # never started
                thread.join()
        self._readers = []
        self._free = []

    def _fill(self, i: int, k: int, slot: np.ndarray[Any, Any]) -> None:
        """Read step ``k`` of file ``i`` into ``slot`` and hash it (steps in order only)."""
        _, _, rel, nbytes = self._steps[k]
        fd = self._fds[i]
        start = self.headers[i].data_start
        if k + 1 < len(self._steps):
            ahead = self._steps[k + 1]
            read_ahead(fd, start + ahead[2], ahead[3])
        view = memoryview(in_step(slot, start + rel, nbytes))  # type: ignore[arg-type]
        _pread_exact(fd, view, start + rel, i, self.paths[i])
        h = self._hashes[i]
        if h is not None:
            h.update(view)

    def _reader(
        self,
        files: Sequence[int],
        slots: list[list[np.ndarray[Any, Any]]],
        free: list[queue.SimpleQueue[int | None]],
        ready: list[queue.SimpleQueue[int | BaseException]],
    ) -> None:
        """Fill every step of ``files``, in step order and then file order.

        On a failure the exception goes to the failed file and to every later one this
        thread serves, so that the caller, which waits for each file's step, is never left
        waiting and (taking the first failure in file order) blames the file that failed.
        """
        for k in range(len(self._steps)):
            for n, i in enumerate(files):
                j = free[i].get()
                if j is None:  # the caller stopped early
                    return
                try:
                    self._fill(i, k, slots[i][j])
                except BaseException as exc:  # handed to the caller, which raises it
                    for later in files[n:]:
                        ready[later].put(exc)
                    return
                ready[i].put(j)

    def chunks(self) -> Iterator[tuple[str, int, list[np.ndarray[Any, Any]]]]:
        """Yield ``(tensor name, flat offset, [1-D chunk of each file])`` over all the data.

        Raises:
            ReadFailed: a file ended early (its index says which); reading stops.
        """
        if not self._fds:
            raise RuntimeError("use Lockstep as a context manager")
        if self._finished:
            raise RuntimeError("a Lockstep reads its files once")
        n = len(self.paths)
        pool = self._buffers
        slots = [
            [
                pool[i * self.depth + j] if pool is not None else aligned_empty(self._slot_bytes)
                for j in range(self.depth)
            ]
            for i in range(n)
        ]
        tensors = self.headers[0].tensors
        if not self.threaded:
            for k, (name, offset, rel, nbytes) in enumerate(self._steps):
                for i in range(n):
                    self._fill(i, k, slots[i][0])
                dtype = tensors[name].np_dtype
                views = [self._view(i, s[0], rel, nbytes, dtype) for i, s in enumerate(slots)]
                yield name, offset, views
            self._finished = True
            return
        free: list[queue.SimpleQueue[int | None]] = [queue.SimpleQueue() for _ in range(n)]
        self._free = free
        ready: list[queue.SimpleQueue[int | BaseException]] = [
            queue.SimpleQueue() for _ in range(n)
        ]
        served = [range(t, n, self.readers) for t in range(self.readers)]
        threads = [
            threading.Thread(
                target=self._reader,
                args=(served[t], slots, free, ready),
                name=f"fl-gitops-read-{t}",
                daemon=True,
            )
            for t in range(self.readers)
        ]
        held: list[int] = []
        try:
            # Each reader waits for its first free slot, so none reads before every one
            # is started (and recorded: ``_stop_readers``).
            for t in threads:
                self._readers.append(t)
                t.start()
            for i in range(n):
                for j in range(self.depth):
                    free[i].put(j)
            for name, offset, rel, nbytes in self._steps:
                # The caller is done with the last step's chunks: their slots are free.
                for i, j in enumerate(held):
                    free[i].put(j)
                held = []
                failure: BaseException | None = None
                for i in range(n):
                    got = ready[i].get()
                    if isinstance(got, BaseException):
                        failure = failure or got
                    else:
                        held.append(got)
                if failure is not None:
                    raise failure
                dtype = tensors[name].np_dtype
                yield (
                    name,
                    offset,
                    [self._view(i, slots[i][j], rel, nbytes, dtype) for i, j in enumerate(held)],
                )
            self._finished = True
        finally:
            self._stop_readers()

    def _view(
        self, i: int, slot: np.ndarray[Any, Any], rel: int, nbytes: int, dtype: np.dtype[Any]
    ) -> np.ndarray[Any, Any]:
        """File ``i``'s chunk at ``rel`` as ``_fill`` placed it in ``slot``."""
        return in_step(slot, self.headers[i].data_start + rel, nbytes).view(dtype)

    def digests(self) -> list[str]:
        """Each hashed file's ``<algorithm>:<hex>``, once :meth:`chunks` has gone through
        every step."""
        if not self._finished:
            raise RuntimeError("the files have not been read to the end")
        return [
            f"{a}:{h.hexdigest()}"
            for a, h in zip(self.algorithms, self._hashes[: self.hashed], strict=True)
        ]


def load(path: str | os.PathLike[str]) -> dict[str, np.ndarray[Any, Any]]:
    """Read every tensor of a small local file (tests, strategy state). Not for updates."""
    with TensorReader(path) as reader:
        return {name: reader.read(name) for name in reader.header.tensors}


def load_bytes(data: bytes | bytearray) -> dict[str, np.ndarray[Any, Any]]:
    """Read every tensor from safetensors bytes (small files: strategy state, tests)."""
    header = parse_header(data, len(data))
    return {
        name: np.frombuffer(data, dtype=t.np_dtype, count=t.size, offset=t.start)
        .reshape(t.shape)
        .copy()
        for name, t in header.tensors.items()
    }


@dataclass(frozen=True)
class Layout:
    """Where each tensor goes in a file about to be written; fill it, then take the bytes.

    Lets a writer convert an accumulator into the output one tensor at a time, straight into
    the output buffer, with no second copy of the model.
    """

    header: bytes
    entries: dict[str, tuple[np.dtype[Any], tuple[int, ...], int]]  # name -> dtype, shape, offset
    total: int

    @classmethod
    def plan(
        cls,
        specs: Mapping[str, tuple[np.dtype[Any] | str, tuple[int, ...]]],
        metadata: Mapping[str, str] | None = None,
    ) -> Layout:
        """Lay out tensors sorted by name; ``specs`` maps name -> (numpy dtype, shape)."""
        entries: dict[str, tuple[np.dtype[Any], tuple[int, ...], int]] = {}
        doc: dict[str, Any] = {}
        pos = 0
        for name in sorted(specs):
            code = _CODES.get(np.dtype(specs[name][0]).newbyteorder("<"))
            if code is None:
                raise ValueError(f"tensor {name!r}: dtype {specs[name][0]} has no safetensors code")
            shape = tuple(int(d) for d in specs[name][1])
            nbytes = math.prod(shape) * DTYPES[code].itemsize
            doc[name] = {"dtype": code, "shape": list(shape), "data_offsets": [pos, pos + nbytes]}
            entries[name] = (DTYPES[code], shape, pos)
            pos += nbytes
        if metadata:
            doc["__metadata__"] = dict(sorted(metadata.items()))
        text = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
        text += b" " * (-(8 + len(text)) % 8)
        header = len(text).to_bytes(8, "little") + text
        return cls(header=header, entries=entries, total=len(header) + pos)

    def allocate(self) -> np.ndarray[Any, Any]:
        """A zeroed output buffer (uint8) with the header in place.

        Allocated with ``np.zeros`` (calloc): pages become resident only as tensors are
        written, so converting an accumulator into it tensor by tensor never holds both
        whole. Take the bytes with ``buf.tobytes()``.
        """
        buf = np.zeros(self.total, dtype=np.uint8)
        buf[: len(self.header)] = np.frombuffer(self.header, dtype=np.uint8)
        return buf

    def view(self, buf: np.ndarray[Any, Any], name: str) -> np.ndarray[Any, Any]:
        """A writable array over ``name``'s bytes in ``buf``."""
        dtype, shape, offset = self.entries[name]
        start = len(self.header) + offset
        nbytes = math.prod(shape) * dtype.itemsize
        return buf[start : start + nbytes].view(dtype).reshape(shape)


def serialize(
    tensors: Mapping[str, np.ndarray[Any, Any]], metadata: Mapping[str, str] | None = None
) -> bytes:
    """Write tensors as safetensors bytes, deterministically (sorted names, fixed header)."""
    layout = Layout.plan({n: (a.dtype, a.shape) for n, a in tensors.items()}, metadata)
    buf = layout.allocate()
    for name, arr in tensors.items():
        layout.view(buf, name)[...] = arr
    return buf.tobytes()
