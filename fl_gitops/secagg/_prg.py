"""Masks: a 32-byte seed stretched to integers modulo ``2^bits`` by AES-256 in counter mode.

A cryptographic stream (the ``cryptography`` package's AES, hardware-accelerated), not
numpy's generators: a mask must not be predictable from the masked values.
"""

from __future__ import annotations

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from fl_gitops.secagg._quantize import U64

__all__ = ["expand"]

_BLOCK = 1 << 20  # elements generated per step, so memory stays a few MiB


def expand(seed: bytes, count: int, bits: int) -> U64:
    """``count`` integers modulo ``2^bits`` from ``seed`` (32 bytes), the same for anyone
    holding the seed."""
    if len(seed) != 32:
        raise ValueError("a mask seed is 32 bytes")
    out = np.empty(count, dtype=np.uint64)
    encryptor = Cipher(algorithms.AES(seed), modes.CTR(b"\0" * 16)).encryptor()
    zeros = bytes(8 * min(count, _BLOCK))
    for start in range(0, count, _BLOCK):
        n = min(_BLOCK, count - start)
        out[start : start + n] = np.frombuffer(encryptor.update(zeros[: 8 * n]), dtype="<u8")
    if bits < 64:
        out &= np.uint64((1 << bits) - 1)
    return out
