"""The server back-end: PostgreSQL through an ``asyncpg`` connection pool.

Tables live in ``schema`` (``Settings.database_schema``, created if missing; the pool's
``search_path`` points at it). Migrations run at :meth:`PostgresDatabase.open` under a
transaction-scoped advisory lock, so several processes starting at once apply each migration
exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg

from relay_context.errors import BackendUnavailableError, InputTypeError, InvalidArgumentError
from relay_context.persistence.clock import Clock, system_clock
from relay_context.persistence.database import Database
from relay_context.persistence.transaction import Row, Transaction

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

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return list(await self._connection.fetch(sql, *args))

    async def execute(self, sql: str, *args: Any) -> None:
        await self._connection.execute(sql, *args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._connection.executemany(sql, rows)


class PostgresDatabase(Database):
    """The PostgreSQL database at ``dsn`` (``postgresql://user@host:port/db``), in ``schema``."""

    dialect = "postgresql"
    blob_type = "BYTEA"

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "public",
        pool_size: int = 20,
        timeout_seconds: float = 30.0,
        clock: Clock = system_clock,
    ) -> None:
        super().__init__(clock=clock)
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
        return f"PostgresDatabase({host!r}, schema={self.schema!r})"

    @property
    def is_open(self) -> bool:
        return self._pool is not None

    async def _connect(self) -> None:
        try:
            self._pool = await asyncpg.create_pool(
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

    async def _connect_rest(self) -> None:
        pass  # the pool serves reads and writes alike

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

    def write(self) -> contextlib.AbstractAsyncContextManager[Transaction]:
        return self._connection(transaction=True)

    def read(self) -> contextlib.AbstractAsyncContextManager[Transaction]:
        # Autocommit: each read is one statement, which sees one snapshot by itself.
        return self._connection(transaction=False)

    def autocommit(self) -> contextlib.AbstractAsyncContextManager[Transaction]:
        """A connection whose every statement is its own transaction: for a write done in one
        statement (one round trip instead of BEGIN, statement, COMMIT)."""
        return self._connection(transaction=False)

    async def lock(self, tx: Transaction, name: str) -> None:
        """Take the advisory lock ``name`` (of this schema) until ``tx`` commits."""
        await tx.execute(
            "SELECT pg_advisory_xact_lock($1)", zlib.crc32(f"{name}:{self.schema}".encode())
        )

    @contextlib.asynccontextmanager
    async def _migrating(self) -> AsyncIterator[Transaction]:
        async with self.write() as tx:
            # Serialise migrators of this schema across processes until commit.
            await self.lock(tx, "relay-migrations")
            await tx.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            yield tx

    def _migration_transaction(self) -> contextlib.AbstractAsyncContextManager[Transaction]:
        return self._migrating()

    async def _has_table(self, tx: Transaction, name: str) -> bool:
        rows = await tx.fetch("SELECT to_regclass($1) IS NOT NULL", f'"{self.schema}".{name}')
        return bool(rows[0][0])


__all__ = ["PostgresDatabase", "asyncpg_dsn", "validate_schema_name"]
