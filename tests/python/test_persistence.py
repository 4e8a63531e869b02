"""The shared persistence layer: one database, components registering their own migrations,
databases made before the registry carried over, on both back-ends."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from relay_context.config.settings import Settings
from relay_context.engine.store import SqliteSessionStore, store_for
from relay_context.errors import InvalidArgumentError, StoreError
from relay_context.persistence import Database, Migration, database_for
from relay_context.persistence.postgres import PostgresDatabase
from relay_context.persistence.sqlite import SqliteDatabase
from relay_context.security.api_keys import ApiKeyStore
from relay_context.security.auth import UserRole

WIDGETS = (
    Migration("widgets", 1, "widgets", ("CREATE TABLE widgets (id TEXT PRIMARY KEY)",)),
    Migration("widgets", 2, "widget sizes", ("ALTER TABLE widgets ADD COLUMN size BIGINT",)),
)


@pytest.fixture(params=["sqlite", "postgres"])
def make_database(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Database]:
    """New handles on one database (as several processes, or releases, would open it)."""
    if request.param == "sqlite":
        return lambda: SqliteDatabase(tmp_path / "relay.db")
    dsn = request.getfixturevalue("pg_dsn")
    schema = request.getfixturevalue("pg_schema")
    return lambda: PostgresDatabase(dsn, schema=schema, pool_size=2)


@pytest.fixture
def database(make_database: Callable[[], Database]) -> Database:
    return make_database()


async def test_components_migrate_their_own_tables_once(
    make_database: Callable[[], Database],
) -> None:
    database = make_database()
    database.register("widgets", WIDGETS[:1])
    async with database:
        async with database.write() as tx:
            await tx.execute("INSERT INTO widgets (id) VALUES ($1)", "w1")
        assert await database.schema_version("widgets") == 1
        # A later version of the component registers one more step: only that one runs.
        database.register("widgets", WIDGETS[:1])  # the same again: a no-op
    again = make_database()
    again.register("widgets", WIDGETS)
    async with again:
        async with again.write() as tx:
            await tx.execute("UPDATE widgets SET size = $1 WHERE id = $2", 7, "w1")
        async with again.read() as tx:
            rows = await tx.fetch("SELECT id, size FROM widgets")
        assert [tuple(r) for r in rows] == [("w1", 7)]
        assert await again.schema_version("widgets") == 2
        async with again.read() as tx:
            applied = await tx.fetch(
                "SELECT component, version, name FROM relay_migrations ORDER BY version"
            )
        assert [tuple(r) for r in applied] == [
            ("widgets", 1, "widgets"),
            ("widgets", 2, "widget sizes"),
        ]


async def test_a_component_schema_newer_than_known_is_refused(
    make_database: Callable[[], Database],
) -> None:
    database = make_database()
    database.register("widgets", WIDGETS)
    async with database:
        pass
    older = make_database()
    older.register("widgets", WIDGETS[:1])
    with pytest.raises(StoreError, match="schema of widgets is at version 2, newer than this"):
        await older.open()


def test_migrations_must_be_numbered_from_one() -> None:
    db = SqliteDatabase("unused.db")
    with pytest.raises(InvalidArgumentError, match="numbered 1, 2, 3"):
        db.register("widgets", WIDGETS[1:])
    with pytest.raises(InvalidArgumentError, match="belongs to 'widgets'"):
        db.register("gadgets", WIDGETS[:1])
    db.register("widgets", WIDGETS[:1])
    with pytest.raises(InvalidArgumentError, match="registered other migrations"):
        db.register("widgets", WIDGETS)


async def test_sessions_and_api_keys_share_one_database(database: Database) -> None:
    store = store_for(Settings(), database=database)
    keys = ApiKeyStore(database)
    async with database:
        await store.create_session("s", "alice")
        key, plaintext = await keys.create(role=UserRole.USER, name="k")
        principal = await keys.authenticate(plaintext)
        assert principal is not None
        assert principal.key_id == key.id
        assert await store.get_session("s") is not None
        async with database.read() as tx:
            applied = await tx.fetch(
                "SELECT component, MAX(version) FROM relay_migrations GROUP BY component"
                " ORDER BY component"
            )
        assert [tuple(r) for r in applied] == [("api_keys", 1), ("sessions", 3)]
    # The store did not own the database: closing it leaves the database to its owner.
    await store.close()


async def test_a_key_store_made_after_opening_creates_its_table(tmp_path: Path) -> None:
    async with SqliteSessionStore(tmp_path / "relay.db") as store:
        keys = ApiKeyStore(store)  # a store with a database, as the CLI passes it
        _, plaintext = await keys.create(role=UserRole.ADMIN)
        assert await keys.authenticate(plaintext) is not None


def _legacy_database(path: Path, versions: list[tuple[int, str]]) -> None:
    """A database as Relay 0.1 made it: global versions in relay_schema_migrations."""
    from relay_context.engine.store.sql import SESSION_MIGRATIONS
    from relay_context.security.api_keys import API_KEY_MIGRATIONS

    connection = sqlite3.connect(path)
    connection.execute(
        "CREATE TABLE relay_schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
        " applied_at_us BIGINT NOT NULL)"
    )
    for step in (SESSION_MIGRATIONS[0], API_KEY_MIGRATIONS[0]):  # what Relay 0.1 had
        for statement in step.statements:
            connection.execute(statement.format(blob="BLOB"))
    connection.executemany("INSERT INTO relay_schema_migrations VALUES (?, ?, 0)", versions)
    connection.execute(
        "INSERT INTO relay_sessions VALUES"
        " ('old', 'alice', 0, 0, 3600, 4102444800000000, 0, 0, 'x', '{}')"
    )
    connection.commit()
    connection.close()


async def test_a_database_made_before_the_registry_is_carried_over(tmp_path: Path) -> None:
    path = tmp_path / "relay.db"
    _legacy_database(path, [(1, "sessions and messages"), (2, "api keys")])
    database = SqliteDatabase(path)
    store = store_for(Settings(), database=database)
    keys = ApiKeyStore(database)
    async with database:
        assert await store.get_session("old") is not None  # data kept, nothing re-created
        await keys.create(role=UserRole.USER)
        # Carried over at version 1, then migrated to the current version.
        assert await database.schema_version("sessions") == 3
        assert await database.schema_version("api_keys") == 1
    await store.close()


async def test_a_legacy_version_newer_than_known_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "relay.db"
    _legacy_database(path, [(1, "sessions and messages"), (2, "api keys"), (3, "future")])
    with pytest.raises(StoreError, match="version 3, newer than this Relay knows"):
        await SqliteDatabase(path).open()


def test_database_for_picks_the_back_end(tmp_path: Path) -> None:
    sqlite = database_for(Settings(data_dir=tmp_path))
    assert isinstance(sqlite, SqliteDatabase)
    assert sqlite.path == tmp_path / "relay.db"
    pg = database_for(Settings(database_url="postgresql://u@h:1/d", database_schema="s1"))
    assert isinstance(pg, PostgresDatabase)
    assert pg.schema == "s1"
    with pytest.raises(InvalidArgumentError, match="not supported"):
        database_for(Settings(database_url="mysql://u@h/d"))
