"""The SQL both back-ends share: schema migrations and every store operation.

Statements use PostgreSQL's ``$1, $2, ...`` placeholders; the SQLite back-end rewrites them to
SQLite's numbered ``?1, ?2, ...`` (same meaning), so one text serves both. Times are integers
(microseconds since the epoch, taken from the store's clock) so that both databases compare
them the same way and tests can drive expiry with a fake clock.

Ordering of appends: ``UPDATE relay_sessions SET last_seq = last_seq + n ... RETURNING last_seq``
takes the session row's write lock (PostgreSQL row lock; SQLite runs the transaction under
``BEGIN IMMEDIATE``, the database write lock), so concurrent appends to one session are
serialised and get consecutive, gap-free ``seq`` numbers in commit order. Concurrent appends of
a process are group-committed (``SqlSessionStore.appender``, see ``_commit_appends``): one
transaction, one flush to disk, for all of them, each caller answered after the commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import json
import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

from relay_context.checks import check_int, validate_name
from relay_context.core.rows import MessageRowDecoder
from relay_context.engine.cache import ContextCache
from relay_context.engine.codec import RAW, CodecSet, ContentCodec
from relay_context.engine.models import (
    MessageRole,
    NewMessage,
    Session,
    StoredMessage,
    stored_message,
    stored_tool_call,
    validate_metadata,
    validate_session_id,
    validate_token_counts,
    validate_ttl,
)
from relay_context.engine.store.base import SessionStore
from relay_context.errors import (
    IdempotencyKeyReusedError,
    InputTypeError,
    InvalidArgumentError,
    SessionExistsError,
    SessionLimitExceededError,
    SessionNotFoundError,
    StoreError,
)
from relay_context.persistence import Database, Migration, Row, Transaction
from relay_context.persistence.clock import micros_from_utc, utc_from_micros
from relay_context.persistence.group_commit import GroupCommitter

log = logging.getLogger(__name__)

#: The session store's tables (component ``sessions`` of the database's migration registry).
SESSION_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "sessions",
        1,
        "sessions and messages",
        (
            """
            CREATE TABLE relay_sessions (
                id TEXT PRIMARY KEY,
                owner TEXT NOT NULL,
                created_at_us BIGINT NOT NULL,
                updated_at_us BIGINT NOT NULL,
                ttl_seconds BIGINT NOT NULL,
                expires_at_us BIGINT NOT NULL,
                last_seq BIGINT NOT NULL DEFAULT 0,
                revision BIGINT NOT NULL DEFAULT 0,
                incarnation TEXT NOT NULL,
                metadata TEXT NOT NULL
            )""",
            "CREATE INDEX relay_sessions_owner ON relay_sessions (owner, updated_at_us)",
            "CREATE INDEX relay_sessions_expiry ON relay_sessions (expires_at_us)",
            """
            CREATE TABLE relay_messages (
                session_id TEXT NOT NULL REFERENCES relay_sessions (id) ON DELETE CASCADE,
                seq BIGINT NOT NULL,
                role TEXT NOT NULL,
                name TEXT,
                tool_call_id TEXT,
                tool_calls TEXT,
                metadata TEXT NOT NULL,
                token_counts TEXT NOT NULL,
                codec TEXT NOT NULL,
                content_size BIGINT NOT NULL,
                content {blob} NOT NULL,
                created_at_us BIGINT NOT NULL,
                PRIMARY KEY (session_id, seq)
            )""",
        ),
    ),
    Migration(
        "sessions",
        2,
        "idempotency keys of appends",
        (
            # A client's retry of an append (same key) gets the message stored the first time;
            # the key row is written in the append's own transaction.
            """
            CREATE TABLE relay_request_keys (
                session_id TEXT NOT NULL REFERENCES relay_sessions (id) ON DELETE CASCADE,
                request_key TEXT NOT NULL,
                seq BIGINT NOT NULL,
                fingerprint TEXT NOT NULL,
                created_at_us BIGINT NOT NULL,
                PRIMARY KEY (session_id, request_key)
            )""",
        ),
    ),
    Migration(
        "sessions",
        3,
        "near-duplicate signatures of messages",
        (
            # The content's MinHash-LSH band keys (engine.dedup.signature), made at append so
            # that a session's first window does not sign every text again. NULL in rows
            # stored before (and in messages nothing collapses: tool calls and results, system
            # turns): the engine signs those when it reads them and writes the signatures back.
            "ALTER TABLE relay_messages ADD COLUMN dedup_signature {blob}",
        ),
    ),
)
#: The schema version of the session store's tables that this Relay knows.
LATEST_VERSION = SESSION_MIGRATIONS[-1].version
MIGRATIONS = SESSION_MIGRATIONS

_SESSION_COLUMNS = (
    "id, owner, created_at_us, updated_at_us, ttl_seconds, expires_at_us, last_seq, revision,"
    " incarnation, metadata"
)
_ROLE_BY_VALUE = {role.value: role for role in MessageRole}
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)  # utc_from_micros(m) == _EPOCH + m us


def _message_of_row(row: Row, text: str) -> StoredMessage:
    """The message of one stored row whose content is ``text`` (columns as
    ``_MESSAGE_COLUMNS``); the rows it was validated with when written are not checked again."""
    calls = row[5]
    metadata = row[6]
    signature = row[12]
    return stored_message(
        row[0],
        int(row[1]),
        _ROLE_BY_VALUE[row[2]],
        text,
        _EPOCH + timedelta(0, 0, int(row[11])),  # positional: no keyword parsing
        row[3],
        row[4],
        () if calls is None else tuple(stored_tool_call(c) for c in json.loads(calls)),
        {} if metadata == "{}" else json.loads(metadata),
        json.loads(row[7]),
        None if signature is None else bytes(signature),
    )


_MESSAGE_COLUMNS = (
    "session_id, seq, role, name, tool_call_id, tool_calls, metadata, token_counts, codec,"
    " content_size, content, created_at_us, dedup_signature"
)
#: Content at least this large is compressed in a worker thread.
_THREAD_CODEC_BYTES = 256 * 1024
#: Larger than any seq; stands for "no upper bound".
_MAX_SEQ = 2**62

#: A message as inserted, after session id and seq: role, name, tool_call_id, tool_calls,
#: metadata, token_counts, codec, content_size, content, created_at_us, dedup_signature.
MessageRow = tuple[
    str, str | None, str | None, str | None, str, str, str, int, bytes, int, bytes | None
]


class Appended(NamedTuple):
    """Where an append landed: its first seq, and the session's version once it is in."""

    first_seq: int
    incarnation: str
    #: The session's revision right after this append (each append adds one).
    revision: int


@dataclass(frozen=True, eq=False)
class _AppendItem:
    """One caller's append, waiting for the group commit."""

    session_id: str
    rows: Sequence[MessageRow]
    #: Append only if the session is this principal's (``None``: whoever owns it).
    owner: str | None = None


class BatchPlan(NamedTuple):
    """What a group commit writes: per session ``[rows, appends, owner]`` (``owner``: the
    owner the session must have, or ``None``), and which items take part (an item refused by
    its owner check does not: its result is ``None``)."""

    per_session: dict[str, list[Any]]
    kept: list[bool]


def sessions_with_mixed_owners(items: Sequence[_AppendItem]) -> list[str]:
    """Sessions whose appends in a batch ask for different owners (rare: a principal and an
    administrator appending at once); their owner is read before the batch is planned."""
    asked: dict[str, set[str | None]] = {}
    for item in items:
        asked.setdefault(item.session_id, set()).add(item.owner)
    return sorted(sid for sid, owners in asked.items() if len(owners) > 1)


def plan_batch(items: Sequence[_AppendItem], owner_of: Mapping[str, str | None]) -> BatchPlan:
    """The sessions and rows of a batch. ``owner_of``: the owners read of the sessions in
    :func:`sessions_with_mixed_owners` (``None``: not live); their appends are checked here,
    every other session's in the ``UPDATE`` that reserves its seqs."""
    per_session: dict[str, list[Any]] = {}
    kept: list[bool] = []
    for item in items:
        sid = item.session_id
        if sid in owner_of:
            seen = owner_of[sid]
            ok = seen is not None and (item.owner is None or item.owner == seen)
            kept.append(ok)
            if not ok:
                continue
            required = seen
        else:
            kept.append(True)
            required = item.owner
        count = per_session.setdefault(sid, [0, 0, required])
        count[0] += len(item.rows)
        count[1] += 1
    return BatchPlan(per_session, kept)


class _KeyTakenError(Exception):
    """Inside an append's transaction: another append already holds its idempotency key."""


#: What an idempotency key may be: printable ASCII, as HTTP header values are.
REQUEST_KEY_MAX_LENGTH = 255


def validate_request_key(key: object) -> str:
    """An idempotency key: 1-255 printable ASCII characters."""
    if not isinstance(key, str):
        raise InputTypeError(f"idempotency key must be a str, got {type(key).__name__}")
    if not 0 < len(key) <= REQUEST_KEY_MAX_LENGTH or not all(" " < c <= "~" for c in key):
        raise InvalidArgumentError(
            f"idempotency key must be 1-{REQUEST_KEY_MAX_LENGTH} printable ASCII characters"
            " without spaces"
        )
    return key


#: Sessions whose seqs one ``UPDATE`` of a group commit reserves (4 parameters each: far
#: below SQLite's 32,766 parameters per statement).
_SESSIONS_PER_UPDATE = 1000


@functools.lru_cache(maxsize=64)
def _bump_sessions_sql(sessions: int) -> str:
    """An ``UPDATE`` that reserves ``n`` seqs and ``k`` revisions for each of ``sessions`` live
    sessions, parameters ``$1`` (now), then ``(id, n, k, owner)`` per session (``owner``: the
    owner it must have, or NULL); returns, per session bumped, ``id, last_seq, revision,
    incarnation`` (after the bump). A session another principal owns is left as it is, exactly
    as a missing one: its appends' ownership needs no read of its own."""
    values = ", ".join(
        f"(${4 * i + 2}, ${4 * i + 3}, ${4 * i + 4}, ${4 * i + 5})" for i in range(sessions)
    )
    return (
        "UPDATE relay_sessions SET last_seq = last_seq + c.n, revision = revision + c.k,"
        " updated_at_us = $1, expires_at_us = $1 + ttl_seconds * 1000000"
        " FROM (SELECT column1 AS sid, column2 AS n, column3 AS k, column4 AS o"
        f" FROM (VALUES {values})) AS c"
        " WHERE relay_sessions.id = c.sid AND relay_sessions.expires_at_us > $1"
        " AND (c.o IS NULL OR relay_sessions.owner = c.o)"
        " RETURNING id, last_seq, revision, incarnation"
    )


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class SqlSessionStore(SessionStore):
    """Every operation of :class:`SessionStore` in shared SQL, on a
    :class:`~relay_context.persistence.Database` (which gives transactions, clock, migrations)."""

    def __init__(
        self,
        database: Database,
        *,
        codec: ContentCodec | None = None,
        codec_tag: str | None = None,
        read_codecs: Mapping[str, ContentCodec] | None = None,
        cache: ContextCache | None = None,
        default_ttl_seconds: int = 3600,
        max_message_bytes: int = 1_000_000,
        owns_database: bool = True,
        batch_max_rows: int = 512,
        batch_wait_seconds: float = 0.0,
    ) -> None:
        self.database = database
        self.codecs = CodecSet(codec, codec_tag, readers=read_codecs)
        # The messages of rows: the common form (and raw or write-codec contents) in C++, any
        # other row by _message_of_row.
        self._rows = MessageRowDecoder(
            StoredMessage,
            roles=_ROLE_BY_VALUE,
            tz=timezone.utc,
            fallback=self._message_of_row,
            raw_tag=RAW,
            codec_tag=self.codecs.write_tag,
            codec=self.codecs.writer,
        )
        self.cache = cache
        self.default_ttl_seconds = validate_ttl(default_ttl_seconds)
        self.max_message_bytes = check_int(max_message_bytes, "max_message_bytes", minimum=1)
        #: Whether :meth:`close` closes ``database`` (other components may share it).
        self.owns_database = owns_database
        # Group commit of appends (see _commit_appends): concurrent appends, to any sessions,
        # share one write transaction and one flush to disk.
        self.appender: GroupCommitter[_AppendItem, Appended | None] = GroupCommitter(
            self._commit_appends,
            max_weight=check_int(batch_max_rows, "batch_max_rows", minimum=1),
            wait_seconds=batch_wait_seconds,
            name="relay-append-commit",
        )
        database.register("sessions", SESSION_MIGRATIONS)

    def _clock(self) -> int:
        return self.database.clock()

    def _write(self) -> contextlib.AbstractAsyncContextManager[Transaction]:
        """A transaction that holds the write lock needed for ordered appends."""
        return self.database.write()

    def _read(self) -> contextlib.AbstractAsyncContextManager[Transaction]:
        """A connection for reads in autocommit mode: each statement sees one snapshot, so every
        read operation is written as a single statement (plus a check when it found nothing)."""
        return self.database.read()

    # --- life cycle -------------------------------------------------------------------------
    async def open(self) -> None:
        await self.database.open()
        self.appender.open()

    async def close(self) -> None:
        await self.appender.close()  # what is queued still commits
        if self.owns_database:
            await self.database.close()

    async def ping(self) -> None:
        await self.database.ping()

    async def schema_version(self) -> int:
        """The applied version of the session tables' schema."""
        return await self.database.schema_version("sessions")

    # --- row conversion -------------------------------------------------------------------------
    @staticmethod
    def _session(row: Row) -> Session:
        return Session._from_storage(
            id=row[0],
            owner=row[1],
            created_at=utc_from_micros(int(row[2])),
            updated_at=utc_from_micros(int(row[3])),
            ttl_seconds=int(row[4]),
            expires_at=utc_from_micros(int(row[5])),
            last_seq=int(row[6]),
            revision=int(row[7]),
            incarnation=row[8],
            metadata=json.loads(row[9]),
        )

    def _messages(self, rows: Sequence[Row]) -> list[StoredMessage]:
        """The messages of ``rows`` in one C++ pass (``core.rows.MessageRowDecoder``: a
        session's first window decodes all of its rows), which restores raw and write-codec
        contents itself, all frames at once, and makes the rows of the common form (no tool
        calls, empty metadata); any other row, or one that is not as stored, is made by
        :meth:`_message_of_row`, the reference both paths follow."""
        return self._rows.decode(rows)

    def _message_of_row(self, row: Row, text: str | None) -> StoredMessage:
        """The message of one row; ``text`` is its content when already restored."""
        return _message_of_row(row, self._text(row) if text is None else text)

    def _text(self, row: Row) -> str:
        """The content of one row; :class:`StoreError` (or the codec's error) naming it."""
        content = self.codecs.decode(row[8], bytes(row[10]), int(row[9]))
        try:
            return content.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StoreError(
                f"message {row[0]}#{row[1]} is not UTF-8 after decoding: {exc}"
            ) from None

    async def _invalidate(self, *session_ids: str) -> None:
        """Drop cached windows after a committed write. A failure only costs memory: cache
        entries are versioned by ``Session.cache_version``, so a stale one is never served."""
        if self.cache is None:
            return
        for session_id in session_ids:
            try:
                await self.cache.invalidate(session_id)
            except Exception:
                log.warning("could not invalidate cached windows of %s", session_id, exc_info=True)

    # --- sessions -------------------------------------------------------------------------------
    async def _insert_session(
        self,
        tx: Transaction,
        session_id: str,
        owner: str,
        ttl_seconds: int,
        metadata: dict[str, Any],
        now: int,
        max_owned: int | None = None,
    ) -> tuple[Session | None, bool]:
        """Insert unless a live session exists; ``(new session or None, purged an expired one)``.

        With ``max_owned``, the INSERT itself also counts the owner's live sessions and inserts
        nothing when there are already ``max_owned``: the quota check and the creation are one
        statement, run while the caller holds the owner's lock (:meth:`_lock_owner`)."""
        purged = await tx.fetch(
            "DELETE FROM relay_sessions WHERE id = $1 AND expires_at_us <= $2 RETURNING id",
            session_id,
            now,
        )
        args: list[Any] = [
            session_id,
            owner,
            now,
            ttl_seconds,
            now + ttl_seconds * 1_000_000,
            secrets.token_hex(8),
            _json(metadata),
        ]
        if max_owned is None:
            source = " VALUES ($1, $2, $3, $3, $4, $5, 0, 0, $6, $7)"
        else:
            # INSERT ... SELECT ... WHERE: one row or none, decided in the same statement.
            source = (
                " SELECT CAST($1 AS TEXT), CAST($2 AS TEXT), CAST($3 AS BIGINT), $3,"
                " CAST($4 AS BIGINT), CAST($5 AS BIGINT), 0, 0, CAST($6 AS TEXT),"
                " CAST($7 AS TEXT) WHERE (SELECT COUNT(*) FROM relay_sessions"
                " WHERE owner = $2 AND expires_at_us > $3) < CAST($8 AS BIGINT)"
            )
            args.append(max_owned)
        rows = await tx.fetch(
            f"INSERT INTO relay_sessions ({_SESSION_COLUMNS}){source}"
            f" ON CONFLICT (id) DO NOTHING RETURNING {_SESSION_COLUMNS}",
            *args,
        )
        return (self._session(rows[0]) if rows else None), bool(purged)

    async def _lock_owner(self, tx: Transaction, owner: str) -> None:
        """Serialise, until ``tx`` commits, the session creations of ``owner`` that check a
        quota. The default does nothing: it suits back-ends whose write transaction already
        holds a database-wide write lock (SQLite's ``BEGIN IMMEDIATE``)."""
        del tx, owner

    def _session_args(
        self,
        session_id: str,
        owner: str,
        ttl_seconds: int | None,
        metadata: Mapping[str, Any] | None,
    ) -> tuple[str, str, int, dict[str, Any]]:
        return (
            validate_session_id(session_id),
            validate_name("owner", owner),
            self.default_ttl_seconds if ttl_seconds is None else validate_ttl(ttl_seconds),
            validate_metadata("session metadata", metadata or {}),
        )

    async def create_session(
        self,
        session_id: str,
        owner: str,
        *,
        ttl_seconds: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> Session:
        sid, owner, ttl, meta = self._session_args(session_id, owner, ttl_seconds, metadata)
        async with self._write() as tx:
            session, purged = await self._insert_session(tx, sid, owner, ttl, meta, self._clock())
        if purged:
            await self._invalidate(sid)
        if session is None:
            raise SessionExistsError(f"session {sid!r} already exists")
        return session

    async def ensure_session(
        self,
        session_id: str,
        owner: str,
        *,
        ttl_seconds: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        max_owned: int | None = None,
    ) -> Session:
        sid, owner, ttl, meta = self._session_args(session_id, owner, ttl_seconds, metadata)
        if max_owned is not None:
            max_owned = check_int(max_owned, "max_owned", minimum=1)
        existing = await self.get_session(sid)
        if existing is not None:
            return existing
        owned = 0
        async with self._write() as tx:
            if max_owned is not None:
                await self._lock_owner(tx, owner)
            now = self._clock()
            session, purged = await self._insert_session(tx, sid, owner, ttl, meta, now, max_owned)
            if session is None:  # another writer created it in between, or the quota is full
                rows = await tx.fetch(
                    f"SELECT {_SESSION_COLUMNS} FROM relay_sessions"
                    " WHERE id = $1 AND expires_at_us > $2",
                    sid,
                    now,
                )
                if rows:
                    session = self._session(rows[0])
                else:
                    counted = await tx.fetch(
                        "SELECT COUNT(*) FROM relay_sessions WHERE owner = $1"
                        " AND expires_at_us > $2",
                        owner,
                        now,
                    )
                    owned = int(counted[0][0])
        if purged:
            await self._invalidate(sid)
        if session is None:
            raise SessionLimitExceededError(
                f"principal {owner!r} already owns {owned} live sessions (limit {max_owned})"
            )
        return session

    async def get_session(self, session_id: str) -> Session | None:
        sid = validate_session_id(session_id)
        async with self._read() as tx:
            rows = await tx.fetch(
                f"SELECT {_SESSION_COLUMNS} FROM relay_sessions"
                " WHERE id = $1 AND expires_at_us > $2",
                sid,
                self._clock(),
            )
        return self._session(rows[0]) if rows else None

    async def touch_session(self, session_id: str) -> Session:
        sid = validate_session_id(session_id)
        async with self._write() as tx:
            now = self._clock()
            rows = await tx.fetch(
                "UPDATE relay_sessions SET updated_at_us = $2,"
                " expires_at_us = $2 + ttl_seconds * 1000000"
                f" WHERE id = $1 AND expires_at_us > $2 RETURNING {_SESSION_COLUMNS}",
                sid,
                now,
            )
        if not rows:
            raise SessionNotFoundError(f"no live session {sid!r}")
        return self._session(rows[0])

    async def delete_session(self, session_id: str) -> bool:
        sid = validate_session_id(session_id)
        async with self._write() as tx:
            rows = await tx.fetch(
                "DELETE FROM relay_sessions WHERE id = $1 RETURNING expires_at_us", sid
            )
            now = self._clock()
        if rows:
            await self._invalidate(sid)
        return any(int(r[0]) > now for r in rows)

    async def list_sessions(
        self, owner: str, *, limit: int = 100, offset: int = 0
    ) -> list[Session]:
        validate_name("owner", owner)
        check_int(limit, "limit", minimum=1)
        check_int(offset, "offset", minimum=0)
        async with self._read() as tx:
            rows = await tx.fetch(
                f"SELECT {_SESSION_COLUMNS} FROM relay_sessions"
                " WHERE owner = $1 AND expires_at_us > $2"
                " ORDER BY updated_at_us DESC, id LIMIT $3 OFFSET $4",
                owner,
                self._clock(),
                limit,
                offset,
            )
        return [self._session(r) for r in rows]

    async def count_live_sessions(self) -> int:
        """Sessions not yet expired, of every owner."""
        async with self._read() as tx:
            rows = await tx.fetch(
                "SELECT COUNT(*) FROM relay_sessions WHERE expires_at_us > $1", self._clock()
            )
        return int(rows[0][0])

    async def expire_sessions(self, *, limit: int = 1000) -> int:
        check_int(limit, "limit", minimum=1)
        async with self._write() as tx:
            now = self._clock()
            # The outer expiry test matters on PostgreSQL: a session touched while this waited
            # for its row lock is re-checked against its new expiry and kept.
            rows = await tx.fetch(
                "DELETE FROM relay_sessions WHERE expires_at_us <= $1 AND id IN"
                " (SELECT id FROM relay_sessions WHERE expires_at_us <= $1"
                " ORDER BY expires_at_us LIMIT $2) RETURNING id",
                now,
                limit,
            )
        expired = [str(r[0]) for r in rows]
        await self._invalidate(*expired)
        if expired:
            log.info("expired %d sessions", len(expired))
        return len(expired)

    # --- messages -------------------------------------------------------------------------------
    async def append_many(
        self, session_id: str, messages: Sequence[NewMessage]
    ) -> list[StoredMessage]:
        stored, _ = await self._append_many(session_id, messages)
        return stored

    async def append_with_version(
        self, session_id: str, message: NewMessage, *, owner: str | None = None
    ) -> tuple[StoredMessage, tuple[str, int] | None]:
        if owner is not None:
            validate_name("owner", owner)
        stored, appended = await self._append_many(session_id, [message], owner=owner)
        assert appended is not None
        return stored[0], (appended.incarnation, appended.revision)

    async def _append_many(
        self, session_id: str, messages: Sequence[NewMessage], *, owner: str | None = None
    ) -> tuple[list[StoredMessage], Appended | None]:
        sid = validate_session_id(session_id)
        if isinstance(messages, NewMessage) or not isinstance(messages, Sequence):
            raise InputTypeError(
                f"messages must be a sequence of NewMessage, got {type(messages).__name__}"
            )
        if not messages:
            return [], None
        now = self._clock()
        rows: list[MessageRow] = []
        for message in messages:
            if not isinstance(message, NewMessage):
                raise InputTypeError(f"expected a NewMessage, got {type(message).__name__}")
            row, _ = await self._message_row(message, now)
            rows.append(row)
        appended = await self._insert_messages(sid, rows, now, owner)
        if appended is None:
            raise SessionNotFoundError(f"no live session {sid!r}")
        stored = [
            self._stored(sid, appended.first_seq + offset, message, row)
            for offset, (message, row) in enumerate(zip(messages, rows, strict=True))
        ]
        return stored, appended

    async def _message_row(
        self, message: NewMessage, now: int | None = None
    ) -> tuple[MessageRow, int]:
        """The row of ``message`` (content encoded) and the time it is stamped with."""
        if now is None:
            now = self._clock()
        message.check_size(self.max_message_bytes)
        raw = message.content.encode("utf-8")
        # Before the transaction, to keep locks short; large content in a worker thread so
        # the event loop keeps serving (the C++ codec releases the GIL).
        if len(raw) >= _THREAD_CODEC_BYTES:
            tag, blob = await asyncio.to_thread(self.codecs.encode, raw)
        else:
            tag, blob = self.codecs.encode(raw)
        created = now if message.created_at is None else micros_from_utc(message.created_at)
        tool_calls = (
            _json([c.to_openai() for c in message.tool_calls]) if message.tool_calls else None
        )
        row: MessageRow = (
            message.role.value,
            message.name,
            message.tool_call_id,
            tool_calls,
            _json(dict(message.metadata)),
            _json(dict(message.token_counts)),
            tag,
            len(raw),
            blob,
            created,
            message.dedup_signature,
        )
        return row, now

    @staticmethod
    def _stored(sid: str, seq: int, message: NewMessage, row: MessageRow) -> StoredMessage:
        return StoredMessage._from_storage(
            session_id=sid,
            seq=seq,
            role=message.role,
            content=message.content,
            created_at=utc_from_micros(row[9]),
            name=message.name,
            tool_call_id=message.tool_call_id,
            tool_calls=message.tool_calls,
            metadata=message.metadata,
            token_counts=message.token_counts,
            dedup_signature=message.dedup_signature,
        )

    async def append_once(
        self, session_id: str, message: NewMessage, *, request_key: str, fingerprint: str
    ) -> tuple[StoredMessage, bool]:
        """Append ``message`` unless an append with ``request_key`` was already stored in this
        session: then that message, unchanged. ``(message, replayed)``. ``fingerprint`` (a hash
        of the request) must match the first one, else :class:`IdempotencyKeyReusedError`."""
        sid = validate_session_id(session_id)
        key = validate_request_key(request_key)
        found = await self._keyed_message(sid, key, fingerprint)
        if found is not None:
            return found, True
        try:
            stored = await self._append_keyed(sid, message, key, fingerprint)
        except _KeyTakenError:  # a concurrent retry with the same key committed first
            found = await self._keyed_message(sid, key, fingerprint)
            if found is None:  # its session was deleted in between
                raise SessionNotFoundError(f"no live session {sid!r}") from None
            return found, True
        return stored, False

    async def _keyed_message(self, sid: str, key: str, fingerprint: str) -> StoredMessage | None:
        async with self._read() as tx:
            rows = await tx.fetch(
                "SELECT k.seq, k.fingerprint FROM relay_request_keys k JOIN relay_sessions s"
                " ON s.id = k.session_id WHERE k.session_id = $1 AND k.request_key = $2"
                " AND s.expires_at_us > $3",
                sid,
                key,
                self._clock(),
            )
        if not rows:
            return None
        seq, first = int(rows[0][0]), str(rows[0][1])
        if not hmac.compare_digest(first, fingerprint):
            raise IdempotencyKeyReusedError(
                f"Idempotency-Key {key!r} was first used with a different message in session "
                f"{sid!r}; send a new key for a new message"
            )
        stored = await self.list_messages(sid, start_seq=seq, end_seq=seq)
        if not stored:  # the message was deleted since (delete_messages): its key stays spent
            raise IdempotencyKeyReusedError(
                f"Idempotency-Key {key!r} belongs to message {seq} of {sid!r}, since deleted"
            )
        return stored[0]

    async def _append_keyed(
        self, sid: str, message: NewMessage, key: str, fingerprint: str
    ) -> StoredMessage:
        row, now = await self._message_row(message)
        async with self._write() as tx:
            first_seq = await self._insert_rows(tx, sid, [row], now)
            if first_seq is None:
                raise SessionNotFoundError(f"no live session {sid!r}")
            taken = await tx.fetch(
                "INSERT INTO relay_request_keys (session_id, request_key, seq, fingerprint,"
                " created_at_us) VALUES ($1, $2, $3, $4, $5)"
                " ON CONFLICT (session_id, request_key) DO NOTHING RETURNING seq",
                sid,
                key,
                first_seq,
                fingerprint,
                now,
            )
            if not taken:
                raise _KeyTakenError  # rolls the whole append back
        await self._invalidate(sid)
        return self._stored(sid, first_seq, message, row)

    async def _insert_messages(
        self, session_id: str, rows: Sequence[MessageRow], now: int, owner: str | None = None
    ) -> Appended | None:
        """Give ``rows`` the next seqs of the live session and insert them, committed (in a
        group commit with other appends); ``None`` if the session is not live (or, with
        ``owner``, not owned by it)."""
        del now  # the batch takes the time once, when it commits
        item = _AppendItem(session_id, rows, owner)
        return await self.appender.submit(item, weight=len(rows))

    async def _commit_appends(self, items: Sequence[_AppendItem]) -> list[Appended | None]:
        """One write transaction for a batch of appends, in the order they were submitted.

        One ``UPDATE`` (per up to ``_SESSIONS_PER_UPDATE`` sessions) reserves the seqs of all
        appends in the batch, per session as many as its appends have rows (the write lock,
        held until commit, orders the appends exactly as one by one would); one statement
        instead of one per session, since each statement is a round trip to the database's
        thread. Then one ``executemany`` inserts every row. The result of an append to a
        session that is not live is ``None`` (its caller raises ``SessionNotFoundError``); the
        others still commit. Any failure rolls the whole batch back."""
        results: list[Appended | None] = [None] * len(items)
        async with self._write() as tx:
            now = self._clock()
            owner_of: dict[str, str | None] = {}
            for sid in sessions_with_mixed_owners(items):
                rows = await tx.fetch(
                    "SELECT owner FROM relay_sessions WHERE id = $1 AND expires_at_us > $2",
                    sid,
                    now,
                )
                owner_of[sid] = str(rows[0][0]) if rows else None
            per_session, kept = plan_batch(items, owner_of)
            # id -> [next seq, next revision, incarnation]
            reserved: dict[str, list[Any]] = {}
            sids = sorted(per_session)
            for start in range(0, len(sids), _SESSIONS_PER_UPDATE):
                chunk = sids[start : start + _SESSIONS_PER_UPDATE]
                args: list[Any] = [now]
                for sid in chunk:
                    args += [sid, *per_session[sid]]
                for row in await tx.fetch(_bump_sessions_sql(len(chunk)), *args):
                    sid, last_seq, revision, incarnation = row
                    n_rows, n_appends, _ = per_session[sid]
                    reserved[sid] = [
                        int(last_seq) - n_rows + 1,
                        int(revision) - n_appends + 1,
                        str(incarnation),
                    ]
            inserts: list[tuple[Any, ...]] = []
            for index, item in enumerate(items):
                slot = reserved.get(item.session_id)
                if slot is None or not kept[index]:
                    continue
                first_seq, revision, incarnation = slot
                inserts.extend(
                    (item.session_id, first_seq + k, *row) for k, row in enumerate(item.rows)
                )
                results[index] = Appended(first_seq, incarnation, revision)
                slot[0] += len(item.rows)
                slot[1] += 1
            if inserts:
                await tx.executemany(
                    f"INSERT INTO relay_messages ({_MESSAGE_COLUMNS})"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                    inserts,
                )
        # Committed. Windows are dropped once per session of the batch, before anyone is
        # answered (as a single append would before returning).
        await asyncio.gather(*(self._invalidate(sid) for sid in reserved))
        return results

    async def _insert_rows(
        self, tx: Transaction, session_id: str, rows: Sequence[MessageRow], now: int
    ) -> int | None:
        # Takes the session row's write lock until commit: appends are serialised here.
        bumped = await tx.fetch(
            "UPDATE relay_sessions SET last_seq = last_seq + $2, revision = revision + 1,"
            " updated_at_us = $3, expires_at_us = $3 + ttl_seconds * 1000000"
            " WHERE id = $1 AND expires_at_us > $3 RETURNING last_seq",
            session_id,
            len(rows),
            now,
        )
        if not bumped:
            return None
        first_seq = int(bumped[0][0]) - len(rows) + 1
        await tx.executemany(
            f"INSERT INTO relay_messages ({_MESSAGE_COLUMNS})"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            [(session_id, first_seq + k, *row) for k, row in enumerate(rows)],
        )
        return first_seq

    async def _require_live(self, tx: Transaction, sid: str) -> None:
        rows = await tx.fetch(
            "SELECT 1 FROM relay_sessions WHERE id = $1 AND expires_at_us > $2", sid, self._clock()
        )
        if not rows:
            raise SessionNotFoundError(f"no live session {sid!r}")

    async def list_messages(
        self,
        session_id: str,
        *,
        start_seq: int = 1,
        end_seq: int | None = None,
        limit: int | None = None,
        newest: bool = False,
    ) -> list[StoredMessage]:
        sid = validate_session_id(session_id)
        check_int(start_seq, "start_seq", minimum=0)
        if end_seq is not None:
            check_int(end_seq, "end_seq", minimum=0)
        if limit is not None:
            check_int(limit, "limit", minimum=0)
        # One statement (one snapshot, one round trip): the messages, if the session is live.
        order = "DESC" if newest else "ASC"
        sql = (
            f"SELECT {_MESSAGE_COLUMNS} FROM relay_messages"
            " WHERE session_id = $1 AND seq >= $2 AND seq <= $3 AND EXISTS (SELECT 1 FROM"
            " relay_sessions WHERE id = $1 AND expires_at_us > $4)"
            f" ORDER BY seq {order}"
        )
        end = _MAX_SEQ if end_seq is None else end_seq
        args: list[Any] = [sid, start_seq, end, self._clock()]
        if limit is not None:
            sql += " LIMIT $5"
            args.append(limit)
        async with self._read() as tx:
            rows = await tx.fetch(sql, *args) if limit != 0 else []
            if not rows:  # no messages in range, or no live session?
                await self._require_live(tx, sid)
        if newest:
            rows.reverse()
        return self._messages(rows)

    async def delete_messages(self, session_id: str, *, before_seq: int) -> int:
        sid = validate_session_id(session_id)
        check_int(before_seq, "before_seq", minimum=1)
        async with self._write() as tx:
            now = self._clock()
            # Locks the session row first, as appends do, and versions the change for caches.
            rows = await tx.fetch(
                "UPDATE relay_sessions SET revision = revision + 1, updated_at_us = $2,"
                " expires_at_us = $2 + ttl_seconds * 1000000"
                " WHERE id = $1 AND expires_at_us > $2 RETURNING id",
                sid,
                now,
            )
            if not rows:
                raise SessionNotFoundError(f"no live session {sid!r}")
            deleted = await tx.fetch(
                "DELETE FROM relay_messages WHERE session_id = $1 AND seq < $2 RETURNING seq",
                sid,
                before_seq,
            )
        await self._invalidate(sid)
        return len(deleted)

    async def store_token_counts(
        self, session_id: str, counts: Mapping[int, Mapping[str, int]]
    ) -> int:
        sid = validate_session_id(session_id)
        rows = [
            (sid, check_int(seq, "seq", minimum=1), _json(validate_token_counts(per_encoding)))
            for seq, per_encoding in sorted(counts.items())
        ]
        if not rows:
            return 0
        # One transaction, but no session-row lock and no revision bump: appends never touch
        # existing rows, and counts do not change what a window holds. Two writers racing here
        # both write valid counts (the last one wins).
        return await self._update_messages("token_counts", rows)

    async def store_signatures(self, session_id: str, signatures: Mapping[int, bytes]) -> int:
        sid = validate_session_id(session_id)
        rows = []
        for seq, signature in sorted(signatures.items()):
            if type(signature) is not bytes:
                raise InputTypeError(f"a signature must be bytes, got {type(signature).__name__}")
            rows.append((sid, check_int(seq, "seq", minimum=1), signature))
        if not rows:
            return 0
        # As store_token_counts: no session lock, no revision bump (a signature is derived
        # from the content, which never changes; racing writers write the same bytes).
        return await self._update_messages("dedup_signature", rows)

    async def _update_messages(self, column: str, rows: list[tuple[str, int, Any]]) -> int:
        """``column`` of each ``(session_id, seq, value)`` row, in one transaction."""
        async with self._write() as tx:
            await tx.executemany(
                f"UPDATE relay_messages SET {column} = $3 WHERE session_id = $1 AND seq = $2",
                rows,
            )
        return len(rows)

    async def count_messages(self, session_id: str) -> int:
        sid = validate_session_id(session_id)
        async with self._read() as tx:
            rows = await tx.fetch(
                "SELECT (SELECT COUNT(*) FROM relay_messages WHERE session_id = $1)"
                " FROM relay_sessions WHERE id = $1 AND expires_at_us > $2",
                sid,
                self._clock(),
            )
        if not rows:
            raise SessionNotFoundError(f"no live session {sid!r}")
        return int(rows[0][0])


__all__ = [
    "LATEST_VERSION",
    "MIGRATIONS",
    "SESSION_MIGRATIONS",
    "MessageRow",
    "Row",
    "SqlSessionStore",
    "Transaction",
]
