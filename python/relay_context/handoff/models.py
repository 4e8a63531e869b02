"""What the handoff relay hands back: a stored payload's facts, a channel event, the stats."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from relay_context.persistence.clock import utc_from_micros


@dataclass(frozen=True)
class PayloadInfo:
    """One pushed payload (not its bytes). Several payloads may share one stored blob."""

    id: str
    #: SHA-256 (hex) of the bytes as pushed: plaintext, or ciphertext when ``encrypted``.
    sha256: str
    size: int
    content_type: str
    #: The client says the bytes are end-to-end encrypted (the server cannot tell or open them).
    encrypted: bool
    channel: str | None
    metadata: dict[str, Any]
    owner: str | None
    created_at_us: int
    expires_at_us: int
    #: Whether this push stored new bytes (False: the same bytes were already stored).
    stored_new_blob: bool = True

    @property
    def created_at(self) -> datetime:
        return utc_from_micros(self.created_at_us)

    @property
    def expires_at(self) -> datetime:
        return utc_from_micros(self.expires_at_us)

    @property
    def is_text(self) -> bool:
        kind = self.content_type.split(";", 1)[0].strip().lower()
        return kind.startswith("text/") or kind in ("application/json", "application/x-ndjson")

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "sha256": self.sha256,
            "size": self.size,
            "content_type": self.content_type,
            "encrypted": self.encrypted,
            "channel": self.channel,
            "metadata": self.metadata,
            "created_at": self.created_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
        }


@dataclass(frozen=True)
class ChannelEvent:
    """One event of a channel: a pushed payload's pointer or a published signal.

    ``seq`` numbers a channel's events 1, 2, 3, ... across every replica; a subscriber that
    reconnects with ``after=<seq>`` gets the retained events after it."""

    channel: str
    seq: int
    #: Milliseconds since the Unix epoch.
    ts: int
    #: The payload's id for a push (the URL is built by whoever serves the event).
    payload_id: str | None = None
    #: A published signal's message.
    message: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: Serialised frames of this event by base URL: one object reaches every local subscriber,
    #: so the frame is written once per event, not once per subscriber.
    frames: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def to_json(self) -> str:
        return json.dumps(
            {
                "channel": self.channel,
                "seq": self.seq,
                "ts": self.ts,
                "payload_id": self.payload_id,
                "message": self.message,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> ChannelEvent:
        raw = json.loads(text)
        return cls(
            channel=str(raw["channel"]),
            seq=int(raw["seq"]),
            ts=int(raw["ts"]),
            payload_id=raw.get("payload_id"),
            message=raw.get("message"),
        )


@dataclass(frozen=True)
class HandoffStats:
    payloads: int
    #: Bytes of every live payload as pushed (a payload pushed twice counts twice).
    payload_bytes: int
    blobs: int
    #: Bytes of the distinct payloads, uncompressed, and as stored (compressed).
    blob_bytes: int
    stored_bytes: int
    channels: int
    subscribers: int

    @property
    def dedup_saved_bytes(self) -> int:
        return max(0, self.payload_bytes - self.blob_bytes)

    @property
    def compression_saved_bytes(self) -> int:
        return max(0, self.blob_bytes - self.stored_bytes)

    def to_json(self) -> dict[str, int]:
        return {
            "payloads": self.payloads,
            "payload_bytes": self.payload_bytes,
            "blobs": self.blobs,
            "blob_bytes": self.blob_bytes,
            "stored_bytes": self.stored_bytes,
            "dedup_saved_bytes": self.dedup_saved_bytes,
            "compression_saved_bytes": self.compression_saved_bytes,
            "channels": self.channels,
            "subscribers": self.subscribers,
        }


__all__ = ["ChannelEvent", "HandoffStats", "PayloadInfo"]
