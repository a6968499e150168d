"""How models, updates and checkpoints are named: ``sha256:<hex>`` of their bytes.

The store addresses global models by this digest, the checks compare an update's bytes
with the digest its metadata names, and aggregation names the model it writes by it.
"""

from __future__ import annotations

import hashlib
import os
import re
from typing import TypeGuard

__all__ = ["DIGEST_PATTERN", "is_digest", "model_path", "sha256_digest", "sha256_file"]

# What a digest looks like, written once: the blueprint schema uses the pattern (JSON
# Schema's dialect), the store and the round config test values with ``is_digest``.
DIGEST_PATTERN = r"^sha256:[0-9a-f]{64}$"
_DIGEST = re.compile(DIGEST_PATTERN)

_CHUNK = 8 * 1024 * 1024


def is_digest(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a ``sha256:<64 lowercase hex>`` string, nothing before or after."""
    return isinstance(value, str) and _DIGEST.fullmatch(value) is not None


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
    h = hashlib.sha256()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(view):
            h.update(view[:n])
    return "sha256:" + h.hexdigest()
