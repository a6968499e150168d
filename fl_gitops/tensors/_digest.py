"""How models, updates and checkpoints are named: ``sha256:<hex>`` of their bytes.

The store addresses global models by this digest, the checks compare an update's bytes
with the digest its metadata names, and aggregation names the model it writes by it.
"""

from __future__ import annotations

import hashlib
import os

__all__ = ["sha256_digest", "sha256_file"]

_CHUNK = 8 * 1024 * 1024


def sha256_digest(data: bytes | bytearray | memoryview) -> str:
    """Return ``sha256:<hex>`` of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Return ``sha256:<hex>`` of a local file, reading it in chunks."""
    h = hashlib.sha256()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(view):
            h.update(view[:n])
    return "sha256:" + h.hexdigest()
