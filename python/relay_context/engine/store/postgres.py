"""The server back-end: the session store on PostgreSQL
(:class:`~relay_context.persistence.postgres.PostgresDatabase`, an ``asyncpg`` pool).

Appends are one statement each (see ``_APPEND``), ordered by the row lock the ``UPDATE`` of the
session row takes (see ``sql.py``); quota-checked session creations of one owner are serialised
by an advisory lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from relay_context.engine.store.sql import Appended, SqlSessionStore, _AppendItem
from relay_context.errors import InvalidArgumentError
from relay_context.persistence.clock import Clock, system_clock
from relay_context.persistence.postgres import (
    PostgresDatabase,
    asyncpg_dsn,
    validate_schema_name,
)
from relay_context.persistence.transaction import Transaction

# An append alone in its batch, in one statement (one round trip, its own transaction): the
# UPDATE takes the session row's lock and hands the new last_seq to the INSERT, which numbers the
# unnested rows after it.
_APPEND = """
WITH bumped AS (
    UPDATE relay_sessions SET last_seq = last_seq + $2, revision = revision + 1,
        updated_at_us = $3, expires_at_us = $3 + ttl_seconds * 1000000
    WHERE id = $1 AND expires_at_us > $3
    RETURNING last_seq, revision, incarnation
)
INSERT INTO relay_messages (session_id, seq, role, name, tool_call_id, tool_calls, metadata,
                            token_counts, codec, content_size, content, created_at_us)
SELECT $1, bumped.last_seq - $2 + m.ord, m.role, m.name, m.tool_call_id, m.tool_calls,
       m.metadata, m.token_counts, m.codec, m.content_size, m.content, m.created_at_us
FROM bumped, unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                    $10::text[], $11::bigint[], $12::bytea[], $13::bigint[])
     WITH ORDINALITY AS m(role, name, tool_call_id, tool_calls, metadata, token_counts, codec,
                          content_size, content, created_at_us, ord)
RETURNING seq, (SELECT revision FROM bumped), (SELECT incarnation FROM bumped)
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
        if len(items) > 1:
            return await super()._commit_appends(items)
        # Light load: one statement instead of BEGIN, UPDATE, INSERT, COMMIT.
        (item,) = items
        rows = item.rows
        columns = [list(column) for column in zip(*rows, strict=True)]
        async with self.database.autocommit() as tx:
            inserted = await tx.fetch(_APPEND, item.session_id, len(rows), self._clock(), *columns)
        if not inserted:
            return [None]
        await self._invalidate(item.session_id)
        first = min(inserted, key=lambda r: int(r[0]))
        return [Appended(int(first[0]), str(first[2]), int(first[1]))]

    async def _lock_owner(self, tx: Transaction, owner: str) -> None:
        # READ COMMITTED lets two transactions count the owner's sessions before either has
        # inserted; this lock (released at commit) makes the second count see the first row.
        await self.database.lock(tx, f"relay-owner:{owner}")


__all__ = ["PostgresSessionStore", "asyncpg_dsn", "validate_schema_name"]
