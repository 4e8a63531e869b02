"""Entries at rest: zstd-compressed (Relay's C++ compressor) and then encrypted with
AES-256-GCM, the entry's id as associated data, so a copied store reveals nothing and a sealed
value moved to another entry's id does not open.

Key rotation: the first key seals; every key opens (a sealed value names its key by a short
fingerprint, so opening tries one key, not all).
"""

from __future__ import annotations

import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from relay_context.core.compression import CompressionEngine

NONCE_BYTES = 12
FINGERPRINT_BYTES = 4
#: Sealed-value format version (first byte).
SEAL_VERSION = 1


def key_fingerprint(key: bytes) -> bytes:
    return hashlib.sha256(b"relay-cache-key-id" + key).digest()[:FINGERPRINT_BYTES]


class Sealer:
    def __init__(self, keys: list[bytes], *, max_entry_bytes: int) -> None:
        if not keys:
            raise ValueError("a sealer needs at least one key")
        self._current = AESGCM(keys[0])
        self._current_id = key_fingerprint(keys[0])
        self._by_id = {key_fingerprint(k): AESGCM(k) for k in keys}
        self._codec = CompressionEngine("zstd", 3, max_decompressed_size=max_entry_bytes * 2)

    def seal(self, entry_id: str, value: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        compressed = self._codec.compress(value)
        sealed = self._current.encrypt(nonce, compressed, entry_id.encode())
        return bytes([SEAL_VERSION]) + self._current_id + nonce + sealed

    def open(self, entry_id: str, sealed: bytes) -> bytes | None:
        """The value, or ``None`` if no key opens it (unknown key, tampered, another id)."""
        if len(sealed) < 1 + FINGERPRINT_BYTES + NONCE_BYTES or sealed[0] != SEAL_VERSION:
            return None
        aead = self._by_id.get(sealed[1 : 1 + FINGERPRINT_BYTES])
        if aead is None:
            return None
        nonce = sealed[1 + FINGERPRINT_BYTES : 1 + FINGERPRINT_BYTES + NONCE_BYTES]
        try:
            compressed = aead.decrypt(
                nonce, sealed[1 + FINGERPRINT_BYTES + NONCE_BYTES :], entry_id.encode()
            )
        except InvalidTag:
            return None
        return self._codec.decompress(compressed)


__all__ = ["Sealer", "key_fingerprint"]
