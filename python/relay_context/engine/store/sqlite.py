"""The embedded back-end: the session store on one SQLite file
(:class:`~relay_context.persistence.sqlite.SqliteDatabase`, WAL mode).

Writes run under ``BEGIN IMMEDIATE`` (SQLite's database-wide write lock), so appends from any
number of processes are serialised and get consecutive seqs in commit order.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from relay_context.engine.store.sql import SqlSessionStore
from relay_context.errors import InvalidArgumentError
from relay_context.persistence.clock import Clock, system_clock
from relay_context.persistence.sqlite import SqliteDatabase, to_sqlite_placeholders


class SqliteSessionStore(SqlSessionStore):
    """Sessions in the SQLite file ``path`` (created with its folder if missing), or in
    ``database`` when one is given (shared with other components; then not closed here)."""

    database: SqliteDatabase

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        busy_timeout_seconds: float = 30.0,
        synchronous: Literal["NORMAL", "FULL"] = "FULL",
        clock: Clock = system_clock,
        database: SqliteDatabase | None = None,
        owns_database: bool | None = None,
        **options: Any,
    ) -> None:
        owns = database is None if owns_database is None else owns_database
        if database is None:
            if path is None:
                raise InvalidArgumentError("SqliteSessionStore needs a path or a database")
            database = SqliteDatabase(
                path,
                busy_timeout_seconds=busy_timeout_seconds,
                synchronous=synchronous,
                clock=clock,
            )
        super().__init__(database, owns_database=owns, **options)

    @property
    def path(self) -> Path:
        return self.database.path

    @property
    def busy_timeout_seconds(self) -> float:
        return self.database.busy_timeout_seconds

    def __repr__(self) -> str:
        return f"SqliteSessionStore({str(self.path)!r})"


__all__ = ["SqliteSessionStore", "to_sqlite_placeholders"]
