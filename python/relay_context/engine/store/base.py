"""``SessionStore``: the async interface every session back-end implements.

Guarantees every implementation gives (and ``tests/python/test_store_*.py`` checks on each):

- Messages of a session get ``seq`` 1, 2, 3, ... in the order their appends commit, with no gap
  and no duplicate, even when many processes append to one session at once.
- An append returns only after its transaction committed; a process killed at any moment loses
  no acknowledged message.
- A session expires ``ttl_seconds`` after its last write or touch. Expired sessions are invisible
  (``get_session`` returns ``None``, the other operations raise
  :class:`~relay_context.errors.SessionNotFoundError`) and :meth:`SessionStore.expire_sessions`
  deletes them with their messages.
- The store does not check who may read what: ``owner`` is recorded and filtered on, access
  control belongs to the service layer.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import Any

from relay_context.engine.models import NewMessage, Session, StoredMessage
from relay_context.errors import SessionNotFoundError
from relay_context.lifecycle import AsyncResource


class SessionStore(AsyncResource, abc.ABC):
    """Sessions and their messages, persisted. Use ``async with`` or ``open()``/``close()``."""

    #: Largest message content accepted, in UTF-8 bytes (``Settings.max_message_bytes``).
    max_message_bytes: int
    #: TTL of sessions created without one (``Settings.ttl_seconds``).
    default_ttl_seconds: int

    # --- life cycle -------------------------------------------------------------------------
    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and apply pending schema migrations. Idempotent."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release connections. Idempotent."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Round-trip to the database (health checks); :class:`BackendUnavailableError` if down."""

    # --- sessions ----------------------------------------------------------------------------
    @abc.abstractmethod
    async def create_session(
        self,
        session_id: str,
        owner: str,
        *,
        ttl_seconds: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Session:
        """A new, empty session. :class:`SessionExistsError` if a live one has this id (an
        expired one is purged and replaced)."""

    @abc.abstractmethod
    async def ensure_session(
        self,
        session_id: str,
        owner: str,
        *,
        ttl_seconds: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        max_owned: int | None = None,
    ) -> Session:
        """The live session with this id, created (with these values) if there is none.

        An existing session is returned as it is, whatever its owner: the caller compares
        ``session.owner`` with who is asking. With ``max_owned``, a new session is created only
        if ``owner`` has fewer than ``max_owned`` live sessions, checked atomically with the
        creation (concurrent callers, in any process, never exceed it);
        :class:`SessionLimitExceededError` otherwise."""

    @abc.abstractmethod
    async def get_session(self, session_id: str) -> Session | None:
        """The live session, or ``None`` if it does not exist or has expired."""

    @abc.abstractmethod
    async def touch_session(self, session_id: str) -> Session:
        """Restart the session's TTL from now; :class:`SessionNotFoundError` if not live."""

    @abc.abstractmethod
    async def delete_session(self, session_id: str) -> bool:
        """Delete the session and its messages; ``False`` if there was no live session."""

    @abc.abstractmethod
    async def list_sessions(
        self, owner: str, *, limit: int = 100, offset: int = 0
    ) -> list[Session]:
        """The owner's live sessions, most recently updated first."""

    @abc.abstractmethod
    async def count_live_sessions(self) -> int:
        """Sessions not yet expired, of every owner."""

    @abc.abstractmethod
    async def expire_sessions(self, *, limit: int = 1000) -> int:
        """Delete up to ``limit`` expired sessions with their messages; how many were deleted.

        Call it periodically (a sweep); expired sessions are invisible even before that."""

    # --- messages ----------------------------------------------------------------------------
    @abc.abstractmethod
    async def append_once(
        self, session_id: str, message: NewMessage, *, request_key: str, fingerprint: str
    ) -> tuple[StoredMessage, bool]:
        """:meth:`append`, idempotent by ``request_key``: a second append with the key returns
        the first one's message (``replayed`` True) if ``fingerprint`` matches, else raises
        :class:`~relay_context.errors.IdempotencyKeyReusedError`."""

    async def append(self, session_id: str, message: NewMessage) -> StoredMessage:
        """Append one message; returns it as stored, with its ``seq``. Restarts the TTL."""
        (stored,) = await self.append_many(session_id, [message])
        return stored

    async def append_with_version(
        self, session_id: str, message: NewMessage, *, owner: str | None = None
    ) -> tuple[StoredMessage, tuple[str, int] | None]:
        """:meth:`append`, and the session's ``(incarnation, revision)`` right after it (each
        append adds one to the revision), or ``None`` when the back-end cannot tell: lets a
        caller that follows the session know that nothing else changed it in between.

        ``owner``: append only to a session ``owner`` owns; another's session raises
        :class:`~relay_context.errors.SessionNotFoundError`, as a missing one. (The SQL stores
        check it in the append's own statement; this default reads the session first.)"""
        if owner is not None:
            session = await self.get_session(session_id)
            if session is None or session.owner != owner:
                raise SessionNotFoundError(f"no live session {session_id!r}")
        return await self.append(session_id, message), None

    @abc.abstractmethod
    async def append_many(
        self, session_id: str, messages: Sequence[NewMessage]
    ) -> list[StoredMessage]:
        """Append messages atomically (all or none) with consecutive ``seq`` numbers.

        :class:`MessageTooLargeError` if one is over ``max_message_bytes`` (nothing is written),
        :class:`SessionNotFoundError` if the session is not live."""

    @abc.abstractmethod
    async def list_messages(
        self,
        session_id: str,
        *,
        start_seq: int = 1,
        end_seq: int | None = None,
        limit: int | None = None,
        newest: bool = False,
    ) -> list[StoredMessage]:
        """Messages with ``start_seq <= seq <= end_seq``, in ``seq`` order.

        ``limit`` keeps the first ``limit`` of them, or the last ``limit`` when ``newest`` is
        true (the tail of a conversation); the result is ascending either way."""

    @abc.abstractmethod
    async def delete_messages(self, session_id: str, *, before_seq: int) -> int:
        """Delete the messages with ``seq < before_seq`` (e.g. after summarising them); how many
        were deleted. Later appends keep numbering after ``last_seq``: seqs are never reused."""

    async def store_token_counts(
        self, session_id: str, counts: Mapping[int, Mapping[str, int]]
    ) -> int:
        """Replace the ``token_counts`` of the messages with these seqs (counts the engine made
        for an encoding not counted at append). The content is unchanged, so the session's
        revision (the cache version) is too. Returns how many rows were updated; a back-end
        that cannot keep them returns 0 (the engine counts again next time)."""
        return 0

    async def store_signatures(self, session_id: str, signatures: Mapping[int, bytes]) -> int:
        """Set the near-duplicate signatures (``StoredMessage.dedup_signature``) of the messages
        with these seqs, made by the engine for rows stored without one. Derived from the
        content, so the revision stays. Returns how many rows were updated; a back-end that
        cannot keep them returns 0 (the engine signs again next time)."""
        return 0

    @abc.abstractmethod
    async def count_messages(self, session_id: str) -> int:
        """Number of messages in the live session (:class:`SessionNotFoundError` if none)."""


__all__ = ["SessionStore"]
