"""What :meth:`ContextEngine.stats <relay_context.engine.context_engine.ContextEngine.stats>`
reports about one session."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class SessionStats:
    """What :meth:`ContextEngine.stats` reports about one session."""

    session_id: str
    owner: str
    message_count: int
    last_seq: int
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    encoding: str
    #: Billed tokens of the whole session as one request (``count_messages``).
    total_tokens: int
    tokens_by_role: dict[str, int]
    messages_by_role: dict[str, int]
    #: UTF-8 bytes of the contents, and what the store's codec makes of them.
    content_bytes: int
    stored_bytes: int
    drift_score: float
    #: Messages that would collapse into a later near-identical one, and their tokens.
    near_duplicates: int
    near_duplicate_tokens: int
    cache: dict[str, float] = field(default_factory=dict)

    @property
    def compression_ratio(self) -> float:
        return self.content_bytes / self.stored_bytes if self.stored_bytes else 1.0

    @property
    def bytes_saved(self) -> int:
        return self.content_bytes - self.stored_bytes

    def as_dict(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "owner": self.owner,
            "message_count": self.message_count,
            "last_seq": self.last_seq,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "encoding": self.encoding,
            "total_tokens": self.total_tokens,
            "tokens_by_role": dict(self.tokens_by_role),
            "messages_by_role": dict(self.messages_by_role),
            "content_bytes": self.content_bytes,
            "stored_bytes": self.stored_bytes,
            "compression_ratio": self.compression_ratio,
            "bytes_saved": self.bytes_saved,
            "drift_score": self.drift_score,
            "near_duplicates": self.near_duplicates,
            "near_duplicate_tokens": self.near_duplicate_tokens,
            "cache": dict(self.cache),
        }


__all__ = ["SessionStats"]
