"""End-to-end encryption of handoff payloads, on the client only: the server never sees a key.

Default scheme, AES-256-GCM in chunks (the STREAM construction), so a 25 MB payload encrypts
and decrypts in bounded memory and a reordered, dropped or truncated chunk fails::

    header  = b"RLY2" | chunk_size (u32 BE) | nonce_prefix (7 random bytes)
    chunk i = AES-GCM(key, nonce = nonce_prefix | i (u32 BE) | last (1 byte),
                      aad = header | payload_id (ASCII))

The payload id is bound as associated data, so a ciphertext copied under another id (by the
server or anyone holding the bytes) does not open there. The id must exist before the bytes
are encrypted: the client draws it (:func:`new_payload_id`, 192 random bits like the server's)
and proposes it with the push (``X-Relay-Payload-Id``); the server stores the payload under it
or refuses. Payloads stored by earlier clients (``b"RLY1"``, ``aad = header``) still open.

The key (32 random bytes, fresh per push) travels in the URL fragment, ``#key=<base64url>``,
which HTTP clients never send. Payloads of ContextRelay's SDK (Fernet tokens, ``#key=<Fernet
key>``) are read too, and :func:`fernet_encrypt` writes them for that SDK to read.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import struct
from collections.abc import Iterable, Iterator
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from relay_context.errors import DecryptionError

MAGIC = b"RLY2"
#: The first format: the same chunks, but the AAD is the header alone (no payload id).
MAGIC_V1 = b"RLY1"
PAYLOAD_ID_BYTES = 24
_PAYLOAD_ID = re.compile(r"^[A-Za-z0-9_-]{32}$")
KEY_BYTES = 32
TAG_BYTES = 16
NONCE_PREFIX_BYTES = 7
HEADER_BYTES = len(MAGIC) + 4 + NONCE_PREFIX_BYTES
DEFAULT_CHUNK_BYTES = 64 * 1024
#: Content type of AES-GCM payloads; ``kind`` says what the plaintext was (text or bytes).
ENCRYPTED_TEXT = "application/vnd.relay.e2e; kind=text"
ENCRYPTED_BYTES = "application/vnd.relay.e2e; kind=bytes"


def generate_key() -> bytes:
    return os.urandom(KEY_BYTES)


def new_payload_id() -> str:
    """A payload id for the client to propose (24 random bytes, URL-safe base64: 32 chars)."""
    return secrets.token_urlsafe(PAYLOAD_ID_BYTES)


def _associated_data(header: bytes, payload_id: str | None) -> bytes:
    if header[: len(MAGIC)] == MAGIC_V1:
        return header
    if payload_id is None:
        raise DecryptionError("the payload is bound to its id: decrypting it needs the id")
    if not _PAYLOAD_ID.match(payload_id):
        raise DecryptionError(f"{payload_id!r} is not a payload id")
    return header + payload_id.encode("ascii")


def key_to_text(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).rstrip(b"=").decode("ascii")


def key_from_text(text: str) -> bytes:
    """A key from a URL fragment (43 characters, with or without padding)."""
    try:
        key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise DecryptionError("the #key= of the URL is not base64url") from None
    if len(key) != KEY_BYTES:
        raise DecryptionError(f"the #key= of the URL must hold {KEY_BYTES} bytes")
    return key


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + struct.pack(">IB", index, 1 if last else 0)


def encrypt_chunks(
    key: bytes,
    plaintext: Iterable[bytes],
    *,
    payload_id: str,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> Iterator[bytes]:
    """The ciphertext of ``plaintext`` (any split) for the payload ``payload_id``, yielded
    chunk by chunk."""
    aead = AESGCM(key)
    prefix = os.urandom(NONCE_PREFIX_BYTES)
    header = MAGIC + struct.pack(">I", chunk_bytes) + prefix
    aad = _associated_data(header, payload_id)
    yield header
    buffer = b""
    index = 0
    for piece in plaintext:
        buffer += piece
        # Hold the last full chunk back: only the end of input says which chunk is last.
        while len(buffer) > chunk_bytes:
            yield aead.encrypt(_nonce(prefix, index, False), buffer[:chunk_bytes], aad)
            buffer = buffer[chunk_bytes:]
            index += 1
    yield aead.encrypt(_nonce(prefix, index, True), buffer, aad)


def encrypt(
    key: bytes, plaintext: bytes, *, payload_id: str, chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> bytes:
    return b"".join(
        encrypt_chunks(key, [plaintext], payload_id=payload_id, chunk_bytes=chunk_bytes)
    )


class Decryptor:
    """Incremental decryption of the payload ``payload_id``: ``feed`` ciphertext (any split),
    then ``finish``."""

    def __init__(self, key: bytes, payload_id: str | None = None) -> None:
        self._aead = AESGCM(key)
        self._payload_id = payload_id
        self._header: bytes | None = None
        self._aad = b""
        self._prefix = b""
        self._sealed = 0
        self._buffer = b""
        self._index = 0

    def _open(self, sealed: bytes, last: bool) -> bytes:
        assert self._header is not None
        try:
            return self._aead.decrypt(_nonce(self._prefix, self._index, last), sealed, self._aad)
        except InvalidTag:
            raise DecryptionError(
                "cannot decrypt the payload: wrong key, or the ciphertext was altered"
            ) from None

    def feed(self, data: bytes) -> bytes:
        self._buffer += data
        if self._header is None:
            if len(self._buffer) < HEADER_BYTES:
                return b""
            header = self._buffer[:HEADER_BYTES]
            if not is_relay_ciphertext(header):
                raise DecryptionError("not a Relay end-to-end encrypted payload")
            self._aad = _associated_data(header, self._payload_id)
            (chunk_bytes,) = struct.unpack(">I", header[len(MAGIC) : len(MAGIC) + 4])
            self._header = header
            self._prefix = header[len(MAGIC) + 4 :]
            self._sealed = chunk_bytes + TAG_BYTES
            self._buffer = self._buffer[HEADER_BYTES:]
        out = []
        while len(self._buffer) > self._sealed:
            out.append(self._open(self._buffer[: self._sealed], False))
            self._buffer = self._buffer[self._sealed :]
            self._index += 1
        return b"".join(out)

    def finish(self) -> bytes:
        if self._header is None:
            raise DecryptionError("the encrypted payload is truncated")
        return self._open(self._buffer, True)


def decrypt(key: bytes, ciphertext: bytes, payload_id: str | None = None) -> bytes:
    """The plaintext of the payload ``payload_id`` (needed unless it is of the first format)."""
    decryptor = Decryptor(key, payload_id)
    return decryptor.feed(ciphertext) + decryptor.finish()


def is_relay_ciphertext(data: bytes) -> bool:
    return data[: len(MAGIC)] in (MAGIC, MAGIC_V1)


# --- ContextRelay's Fernet payloads ---------------------------------------------------------------
def fernet_key() -> str:
    return Fernet.generate_key().decode("ascii")


def fernet_encrypt(key: str, plaintext: bytes) -> str:
    return Fernet(key.encode("ascii")).encrypt(plaintext).decode("ascii")


def fernet_decrypt(key: str, token: bytes) -> bytes:
    try:
        return Fernet(key.encode("ascii")).decrypt(token.strip())
    except (InvalidToken, ValueError, TypeError, binascii.Error):
        raise DecryptionError("cannot decrypt the payload: wrong or missing key") from None


def looks_like_fernet(data: bytes) -> bool:
    """Fernet tokens are base64url of a version byte 0x80 (so they start with ``gAAAAA``)."""
    return data[:6] == b"gAAAAA"


# --- metadata -------------------------------------------------------------------------------------
METADATA_FIELD = "_relay_e2e"


def encrypt_metadata(key: bytes, metadata: dict[str, Any]) -> dict[str, Any]:
    """``{"_relay_e2e": "<base64url nonce+ciphertext>"}`` for metadata the server must not read."""
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, json.dumps(metadata).encode(), b"relay-metadata")
    return {METADATA_FIELD: base64.urlsafe_b64encode(nonce + sealed).decode("ascii")}


def decrypt_metadata(key: bytes | None, metadata: dict[str, Any]) -> dict[str, Any]:
    sealed = metadata.get(METADATA_FIELD)
    if not isinstance(sealed, str) or set(metadata) != {METADATA_FIELD}:
        return metadata
    if key is None:
        raise DecryptionError("the metadata is encrypted and the URL has no #key=")
    raw = base64.urlsafe_b64decode(sealed)
    try:
        opened = AESGCM(key).decrypt(raw[:12], raw[12:], b"relay-metadata")
    except InvalidTag:
        raise DecryptionError("cannot decrypt the metadata: wrong key") from None
    result: dict[str, Any] = json.loads(opened)
    return result


__all__ = [
    "ENCRYPTED_BYTES",
    "ENCRYPTED_TEXT",
    "Decryptor",
    "decrypt",
    "decrypt_metadata",
    "encrypt",
    "encrypt_chunks",
    "encrypt_metadata",
    "fernet_decrypt",
    "fernet_encrypt",
    "fernet_key",
    "generate_key",
    "is_relay_ciphertext",
    "key_from_text",
    "key_to_text",
    "looks_like_fernet",
    "new_payload_id",
]
