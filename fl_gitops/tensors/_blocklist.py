"""An update's digest that a slice can be checked against: BLAKE3 over a list of block hashes.

Why: a sharded round's shard reads only its slice of every update (range reads, so that an
object store serves only those bytes), but a digest of the whole file can only be checked
by reading the whole file. So a cluster names its update by ``blake3-blocks:<hex>``: the
file cut into blocks of :data:`BLOCK_BYTES` from byte 0 (the last one shorter), each block
hashed with BLAKE3, and the digest is BLAKE3 of the *block list*::

    b"fl-gitops/blake3-blocks/v1\\0" || size (8 bytes, little-endian)
        || block size (4 bytes, little-endian) || BLAKE3(block 0) || BLAKE3(block 1) || ...

The store keeps that list beside the update (``<cluster>.blocks``). A shard reads it (a few
KB), checks that it hashes to the digest the cluster reported through the hub, and then
checks each block it reads against its entry: the bytes it sums are the bytes the cluster
reported, and it reads its slice plus at most one block at each end. One pod that reads
the whole file needs no list: :class:`BlockListHasher` streams the same digest in the pass
that sums the file, as fast as plain BLAKE3. The construction is a one-level hash list
(as BitTorrent v2's piece hashes): two files with one digest would take a BLAKE3
collision, in the list or in a block; the list's prefix and its length fields make every
list of one file size unambiguous.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fl_gitops.errors import FlGitopsError

if TYPE_CHECKING:
    from blake3 import blake3

__all__ = [
    "ALGORITHM",
    "BLOCK_BYTES",
    "BlockList",
    "BlockListError",
    "BlockListHasher",
    "list_bytes",
]

#: The algorithm name an update's digest carries.
ALGORITHM = "blake3-blocks"
#: The block size: small beside a shard's slice (so the ends it reads beyond its slice are
#: small), large enough that BLAKE3 hashes at full speed and the list stays a few KB per
#: 100 MB (32 bytes a block: 12.5 KB for 100 MB, 1.7 MB for 14 GB).
BLOCK_BYTES = 256 * 1024

_PREFIX = b"fl-gitops/blake3-blocks/v1\0"
_HEAD = len(_PREFIX) + 8 + 4
_LEAF = 32


def _new(data: bytes | memoryview = b"") -> blake3:
    """A one-thread BLAKE3 hasher (the readers already hash one file each)."""
    from blake3 import blake3  # a compiled core dependency; imported where a digest is taken

    return blake3(data, max_threads=1)


def list_bytes(size: int) -> int:
    """How long the block list of a file of ``size`` bytes is."""
    return _HEAD + _LEAF * math.ceil(size / BLOCK_BYTES)


class BlockListError(ValueError, FlGitopsError):
    """A block list that is not one, or not the one a digest names (says which, never what
    the bytes were: the list comes from the store)."""


class BlockListHasher:
    """``hashlib``'s interface for ``blake3-blocks``: feed the file's bytes in order, in
    pieces of any size; :meth:`hexdigest` gives the digest, :meth:`list_bytes` the list
    the store keeps beside the file."""

    def __init__(self) -> None:
        self._block = _new()
        self._filled = 0
        self._size = 0
        self._leaves: list[bytes] = []

    def update(self, data: bytes | bytearray | memoryview, /) -> None:
        view = memoryview(data).cast("B")
        while view:
            take = min(len(view), BLOCK_BYTES - self._filled)
            self._block.update(view[:take])
            self._filled += take
            self._size += take
            view = view[take:]
            if self._filled == BLOCK_BYTES:
                self._leaves.append(self._block.digest())
                self._block = _new()
                self._filled = 0

    def list_bytes(self) -> bytes:
        """The block list of the bytes fed so far (a last, shorter block included)."""
        leaves = list(self._leaves)
        if self._filled:
            leaves.append(self._block.digest())
        head = _PREFIX + self._size.to_bytes(8, "little") + BLOCK_BYTES.to_bytes(4, "little")
        return head + b"".join(leaves)

    def hexdigest(self) -> str:
        return BlockList.digest_of(self.list_bytes()).partition(":")[2]


@dataclass(frozen=True)
class BlockList:
    """A parsed block list: the file's size and each block's BLAKE3."""

    size: int
    block_bytes: int
    leaves: tuple[bytes, ...]

    @staticmethod
    def digest_of(data: bytes) -> str:
        """``blake3-blocks:<hex>`` of a block list's bytes."""
        return f"{ALGORITHM}:{_new(data).hexdigest()}"

    @classmethod
    def parse(cls, data: bytes, digest: str) -> BlockList:
        """The list in ``data``, once it hashes to ``digest`` and is well formed.

        Raises:
            BlockListError: it hashes to another digest (both named), or it is not a block
                list of this version.
        """
        actual = cls.digest_of(data)
        if actual != digest:
            raise BlockListError(f"its block list hashes to {actual}, not {digest}")
        if len(data) < _HEAD or not data.startswith(_PREFIX):
            raise BlockListError("its block list is not a blake3-blocks v1 list")
        size = int.from_bytes(data[len(_PREFIX) : len(_PREFIX) + 8], "little")
        block = int.from_bytes(data[len(_PREFIX) + 8 : _HEAD], "little")
        body = data[_HEAD:]
        if block != BLOCK_BYTES or len(body) != _LEAF * math.ceil(size / block):
            raise BlockListError("its block list does not fit its own size fields")
        leaves = tuple(body[i : i + _LEAF] for i in range(0, len(body), _LEAF))
        return cls(size, block, leaves)

    def span(self, start: int, length: int) -> tuple[int, int]:
        """The blocks ``[first, last)`` that hold bytes ``[start, start + length)``."""
        first = start // self.block_bytes
        last = min(len(self.leaves), -(-(start + length) // self.block_bytes))
        return first, last

    def check(self, index: int, block: bytes | memoryview) -> bool:
        """Whether ``block`` is block ``index`` of the file the list names."""
        if not 0 <= index < len(self.leaves):
            return False
        expected = min(self.block_bytes, self.size - index * self.block_bytes)
        if len(block) != expected:
            return False
        return _new(block).digest() == self.leaves[index]
