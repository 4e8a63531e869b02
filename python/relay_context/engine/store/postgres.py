"""The server back-end: the session store on PostgreSQL
(:class:`~relay_context.persistence.postgres.PostgresDatabase`, an ``asyncpg`` pool).

A batch of appends (the group commit, see ``sql.py``) is one statement (see ``_APPEND_BATCH``),
ordered by the row locks of the sessions; quota-checked session creations of one owner are
serialised by an advisory lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from relay_context.engine.store.sql import (
    Appended,
    SqlSessionStore,
    _AppendItem,
    plan_batch,
    sessions_with_mixed_owners,
)
from relay_context.errors import InvalidArgumentError
from relay_context.persistence.clock import Clock, system_clock
from relay_context.persistence.postgres import (
    PostgresDatabase,
    asyncpg_dsn,
    validate_schema_name,
)
from relay_context.persistence.transaction import Transaction

# A whole batch of appends (any sessions) in one statement: one round trip, one commit.
# ``counts`` has one row per session (rows n, appends k). ``locked`` takes the session rows' locks
# in id order (LockRows above the Sort), so two processes' batches cannot deadlock; the UPDATE
# then reserves n seqs per session (and k revisions), exactly as one append after another would,
# and hands each session's base seq to the INSERT, which numbers the rows base + ord. A session
# whose owner is not ``o`` (when given) is neither locked nor bumped: as if it were not live.
_APPEND_BATCH = """
WITH counts AS (
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $17::text[]) AS c(id, n, k, o)
),
locked AS (
    SELECT s.id FROM relay_sessions s JOIN counts c ON c.id = s.id
    WHERE s.expires_at_us > $4 AND (c.o IS NULL OR s.owner = c.o)
    ORDER BY s.id FOR UPDATE OF s
),
bumped AS (
    UPDATE relay_sessions s SET last_seq = s.last_seq + c.n, revision = s.revision + c.k,
        updated_at_us = $4, expires_at_us = $4 + s.ttl_seconds * 1000000
    FROM counts c
    WHERE s.id = c.id AND s.id IN (SELECT id FROM locked) AND s.expires_at_us > $4
    RETURNING s.id, s.last_seq - c.n AS base_seq, s.revision - c.k AS base_revision,
              s.incarnation
),
inserted AS (
    INSERT INTO relay_messages (session_id, seq, role, name, tool_call_id, tool_calls, metadata,
                                token_counts, codec, content_size, content, created_at_us,
                                dedup_signature)
    SELECT m.sid, b.base_seq + m.ord, m.role, m.name, m.tool_call_id, m.tool_calls,
           m.metadata, m.token_counts, m.codec, m.content_size, m.content, m.created_at_us,
           m.dedup_signature
    FROM bumped b
    JOIN unnest($5::text[], $6::bigint[], $7::text[], $8::text[], $9::text[], $10::text[],
                $11::text[], $12::text[], $13::text[], $14::bigint[], $15::bytea[],
                $16::bigint[], $18::bytea[])
         AS m(sid, ord, role, name, tool_call_id, tool_calls, metadata, token_counts, codec,
              content_size, content, created_at_us, dedup_signature)
         ON m.sid = b.id
    RETURNING 1
)
SELECT b.id, b.base_seq, b.base_revision, b.incarnation, (SELECT COUNT(*) FROM inserted)
FROM bumped b
"""


class PostgresSessionStore(SqlSessionStore):
    """Sessions in PostgreSQL at ``dsn`` (``postgresql://user@host:port/db``), or in
    ``database`` when one is given (shared with other components; then not closed here)."""

    database: PostgresDatabase

    def __init__(
        self,
        dsn: str | None = None,
        *,
        schema: str = "public",
        pool_size: int = 20,
        timeout_seconds: float = 30.0,
        clock: Clock = system_clock,
        database: PostgresDatabase | None = None,
        owns_database: bool | None = None,
        **options: Any,
    ) -> None:
        owns = database is None if owns_database is None else owns_database
        if database is None:
            if dsn is None:
                raise InvalidArgumentError("PostgresSessionStore needs a dsn or a database")
            database = PostgresDatabase(
                dsn,
                schema=schema,
                pool_size=pool_size,
                timeout_seconds=timeout_seconds,
                clock=clock,
            )
        super().__init__(database, owns_database=owns, **options)

    @property
    def dsn(self) -> str:
        return self.database.dsn

    @property
    def schema(self) -> str:
        return self.database.schema

    @property
    def pool_size(self) -> int:
        return self.database.pool_size

    @property
    def timeout_seconds(self) -> float:
        return self.database.timeout_seconds

    def __repr__(self) -> str:
        host = self.dsn.partition("@")[2] or self.dsn.partition("://")[2]
        return f"PostgresSessionStore({host!r}, schema={self.schema!r})"

    async def _commit_appends(self, items: Sequence[_AppendItem]) -> list[Appended | None]:
        # Per session: rows and appends; per row: its session and its place among the
        # session's rows of this batch (1, 2, ...), so the statement can number it.
        owner_of: dict[str, str | None] = {}
        mixed = sessions_with_mixed_owners(items)
        if mixed:
            async with self.database.read() as tx:
                rows = await tx.fetch(
                    "SELECT id, owner FROM relay_sessions WHERE id = ANY($1::text[])"
                    " AND expires_at_us > $2",
                    mixed,
                    self._clock(),
                )
            found = {str(r[0]): str(r[1]) for r in rows}
            owner_of = {sid: found.get(sid) for sid in mixed}
        per_session, kept = plan_batch(items, owner_of)
        sids: list[str] = []
        ords: list[int] = []
        columns: list[list[Any]] = [[] for _ in range(11)]
        numbered: dict[str, int] = {}
        for item, keep in zip(items, kept, strict=True):
            if not keep:
                continue
            for row in item.rows:
                ordinal = numbered[item.session_id] = numbered.get(item.session_id, 0) + 1
                sids.append(item.session_id)
                ords.append(ordinal)
                for column, value in zip(columns, row, strict=True):
                    column.append(value)
        ids = list(per_session)
        async with self.database.autocommit() as tx:
            bumped = await tx.fetch(
                _APPEND_BATCH,
                ids,
                [per_session[sid][0] for sid in ids],
                [per_session[sid][1] for sid in ids],
                self._clock(),
                sids,
                ords,
                *columns[:10],
                [per_session[sid][2] for sid in ids],
                columns[10],  # $18: the signatures, after the owners ($17)
            )
        # id -> [next seq, next revision, incarnation]
        reserved: dict[str, list[Any]] = {
            str(r[0]): [int(r[1]) + 1, int(r[2]) + 1, str(r[3])] for r in bumped
        }
        results: list[Appended | None] = []
        for item, keep in zip(items, kept, strict=True):
            slot = reserved.get(item.session_id)
            if slot is None or not keep:  # not live, or not the owner's
                results.append(None)
                continue
            results.append(Appended(slot[0], slot[2], slot[1]))
            slot[0] += len(item.rows)
            slot[1] += 1
        await asyncio.gather(*(self._invalidate(sid) for sid in reserved))
        return results

    async def _lock_owner(self, tx: Transaction, owner: str) -> None:
        # READ COMMITTED lets two transactions count the owner's sessions before either has
        # inserted; this lock (released at commit) makes the second count see the first row.
        await self.database.lock(tx, f"relay-owner:{owner}")


__all__ = ["PostgresSessionStore", "asyncpg_dsn", "validate_schema_name"]
