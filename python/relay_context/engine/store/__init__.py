"""Session persistence: the :class:`SessionStore` interface, its SQLite and PostgreSQL back-ends
and :func:`open_store`, which picks one from the settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from relay_context.config.settings import Settings
from relay_context.engine.cache import ContextCache
from relay_context.engine.codec import ContentCodec
from relay_context.engine.store.base import SessionStore
from relay_context.engine.store.sql import LATEST_VERSION, SqlSessionStore
from relay_context.engine.store.sqlite import SqliteSessionStore
from relay_context.errors import InvalidArgumentError
from relay_context.persistence import Clock, Database, database_for, system_clock
from relay_context.persistence.sqlite import SqliteDatabase

if TYPE_CHECKING:
    from relay_context.engine.store.postgres import PostgresSessionStore


def store_for(
    settings: Settings,
    *,
    codec: ContentCodec | None = None,
    codec_tag: str | None = None,
    read_codecs: Mapping[str, ContentCodec] | None = None,
    cache: ContextCache | None = None,
    clock: Clock = system_clock,
    database: Database | None = None,
) -> SqlSessionStore:
    """The store ``settings`` ask for, not yet opened (see :func:`open_store`), on ``database``
    (shared, then not closed by the store) or on its own :func:`database_for` the settings."""
    common: dict[str, Any] = {
        "codec": codec,
        "codec_tag": codec_tag,
        "read_codecs": read_codecs,
        "cache": cache,
        "default_ttl_seconds": settings.ttl_seconds,
        "max_message_bytes": settings.max_message_bytes,
        "batch_max_rows": settings.append_batch_max_rows,
        "batch_wait_seconds": settings.append_batch_wait_seconds,
    }
    owns = database is None
    if database is None:
        database = database_for(settings, clock=clock)
    if isinstance(database, SqliteDatabase):
        return SqliteSessionStore(database=database, owns_database=owns, **common)
    # Imported only when chosen: asyncpg is not loaded by SQLite users.
    from relay_context.engine.store.postgres import PostgresSessionStore
    from relay_context.persistence.postgres import PostgresDatabase

    if not isinstance(database, PostgresDatabase):
        raise InvalidArgumentError(f"no session store for {database!r}")
    return PostgresSessionStore(database=database, owns_database=owns, **common)


async def open_store(
    settings: Settings,
    *,
    codec: ContentCodec | None = None,
    codec_tag: str | None = None,
    read_codecs: Mapping[str, ContentCodec] | None = None,
    cache: ContextCache | None = None,
    clock: Clock = system_clock,
) -> SqlSessionStore:
    """The opened (connected, migrated) store for ``settings``.

    ``settings.database_url`` ``postgres://``/``postgresql://`` (also ``postgresql+asyncpg://``)
    selects PostgreSQL; unset or ``sqlite:///path`` selects SQLite (``data_dir/relay.db`` when
    unset). ``codec``/``codec_tag`` compress message content (e.g. the zstd
    ``CompressionEngine`` and ``"zstd"``); ``cache`` is invalidated after every write.
    """
    store = store_for(
        settings,
        codec=codec,
        codec_tag=codec_tag,
        read_codecs=read_codecs,
        cache=cache,
        clock=clock,
    )
    await store.open()
    return store


__all__ = [
    "LATEST_VERSION",
    "PostgresSessionStore",
    "SessionStore",
    "SqlSessionStore",
    "SqliteSessionStore",
    "open_store",
    "store_for",
]


def __getattr__(name: str) -> Any:
    # PostgresSessionStore loads asyncpg: only on first use.
    if name == "PostgresSessionStore":
        from relay_context.engine.store.postgres import PostgresSessionStore

        return PostgresSessionStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
