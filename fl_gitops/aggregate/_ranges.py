"""Byte ranges of an update file, the only way a shard reads update data; and the check
that the bytes a shard reads are the bytes the cluster reported.

A local file is read by ``pread``, a store URI by fsspec's ``cat_file(path, start, end)``
(an object store then serves only those bytes). An update named by ``blake3-blocks:``
(what clusters report now) comes with its block list beside it (``store.block_list_path``):
:func:`open_checked` reads that list, checks that it hashes to the reported digest, and
wraps the file so that every range read is checked block by block against it
(:class:`BlockCheckedFile`): the shard reads its slice and at most one block beyond it at
each end, and sums only bytes the cluster reported. An update named by a digest of the
whole file (``blake3:``, ``sha256:``, reported before), or whose list is missing or is not
the one its digest names, can only be checked whole (:func:`whole_digest`).
"""

from __future__ import annotations

import os
from typing import Any

from fl_gitops.errors import StoreError, UpdateRejected
from fl_gitops.store import block_list_path, open_regular, read_regular, storage_options_from_env
from fl_gitops.tensors import (
    BlockList,
    BlockListError,
    HeaderError,
    digest_file,
    new_hasher,
)
from fl_gitops.tensors._blocklist import ALGORITHM as BLOCKS_ALGORITHM
from fl_gitops.tensors._blocklist import list_bytes

__all__ = [
    "BlockCheckedFile",
    "BlockMismatch",
    "RangeFile",
    "StoreRangeFile",
    "is_uri",
    "local_path",
    "open_checked",
    "open_range",
    "remote",
    "whole_digest",
]


class RangeFile:
    """Byte ranges of one local file by ``pread``: the only way a shard reads update data
    (a subclass may count what is read, or serve ranges from elsewhere)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd = os.open(path, os.O_RDONLY)

    def read(self, start: int, length: int) -> bytes:
        data = os.pread(self._fd, length, start)
        while len(data) < length:
            more = os.pread(self._fd, length - len(data), start + len(data))
            if not more:
                raise HeaderError(f"file ended at byte {start + len(data)} (truncated)")
            data += more
        return data

    def size(self) -> int:
        return os.fstat(self._fd).st_size

    def close(self) -> None:
        os.close(self._fd)


def is_uri(path: str | os.PathLike[str]) -> bool:
    """Whether an update's path is a store URI (``s3://...``, ``memory://...``)."""
    return "://" in os.fspath(path)


class StoreRangeFile(RangeFile):
    """Byte ranges of a store URI through fsspec's ``cat_file(path, start, end)``: an object
    store serves only those bytes (an HTTP range request), never the whole object."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fs, self._key = remote(path)

    def read(self, start: int, length: int) -> bytes:
        # By keyword: s3fs's third positional parameter is version_id, not start.
        data = bytes(self.fs.cat_file(self._key, start=start, end=start + length))
        if len(data) < length:
            raise HeaderError(f"file ended at byte {start + len(data)} (truncated)")
        return data

    def size(self) -> int:
        return int(self.fs.size(self._key))

    def digest(self, algorithm: str = "sha256") -> str:
        """The whole object's ``<algorithm>:<hex>``, streamed."""
        h = new_hasher(algorithm)
        with self.fs.open(self._key, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
        return f"{algorithm}:{h.hexdigest()}"

    def close(self) -> None:
        pass


def whole_digest(path: str, expected: str) -> str:
    """An update's digest over the whole file, local or at a store URI, by the algorithm
    of the digest it must match (``blake3-blocks:``, ``blake3:`` or ``sha256:``)."""
    algorithm = expected.partition(":")[0]
    return StoreRangeFile(path).digest(algorithm) if is_uri(path) else digest_file(path, algorithm)


def open_range(path: str) -> RangeFile:
    """A local file by ``pread``, a store URI by fsspec's range reads."""
    return StoreRangeFile(path) if is_uri(path) else RangeFile(path)


def local_path(path: str) -> str | None:
    """A shard file's local path (a plain path or a ``file://`` URI); None for a remote URI."""
    if path.startswith("file://"):
        return path[len("file://") :]
    return None if is_uri(path) else path


def remote(uri: str) -> tuple[Any, str]:
    """The fsspec filesystem and key of a remote shard file, with the store's options
    (``FL_STORE_OPTIONS_FILE``, as the model store reads them: credentials never in argv)."""
    import fsspec

    fs, key = fsspec.core.url_to_fs(uri, **storage_options_from_env(os.environ))
    return fs, key


class BlockMismatch(StoreError):
    """A block read does not hash to its entry in the update's block list (the shard
    catches it: the update is then checked whole, or the shard fails if it was accepted)."""


class BlockCheckedFile(RangeFile):
    """A :class:`RangeFile` whose every read is checked against the update's block list.

    A read fetches the whole blocks that hold the range in one read of the file beneath,
    checks each one, and keeps the last: the next read of a slice read in order starts
    in it, so each block is fetched and hashed once.
    """

    def __init__(self, inner: RangeFile, blocks: BlockList) -> None:
        self.path = inner.path
        self._inner = inner
        self.blocks = blocks
        self._kept: tuple[int, bytes] | None = None

    def size(self) -> int:
        return self.blocks.size

    def read(self, start: int, length: int) -> bytes:
        if length <= 0:
            return b""
        blocks = self.blocks
        if start + length > blocks.size:
            raise HeaderError(f"file ended at byte {blocks.size} (truncated)")
        first, last = blocks.span(start, length)
        size = blocks.block_bytes
        offset = start - first * size  # where the range starts in block ``first``
        head = b""  # the kept block, when the range starts in it
        index = first
        if self._kept is not None and self._kept[0] == first:
            head = self._kept[1]
            index += 1
        data = memoryview(b"")
        if index < last:
            end = min(blocks.size, last * size)
            data = memoryview(self._inner.read(index * size, end - index * size))
            for i in range(index, last):
                if not blocks.check(i, data[(i - index) * size : (i - index + 1) * size]):
                    raise BlockMismatch(f"block {i} is not the one the block list names")
            # Only the last block is kept (a copy of it, not the whole read).
            self._kept = (last - 1, bytes(data[(last - 1 - index) * size :]))
        if head:
            # The range's start from the kept block, the rest from this read: one copy.
            tail = length - (len(head) - offset)
            return b"".join((memoryview(head)[offset : offset + length], data[: max(0, tail)]))
        return bytes(data[offset : offset + length])

    def close(self) -> None:
        self._inner.close()


def _read_list(path: str, limit: int) -> bytes | None:
    """The block list at ``path`` (a local path or a store URI), at most ``limit`` bytes;
    None when it is not there, holds more, or cannot be read as a regular file (a link, a
    FIFO...: never followed, never waited on). The update is then checked whole."""
    local = local_path(path)
    try:
        if local is not None:
            fd = open_regular(os.path.dirname(local) or ".", os.path.basename(local), "")
            try:
                return read_regular(fd, limit, "its block list", "")
            finally:
                os.close(fd)
        fs, key = remote(path)
        data = bytes(fs.cat_file(key, start=0, end=limit + 1))
        return data if len(data) <= limit else None
    except (OSError, ValueError, UpdateRejected):
        return None


def open_checked(path: str, digest: str, inner: RangeFile) -> BlockCheckedFile | None:
    """``inner`` checked block by block against the list beside the update at ``path``,
    when ``digest`` names one (``blake3-blocks:``), the list there hashes to it and the
    file is the size it says (bytes appended past it would go unread); else None, and the
    update is checked whole instead."""
    if digest.partition(":")[0] != BLOCKS_ALGORITHM:
        return None
    where = block_list_path(path)
    try:
        size = inner.size()
    except OSError:
        return None
    # The list of a file this size is exactly this long: nothing longer is read.
    data = _read_list(where, list_bytes(size)) if where is not None else None
    if data is None:
        return None
    try:
        blocks = BlockList.parse(data, digest)
    except BlockListError:
        return None
    if blocks.size != size:
        return None
    return BlockCheckedFile(inner, blocks)
