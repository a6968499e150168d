"""How models, updates and checkpoints are named: ``<algorithm>:<hex>`` of their bytes.

The store addresses global models by ``sha256:<hex>`` (the ecosystem's convention for
content addresses), and aggregation names the model it writes by it. An update's digest
names its algorithm: ``blake3-blocks:<hex>`` for what a cluster reports now (BLAKE3, about
3.5x faster per core than SHA-256 here, over a list of block hashes so that a shard can
check the slice it reads: ``_blocklist``), ``blake3:<hex>`` and ``sha256:<hex>`` (of the
whole file) for updates reported before; the checks hash the bytes with the algorithm the
reported digest names.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import Protocol, TypeGuard, TypeVar, cast

from fl_gitops.tensors._blocklist import ALGORITHM as BLOCKS_ALGORITHM
from fl_gitops.tensors._blocklist import BlockListHasher
from fl_gitops.tensors._buffers import aligned_empty, in_step

__all__ = [
    "DIGEST_PATTERN",
    "UPDATE_ALGORITHM",
    "UPDATE_DIGEST_PATTERN",
    "Hasher",
    "digest_file",
    "is_digest",
    "is_update_digest",
    "model_path",
    "new_hasher",
    "sha256_digest",
    "sha256_file",
    "update_block_list",
    "update_block_list_file",
    "update_digest",
    "update_digest_file",
]

# What a digest looks like, written once: the blueprint schema uses the pattern (JSON
# Schema's dialect), the store and the round config test values with ``is_digest``.
DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"
_DIGEST = re.compile(DIGEST_PATTERN)
# An update's digest: the algorithm it names, then 64 lowercase hex digits.
UPDATE_DIGEST_PATTERN = r"^(?:sha256|blake3|blake3-blocks):[0-9a-f]{64}$"
_UPDATE_DIGEST = re.compile(UPDATE_DIGEST_PATTERN)
#: The algorithm a cluster names its update by.
UPDATE_ALGORITHM = BLOCKS_ALGORITHM

# Big enough that hashing runs at full speed, small beside a shard's slice.
_CHUNK = 1024 * 1024


def is_digest(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a ``sha256:<64 lowercase hex>`` string, nothing before or after."""
    return isinstance(value, str) and _DIGEST.fullmatch(value) is not None


def is_update_digest(value: object) -> TypeGuard[str]:
    """Whether ``value`` is an update's digest: ``sha256:``, ``blake3:`` or
    ``blake3-blocks:`` and 64 lowercase hex."""
    return isinstance(value, str) and _UPDATE_DIGEST.fullmatch(value) is not None


class Hasher(Protocol):
    """What :func:`new_hasher` returns: hashlib's interface, for either algorithm."""

    def update(self, data: bytes | bytearray | memoryview, /) -> object: ...

    def hexdigest(self) -> str: ...


_H = TypeVar("_H", bound=Hasher)


def new_hasher(digest: str) -> Hasher:
    """A fresh hasher of the algorithm ``digest`` names (``sha256:...``, ``blake3:...``,
    ``blake3-blocks:...``, or the bare name). BLAKE3 on one thread: the readers already
    hash one file each.

    Raises:
        ValueError: another algorithm (callers check digests with ``is_update_digest``).
    """
    algorithm = digest.partition(":")[0]
    if algorithm == "sha256":
        return hashlib.sha256()
    if algorithm == "blake3":
        import blake3  # a compiled core dependency; imported where a digest is checked

        return cast(Hasher, blake3.blake3(max_threads=1))
    if algorithm == BLOCKS_ALGORITHM:
        return BlockListHasher()
    raise ValueError(f"not a digest algorithm fl-gitops knows: {algorithm[:16]!r}")


def digest_file(path: str | os.PathLike[str], algorithm: str) -> str:
    """``<algorithm>:<hex>`` of a local file, read in chunks (``algorithm`` as
    :func:`new_hasher` takes it)."""
    h = _fed(new_hasher(algorithm), path)
    return f"{algorithm.partition(':')[0]}:{h.hexdigest()}"


def _fed(h: _H, path: str | os.PathLike[str]) -> _H:
    """``h`` given every byte of a local file, read in chunks."""
    view = memoryview(in_step(aligned_empty(_CHUNK), 0, _CHUNK))  # type: ignore[arg-type]
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(view):
            h.update(view[:n])
    return h


def update_digest(data: bytes | bytearray | memoryview) -> str:
    """The digest a cluster reports for its update's bytes: ``blake3-blocks:<hex>``."""
    return update_block_list(data)[0]


def update_digest_file(path: str | os.PathLike[str]) -> str:
    """:func:`update_digest` of a local file."""
    return update_block_list_file(path)[0]


def update_block_list(data: bytes | bytearray | memoryview) -> tuple[str, bytes]:
    """An update's digest and the block list the store keeps beside it (``_blocklist``)."""
    h = BlockListHasher()
    h.update(data)
    return f"{UPDATE_ALGORITHM}:{h.hexdigest()}", h.list_bytes()


def update_block_list_file(path: str | os.PathLike[str]) -> tuple[str, bytes]:
    """:func:`update_block_list` of a local file, read in chunks."""
    h = _fed(BlockListHasher(), path)
    return f"{UPDATE_ALGORITHM}:{h.hexdigest()}", h.list_bytes()


def model_path(digest: str) -> str:
    """Where the global model with ``digest`` lives, relative to the store's root.

    The one spelling of that path: the store reads and writes it, and rendering writes
    the full URI into each round config before the store is ever opened.
    """
    return f"models/sha256-{digest.removeprefix('sha256:')}.safetensors"


def sha256_digest(data: bytes | bytearray | memoryview) -> str:
    """Return ``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Return ``sha256:<hex>`` of a local file, reading it in chunks."""
    return digest_file(path, "sha256")
