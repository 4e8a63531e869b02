"""The server back-end: PostgreSQL through an ``asyncpg`` connection pool.

Tables live in ``schema`` (``Settings.database_schema``, created if missing; the pool's
``search_path`` points at it). Migrations run at :meth:`PostgresSessionStore.open` under a
transaction-scoped advisory lock, so several processes starting at once apply each migration
exactly once. Appends are ordered by the row lock the ``UPDATE`` of the session row takes (see
``sql.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg

from relay_context.engine.store.sql import MessageRow, SqlSessionStore, Transaction
from relay_context.errors import BackendUnavailableError, InputTypeError, InvalidArgumentError

# Lower case only: the name is used quoted (CREATE SCHEMA) and unquoted (search_path, folded).
_SCHEMA_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_")
#: Errors that mean "the server is not there" rather than "the statement is wrong".
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.InterfaceError,
)


# An append in one statement (one round trip, its own transaction): the UPDATE takes the session
# row's lock and hands the new last_seq to the INSERT, which numbers the unnested rows after it.
_APPEND = """
WITH bumped AS (
    UPDATE relay_sessions SET last_seq = last_seq + $2, revision = revision + 1,
        updated_at_us = $3, expires_at_us = $3 + ttl_seconds * 1000000
    WHERE id = $1 AND expires_at_us > $3
    RETURNING last_seq
)
INSERT INTO relay_messages (session_id, seq, role, name, tool_call_id, tool_calls, metadata,
                            token_counts, codec, content_size, content, created_at_us)
SELECT $1, bumped.last_seq - $2 + m.ord, m.role, m.name, m.tool_call_id, m.tool_calls,
       m.metadata, m.token_counts, m.codec, m.content_size, m.content, m.created_at_us
FROM bumped, unnest($4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                    $10::text[], $11::bigint[], $12::bytea[], $13::bigint[])
     WITH ORDINALITY AS m(role, name, tool_call_id, tool_calls, metadata, token_counts, codec,
                          content_size, content, created_at_us, ord)
RETURNING seq
"""


def asyncpg_dsn(url: str) -> str:
    """``url`` as asyncpg accepts it: SQLAlchemy-style ``postgresql+asyncpg://`` is unwrapped."""
    scheme, sep, rest = url.partition("://")
    base = scheme.split("+", 1)[0]
    if not sep or base not in ("postgres", "postgresql"):
        raise InvalidArgumentError(
            f"not a PostgreSQL URL: {scheme + sep!r}... (expected postgresql://...)"
        )
    return f"postgresql://{rest}"


def validate_schema_name(schema: object) -> str:
    if not isinstance(schema, str):
        raise InputTypeError(f"schema must be a str, got {type(schema).__name__}")
    if (
        not schema
        or len(schema) > 63
        or schema[0].isdigit()
        or not set(schema) <= _SCHEMA_NAME_CHARS
    ):
        raise InvalidArgumentError(
            f"schema name {schema!r} must be 1-63 of [a-z0-9_], not starting with a digit"
        )
    return schema


class _RelayConnection(asyncpg.Connection):  # type: ignore[misc]
    """Skips the pool's reset query on release (``RESET ALL``, ``UNLISTEN *``, ...): the store
    sets no session state (its advisory locks are transaction-scoped, it never LISTENs or
    SETs), and the reset would cost a second round trip per operation. Open transactions are
    still rolled back by asyncpg before reuse."""

    def get_reset_query(self) -> str:
        return ""


class _PostgresTransaction:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    async def fetch(self, sql: str, *args: Any) -> list[Sequence[Any]]:
        return list(await self._connection.fetch(sql, *args))

    async def execute(self, sql: str, *args: Any) -> None:
        await self._connection.execute(sql, *args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._connection.executemany(sql, rows)


class PostgresSessionStore(SqlSessionStore):
    """Sessions in PostgreSQL at ``dsn`` (``postgresql://user@host:port/db``)."""

    blob_type = "BYTEA"

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "public",
        pool_size: int = 20,
        timeout_seconds: float = 30.0,
        **options: Any,
    ) -> None:
        super().__init__(**options)
        if not isinstance(dsn, str):
            raise InputTypeError(f"dsn must be a str, got {type(dsn).__name__}")
        self.dsn = asyncpg_dsn(dsn)
        self.schema = validate_schema_name(schema)
        if not isinstance(pool_size, int) or pool_size < 1:
            raise InvalidArgumentError(f"pool_size must be an int >= 1, got {pool_size!r}")
        if not timeout_seconds > 0:
            raise InvalidArgumentError(f"timeout_seconds must be > 0, got {timeout_seconds!r}")
        self.pool_size = pool_size
        self.timeout_seconds = float(timeout_seconds)
        self._pool: asyncpg.Pool | None = None

    def __repr__(self) -> str:
        host = self.dsn.partition("@")[2] or self.dsn.partition("://")[2]
        return f"PostgresSessionStore({host!r}, schema={self.schema!r})"

    async def open(self) -> None:
        if self._pool is not None:
            return
        try:
            pool = await asyncpg.create_pool(
                self.dsn,
                min_size=1,
                max_size=self.pool_size,
                timeout=self.timeout_seconds,
                command_timeout=self.timeout_seconds,
                server_settings={"search_path": self.schema, "application_name": "relay"},
                connection_class=_RelayConnection,
            )
        except _UNAVAILABLE as exc:
            raise BackendUnavailableError(f"cannot reach PostgreSQL for {self!r}: {exc}") from exc
        self._pool = pool
        try:
            async with self._write() as tx:
                # Serialise migrators of this schema across processes until commit.
                await tx.execute(
                    "SELECT pg_advisory_xact_lock($1)",
                    zlib.crc32(f"relay-migrations:{self.schema}".encode()),
                )
                await tx.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                await self._migrate(tx)
        except BaseException:
            self._pool = None
            await pool.close()
            raise

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    @contextlib.asynccontextmanager
    async def _connection(self, transaction: bool) -> AsyncIterator[Transaction]:
        pool = self._pool
        if pool is None:
            raise BackendUnavailableError(f"{self!r} is not open")
        try:
            async with pool.acquire(timeout=self.timeout_seconds) as connection:
                if transaction:
                    async with connection.transaction():
                        yield _PostgresTransaction(connection)
                else:
                    yield _PostgresTransaction(connection)
        except _UNAVAILABLE as exc:
            raise BackendUnavailableError(f"PostgreSQL unavailable for {self!r}: {exc}") from exc

    async def _insert_messages(
        self, session_id: str, rows: Sequence[MessageRow], now: int
    ) -> int | None:
        columns = [list(column) for column in zip(*rows, strict=True)]
        async with self._connection(transaction=False) as tx:
            inserted = await tx.fetch(_APPEND, session_id, len(rows), now, *columns)
        if not inserted:
            return None
        return min(int(r[0]) for r in inserted)

    def _write(self) -> contextlib.AbstractAsyncContextManager[Transaction]:
        return self._connection(transaction=True)

    async def _lock_owner(self, tx: Transaction, owner: str) -> None:
        # READ COMMITTED lets two transactions count the owner's sessions before either has
        # inserted; this lock (released at commit) makes the second count see the first row.
        await tx.execute(
            "SELECT pg_advisory_xact_lock($1)",
            zlib.crc32(f"relay-owner:{self.schema}:{owner}".encode()),
        )

    def _read(self) -> contextlib.AbstractAsyncContextManager[Transaction]:
        # Autocommit: each read is one statement, which sees one snapshot by itself.
        return self._connection(transaction=False)


__all__ = ["PostgresSessionStore", "asyncpg_dsn", "validate_schema_name"]
