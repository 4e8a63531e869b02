"""Choosing and opening a back-end: open_store, files, schemas, migrations, unavailability."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from engine_support import FakeClock, build_store, drop_pg_schema, unique_name
from relay_context.config.settings import Settings
from relay_context.engine.models import MessageRole, NewMessage
from relay_context.engine.store import (
    LATEST_VERSION,
    PostgresSessionStore,
    SqliteSessionStore,
    open_store,
    store_for,
)
from relay_context.engine.store.postgres import asyncpg_dsn
from relay_context.engine.store.sqlite import to_sqlite_placeholders
from relay_context.errors import BackendUnavailableError, InvalidArgumentError, StoreError


async def test_open_store_defaults_to_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "state", database_url=None, ttl_seconds=77)
    store = await open_store(settings)
    try:
        assert isinstance(store, SqliteSessionStore)
        assert store.path == tmp_path / "state" / "relay.db"
        assert store.default_ttl_seconds == 77
        assert store.max_message_bytes == settings.max_message_bytes
        session = await store.create_session("s", "alice")
        assert session.ttl_seconds == 77
    finally:
        await store.close()
    with sqlite3.connect(tmp_path / "state" / "relay.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("SELECT id FROM relay_sessions").fetchall() == [("s",)]


async def test_open_store_with_a_sqlite_url(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path}/elsewhere.db")
    store = store_for(settings)
    assert isinstance(store, SqliteSessionStore)
    assert store.path == tmp_path / "elsewhere.db"


@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "postgresql+asyncpg"])
async def test_open_store_picks_postgres(scheme: str, pg_dsn: str, pg_schema: str) -> None:
    url = pg_dsn.replace("postgresql", scheme, 1)
    settings = Settings(database_url=url, database_schema=pg_schema, database_pool_size=3)
    store = await open_store(settings)
    try:
        assert isinstance(store, PostgresSessionStore)
        assert (store.schema, store.pool_size) == (pg_schema, 3)
        await store.create_session("s", "alice")
        assert await store.schema_version() == LATEST_VERSION
    finally:
        await store.close()
    # The tables are in the test's schema, not in public.
    connection = await asyncpg.connect(pg_dsn)
    try:
        rows = await connection.fetch(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'relay_sessions'"
            " AND table_schema = $1",
            pg_schema,
        )
    finally:
        await connection.close()
    assert len(rows) == 1


def test_unsupported_database_urls_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match=r"mysql://\.\.\. is not supported"):
        store_for(Settings(database_url="mysql://db/relay"))
    with pytest.raises(InvalidArgumentError, match="not a PostgreSQL URL"):
        asyncpg_dsn("mysql://db")
    for schema in ('x"; DROP TABLE', "Relay", "1st", ""):
        with pytest.raises(InvalidArgumentError, match="schema name"):
            PostgresSessionStore("postgresql://x@y/z", schema=schema)
    assert asyncpg_dsn("postgresql+asyncpg://u:p@h:5/d") == "postgresql://u:p@h:5/d"


def test_placeholders_are_rewritten_for_sqlite() -> None:
    assert to_sqlite_placeholders("a = $1 AND b = $12 OR c = $1") == "a = ?1 AND b = ?12 OR c = ?1"


async def test_unreachable_postgres_is_a_typed_error() -> None:
    store = PostgresSessionStore("postgresql://postgres@127.0.0.1:1/test", timeout_seconds=5)
    with pytest.raises(BackendUnavailableError, match="cannot reach PostgreSQL"):
        await store.open()


async def test_a_store_that_is_not_open_says_so(store_config: dict[str, Any]) -> None:
    store = build_store(store_config)
    with pytest.raises(BackendUnavailableError, match="is not open"):
        await store.get_session("s")


async def test_sqlite_lock_held_past_the_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "relay.db"
    async with SqliteSessionStore(path, busy_timeout_seconds=0.2) as store:
        await store.create_session("s", "alice")
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holding the write lock
        try:
            with pytest.raises(BackendUnavailableError, match="stayed locked"):
                await store.append("s", NewMessage(MessageRole.USER, "x"))
            # Readers are not blocked by a writer (WAL).
            assert await store.count_messages("s") == 0
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert (await store.append("s", NewMessage(MessageRole.USER, "x"))).seq == 1


async def test_migrations_apply_once_and_reopen_keeps_data(
    store_config: dict[str, Any],
) -> None:
    clock = FakeClock()
    async with build_store(store_config, clock=clock) as store:
        await store.create_session("s", "alice")
        assert await store.schema_version() == LATEST_VERSION
    async with build_store(store_config, clock=clock) as store:
        assert await store.get_session("s") is not None
        async with store._read() as tx:
            rows = await tx.fetch(
                "SELECT component, version, name FROM relay_migrations ORDER BY component, version"
            )
        # The session store registers only its own tables; API keys register theirs (their
        # own test opens an ApiKeyStore on the same database).
        assert [tuple(r) for r in rows] == [
            ("sessions", 1, "sessions and messages"),
            ("sessions", 2, "idempotency keys of appends"),
            ("sessions", 3, "near-duplicate signatures of messages"),
        ]


async def test_a_newer_schema_is_refused(store_config: dict[str, Any]) -> None:
    async with build_store(store_config) as store, store._write() as tx:
        await tx.execute(
            "INSERT INTO relay_migrations (component, version, name, applied_at_us)"
            " VALUES ('sessions', 999, 'from the future', 0)"
        )
    with pytest.raises(StoreError, match="version 999, newer than this Relay knows"):
        await build_store(store_config).open()


async def test_concurrent_first_opens_migrate_once(pg_dsn: str) -> None:
    """Several stores opening one fresh schema at once (as several processes starting up)."""
    schema = unique_name("relay_test")
    config = {"backend": "postgres", "dsn": pg_dsn, "schema": schema}
    stores = [build_store(config, pool_size=1) for _ in range(4)]
    try:
        await asyncio.gather(*(s.open() for s in stores))
        assert {await s.schema_version() for s in stores} == {LATEST_VERSION}
    finally:
        for s in stores:
            await s.close()
        await asyncio.to_thread(drop_pg_schema, pg_dsn, schema)
