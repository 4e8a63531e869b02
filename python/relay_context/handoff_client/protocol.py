"""What the sync and async clients share: settings from the environment, request building,
answers to errors, and the decryption decision (which scheme a payload and its key use)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from relay_context.errors import (
    AuthenticationError,
    DecryptionError,
    InvalidArgumentError,
    PayloadNotFoundError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RateLimitExceededError,
    RelayError,
)
from relay_context.handoff_client import crypto

DEFAULT_URL = "http://127.0.0.1:8080"


def default_base_url() -> str:
    return (
        os.environ.get("RELAY_URL") or os.environ.get("CONTEXTRELAY_URL") or DEFAULT_URL
    ).rstrip("/")


def default_api_key() -> str | None:
    return os.environ.get("RELAY_API_KEY") or os.environ.get("CONTEXTRELAY_API_KEY") or None


def auth_headers(api_key: str | None) -> dict[str, str]:
    if not api_key:
        return {}
    if api_key.startswith("relay_"):
        return {"X-API-Key": api_key}
    return {"Authorization": f"Bearer {api_key}"}


def ws_url(base: str, channel: str, after: int | None) -> str:
    if base.startswith("https://"):
        url = "wss://" + base.removeprefix("https://")
    elif base.startswith("http://"):
        url = "ws://" + base.removeprefix("http://")
    else:
        url = base
    url = f"{url}/ws/{channel}"
    return url if after is None else f"{url}?after={after}"


def raise_for(status: int, body: bytes) -> None:
    """Relay's error shape (``{"error": {"type", "message"}}``) as a typed error."""
    if status < 400:
        return
    message = body[:500].decode("utf-8", "replace")
    kind = ""
    try:
        error = json.loads(body)["error"]
        message, kind = str(error["message"]), str(error["type"])
    except (ValueError, KeyError, TypeError):
        pass
    if status == 404:
        raise PayloadNotFoundError(message)
    if status == 413:
        raise PayloadTooLargeError(message, limit=0)
    if status == 401:
        raise AuthenticationError(message)
    if status == 403:
        raise PermissionDeniedError(message)
    if status == 429:
        raise RateLimitExceededError(message, limit=0, retry_after=1.0, reset_at=0.0)
    if status in (400, 422):
        raise InvalidArgumentError(message)
    raise RelayError(f"HTTP {status} {kind}: {message}")


@dataclass(frozen=True)
class PreparedPush:
    """A push as it goes on the wire: the bytes (maybe ciphertext), query, headers, and the
    fragment to add to the returned URL."""

    body: bytes
    params: dict[str, str]
    headers: dict[str, str]
    fragment_key: str | None
    #: The id the client proposes (AES-GCM binds it into the ciphertext), or ``None``.
    payload_id: str | None = None


def prepare_push(
    data: str | bytes,
    *,
    channel: str | None,
    encrypted: bool | str,
    metadata: dict[str, Any] | None,
    ttl: int | None,
    encrypt_metadata: bool,
    content_type: str | None,
) -> PreparedPush:
    if not isinstance(data, str | bytes):
        raise InvalidArgumentError(f"data must be str or bytes, got {type(data).__name__}")
    if metadata is not None and not isinstance(metadata, dict):
        raise InvalidArgumentError("metadata must be a dict")
    is_text = isinstance(data, str)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    params: dict[str, str] = {}
    if channel is not None:
        params["channel"] = channel
    if ttl is not None:
        params["ttl"] = str(ttl)
    fragment: str | None = None
    if encrypted == "fernet":
        # ContextRelay's scheme, for its SDK to pull (always text, as it expects).
        fragment = crypto.fernet_key()
        raw = crypto.fernet_encrypt(fragment, raw).encode("ascii")
        kind = "text/plain; charset=utf-8"
        params["encrypted"] = "true"
    elif encrypted:
        key = crypto.generate_key()
        fragment = crypto.key_to_text(key)
        payload_id = crypto.new_payload_id()
        raw = crypto.encrypt(key, raw, payload_id=payload_id)
        kind = crypto.ENCRYPTED_TEXT if is_text else crypto.ENCRYPTED_BYTES
        params["encrypted"] = "true"
        if encrypt_metadata and metadata:
            metadata = crypto.encrypt_metadata(key, metadata)
    else:
        kind = content_type or (
            "text/plain; charset=utf-8" if is_text else "application/octet-stream"
        )
    headers = {"Content-Type": kind}
    if metadata:
        headers["X-Relay-Metadata"] = json.dumps(metadata, separators=(",", ":"))
    proposed = None
    if encrypted and encrypted != "fernet":
        proposed = payload_id
        headers[PAYLOAD_ID_HEADER] = payload_id
    return PreparedPush(raw, params, headers, fragment, proposed)


#: The header a client proposes its payload's id in (``POST /api/v1/handoff``).
PAYLOAD_ID_HEADER = "X-Relay-Payload-Id"


def check_stored_under(answer: dict[str, Any], payload_id: str | None) -> None:
    """An AES-GCM payload is bound to the id it was encrypted for: the server must have stored
    it under that id (a server that ignores the proposal would hand out an unopenable URL)."""
    if payload_id is not None and answer.get("id") != payload_id:
        raise RelayError(
            f"the server stored the encrypted payload as {answer.get('id')!r}, not under the "
            f"proposed id {payload_id!r} it is bound to (a Relay server too old for it?)"
        )


def open_payload(
    body: bytes, content_type: str, key: str | None, encrypted: bool, payload_id: str
) -> str | bytes:
    """The payload ``payload_id`` as pushed: decrypted with ``key`` when it is encrypted; text
    as ``str``."""
    kind = content_type.lower()
    if crypto.is_relay_ciphertext(body) and kind.startswith("application/vnd.relay.e2e"):
        if not key:
            raise DecryptionError("the payload is end-to-end encrypted; the URL has no #key=")
        plain = crypto.decrypt(crypto.key_from_text(key), body, payload_id)
        return plain.decode("utf-8") if "kind=text" in kind else plain
    if key and crypto.looks_like_fernet(body):
        return crypto.fernet_decrypt(key, body).decode("utf-8")
    if key:
        raise DecryptionError("the URL has a #key= but the payload is not encrypted")
    if encrypted:
        raise DecryptionError("the payload is end-to-end encrypted; the URL has no #key=")
    if kind.startswith("text/") or kind.startswith("application/json"):
        return body.decode("utf-8")
    return body


def metadata_key(key: str | None) -> bytes | None:
    if not key:
        return None
    try:
        return crypto.key_from_text(key)
    except DecryptionError:
        return None  # a Fernet key: ContextRelay never encrypts metadata


@dataclass(frozen=True)
class ChannelMessage:
    """One channel event as a subscriber sees it."""

    channel: str
    seq: int
    ts: int
    #: The pointer of a pushed payload (``None`` for a signal).
    url: str | None
    id: str | None
    message: Any

    @classmethod
    def from_frame(cls, frame: dict[str, Any]) -> ChannelMessage:
        return cls(
            channel=str(frame.get("channel", "")),
            seq=int(frame["seq"]),
            ts=int(frame.get("ts", 0)),
            url=frame.get("url"),
            id=frame.get("id"),
            message=frame.get("message"),
        )


def parse_frame(text: str | bytes) -> ChannelMessage | None:
    """An event frame, or ``None`` for a heartbeat or anything else."""
    try:
        frame = json.loads(text)
    except ValueError:
        return None
    if not isinstance(frame, dict) or "seq" not in frame or frame.get("type") == "heartbeat":
        return None
    return ChannelMessage.from_frame(frame)


__all__ = [
    "ChannelMessage",
    "PreparedPush",
    "auth_headers",
    "default_api_key",
    "default_base_url",
    "open_payload",
    "parse_frame",
    "prepare_push",
    "raise_for",
    "ws_url",
]
