"""The embedded back-end: one SQLite file (WAL mode), through ``aiosqlite``.

Writes run under ``BEGIN IMMEDIATE`` (SQLite's database-wide write lock, taken at the start of
the transaction), so writers in any number of processes are serialised; a writer that finds the
lock held waits up to ``busy_timeout_seconds`` (SQLite's busy handler) and then raises
:class:`~relay_context.errors.BackendUnavailableError`. Readers use their own connection in
autocommit mode and, thanks to WAL, never wait for writers.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Literal

import aiosqlite

from relay_context.errors import BackendUnavailableError, InputTypeError, InvalidArgumentError
from relay_context.persistence.clock import Clock, system_clock
from relay_context.persistence.database import Database
from relay_context.persistence.transaction import Row, Transaction


@functools.lru_cache(maxsize=256)
def to_sqlite_placeholders(sql: str) -> str:
    """``$1`` (PostgreSQL) to ``?1`` (SQLite's numbered parameter, same meaning)."""
    return re.sub(r"\$(\d+)", r"?\1", sql)


class _SqliteTransaction:
    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection = connection

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        # One hop to the connection's thread (execute + fetch + close together).
        return list(await self._connection.execute_fetchall(to_sqlite_placeholders(sql), args))

    async def execute(self, sql: str, *args: Any) -> None:
        await self._connection.execute(to_sqlite_placeholders(sql), args)

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        await self._connection.executemany(to_sqlite_placeholders(sql), rows)


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class SqliteDatabase(Database):
    """The SQLite file ``path`` (created with its folder if missing)."""

    dialect = "sqlite"
    blob_type = "BLOB"

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout_seconds: float = 30.0,
        synchronous: Literal["NORMAL", "FULL"] = "FULL",
        clock: Clock = system_clock,
    ) -> None:
        super().__init__(clock=clock)
        if not isinstance(path, (str, Path)):
            raise InputTypeError(f"path must be a str or Path, got {type(path).__name__}")
        if synchronous not in ("NORMAL", "FULL"):
            raise InvalidArgumentError(f"synchronous must be NORMAL or FULL, got {synchronous!r}")
        if not busy_timeout_seconds > 0:
            raise InvalidArgumentError(
                f"busy_timeout_seconds must be > 0, got {busy_timeout_seconds!r}"
            )
        self.path = Path(path)
        self.busy_timeout_seconds = float(busy_timeout_seconds)
        self.synchronous = synchronous
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        # One transaction at a time per connection; SQLite itself orders the processes.
        self._write_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"SqliteDatabase({str(self.path)!r})"

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    async def _new_connection(self) -> aiosqlite.Connection:
        connection = await aiosqlite.connect(
            self.path, isolation_level=None, timeout=self.busy_timeout_seconds
        )
        try:
            await connection.execute(
                f"PRAGMA busy_timeout = {int(self.busy_timeout_seconds * 1000)}"
            )
            await connection.execute("PRAGMA foreign_keys = ON")
            await connection.execute(f"PRAGMA synchronous = {self.synchronous}")
        except BaseException:
            await connection.close()
            raise
        return connection

    async def _connect(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            writer = await self._new_connection()
        except (OSError, sqlite3.Error) as exc:
            raise BackendUnavailableError(
                f"cannot open SQLite database {self.path}: {exc}"
            ) from exc
        try:
            async with writer.execute("PRAGMA journal_mode = WAL") as cursor:
                row = await cursor.fetchone()
            if row is None or str(row[0]).lower() != "wal":
                raise BackendUnavailableError(
                    f"SQLite database {self.path} cannot use WAL mode (got {row!r})"
                )
        except BaseException:
            await writer.close()
            raise
        self._writer = writer

    async def _connect_rest(self) -> None:
        self._reader = await self._new_connection()

    async def close(self) -> None:
        writer, reader = self._writer, self._reader
        self._writer = self._reader = None
        for connection in (reader, writer):
            if connection is not None:
                await connection.close()

    @contextlib.asynccontextmanager
    async def _autocommit(self) -> AsyncIterator[Transaction]:
        if self._reader is None:
            raise BackendUnavailableError(f"{self!r} is not open")
        yield _SqliteTransaction(self._reader)

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Transaction]:
        connection = self._writer
        if connection is None:
            raise BackendUnavailableError(f"{self!r} is not open")
        async with self._write_lock:
            try:
                await connection.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if _is_busy(exc):
                    raise BackendUnavailableError(
                        f"SQLite database {self.path} stayed locked for "
                        f"{self.busy_timeout_seconds} s: {exc}"
                    ) from exc
                raise
            try:
                yield _SqliteTransaction(connection)
                await connection.execute("COMMIT")
            except BaseException:
                # The transaction may already be gone (a failed COMMIT rolls back by itself).
                with contextlib.suppress(sqlite3.Error):
                    await connection.execute("ROLLBACK")
                raise

    def write(self) -> contextlib.AbstractAsyncContextManager[Transaction]:
        return self._transaction()

    def read(self) -> contextlib.AbstractAsyncContextManager[Transaction]:
        return self._autocommit()

    def _migration_transaction(self) -> contextlib.AbstractAsyncContextManager[Transaction]:
        # BEGIN IMMEDIATE already excludes every other writer, migrators of other processes too.
        return self._transaction()

    async def _has_table(self, tx: Transaction, name: str) -> bool:
        rows = await tx.fetch(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = $1", name
        )
        return bool(rows)


__all__ = ["SqliteDatabase", "to_sqlite_placeholders"]
