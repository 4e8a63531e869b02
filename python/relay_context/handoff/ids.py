"""Payload ids and channel names: what a pointer URL and a channel path may hold.

A payload id is 24 random bytes (192 bits) from the OS, URL-safe base64 without padding: a
pointer is a capability, the only way to its payload, so it must not be guessable.
"""

from __future__ import annotations

import re
import secrets

from relay_context.errors import InvalidArgumentError, InvalidChannelError

PAYLOAD_ID_BYTES = 24
_PAYLOAD_ID = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
#: What a client may propose: exactly the shape of a new id (a client that encrypts binds the
#: id into its ciphertext, so it must know the id before it sends the bytes).
_PROPOSED_ID = re.compile(r"^[A-Za-z0-9_-]{32}$")
_CHANNEL = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def new_payload_id() -> str:
    return secrets.token_urlsafe(PAYLOAD_ID_BYTES)


def is_payload_id(value: str) -> bool:
    """Whether ``value`` could be an id (a malformed one is answered as a missing one)."""
    return bool(_PAYLOAD_ID.match(value))


def validate_proposed_id(value: object) -> str:
    if not isinstance(value, str) or not _PROPOSED_ID.match(value):
        raise InvalidArgumentError(
            "a proposed payload id must be 32 characters of URL-safe base64 (24 random bytes)"
        )
    return value


def validate_channel(name: object) -> str:
    if not isinstance(name, str) or not _CHANNEL.match(name):
        raise InvalidChannelError(
            f"channel name {name!r} must be 1-128 characters of [A-Za-z0-9._:-]"
        )
    return name


def validate_ttl(ttl_seconds: int | None, *, default: int, maximum: int) -> int:
    """``ttl_seconds`` (``default`` if ``None``), cut to ``maximum``: a push may ask for long,
    the operator decides how long is kept (the answer's ``expires_at`` says what applies)."""
    if ttl_seconds is None:
        return default
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int):
        raise InvalidArgumentError(f"ttl must be an integer of seconds, got {ttl_seconds!r}")
    if ttl_seconds < 1:
        raise InvalidArgumentError(f"ttl must be at least 1 second, got {ttl_seconds}")
    return min(ttl_seconds, maximum)


__all__ = [
    "PAYLOAD_ID_BYTES",
    "is_payload_id",
    "new_payload_id",
    "validate_channel",
    "validate_proposed_id",
    "validate_ttl",
]
