"""The cryptography of the protocol, all from maintained libraries (nothing home-made):
X25519 key agreement, HKDF-SHA256 and AES-256-GCM from ``cryptography``; Shamir's secret
sharing over GF(2^128) from ``pycryptodome`` (a 32-byte secret is shared as two 16-byte
halves, each with its own random polynomial, at the same indices).
"""

from __future__ import annotations

import os

from Crypto.Protocol.SecretSharing import Shamir
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from fl_gitops.secagg._errors import BadMessage, NotEnoughShares

__all__ = [
    "agree",
    "combine",
    "decrypt",
    "encrypt",
    "new_private_key",
    "public_bytes",
    "split",
]

_RAW = serialization.Encoding.Raw
_NONCE = 12


def new_private_key() -> bytes:
    """A fresh X25519 private key, as its 32 raw bytes."""
    return X25519PrivateKey.generate().private_bytes(
        _RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def public_bytes(private: bytes) -> bytes:
    """The 32 raw bytes of the public key of ``private``."""
    key = X25519PrivateKey.from_private_bytes(private)
    return key.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw)


def agree(private: bytes, peer_public: bytes, info: bytes) -> bytes:
    """A 32-byte key both ends derive alike: HKDF-SHA256 of the X25519 shared secret,
    bound to ``info`` (the experiment, round, purpose and the pair)."""
    try:
        peer = X25519PublicKey.from_public_bytes(peer_public)
        shared = X25519PrivateKey.from_private_bytes(private).exchange(peer)
    except ValueError:
        raise BadMessage("a public key that is not an X25519 key") from None
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(shared)


def encrypt(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """AES-256-GCM: a random nonce, then the ciphertext and its tag."""
    nonce = os.urandom(_NONCE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def decrypt(key: bytes, message: bytes, aad: bytes) -> bytes:
    """Raises:
    BadMessage: the message was not made with this key for this ``aad`` (or was altered).
    """
    try:
        return AESGCM(key).decrypt(message[:_NONCE], message[_NONCE:], aad)
    except (InvalidTag, ValueError):
        raise BadMessage("a share that does not decrypt for this pair and round") from None


def split(secret: bytes, threshold: int, holders: int) -> list[bytes]:
    """Shares of a 32-byte secret, share ``i`` (0-based) for holder ``i``: any ``threshold``
    of them rebuild it, fewer say nothing of it. Each share is 32 bytes."""
    if len(secret) != 32:
        raise ValueError("a shared secret is 32 bytes")
    low = Shamir.split(threshold, holders, secret[:16])
    high = Shamir.split(threshold, holders, secret[16:])
    return [a + b for (_, a), (_, b) in zip(low, high, strict=True)]


def combine(shares: dict[int, bytes], threshold: int) -> bytes:
    """The secret from ``{holder index (0-based): share}``.

    Raises:
        NotEnoughShares: fewer than ``threshold`` shares.
    """
    if len(shares) < threshold:
        raise NotEnoughShares(f"{len(shares)} shares of a secret, {threshold} needed")
    chosen = sorted(shares.items())[:threshold]
    low = Shamir.combine([(i + 1, s[:16]) for i, s in chosen])
    high = Shamir.combine([(i + 1, s[16:]) for i, s in chosen])
    return bytes(low + high)
