"""Session persistence: the :class:`SessionStore` interface, its SQLite and PostgreSQL back-ends
and :func:`open_store`, which picks one from the settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from relay_context.config.settings import Settings
from relay_context.engine.cache import ContextCache
from relay_context.engine.codec import ContentCodec
from relay_context.engine.store.base import SessionStore
from relay_context.engine.store.postgres import PostgresSessionStore
from relay_context.engine.store.sql import LATEST_VERSION, Clock, SqlSessionStore, system_clock
from relay_context.engine.store.sqlite import SqliteSessionStore
from relay_context.errors import InvalidArgumentError


def store_for(
    settings: Settings,
    *,
    codec: ContentCodec | None = None,
    codec_tag: str | None = None,
    read_codecs: Mapping[str, ContentCodec] | None = None,
    cache: ContextCache | None = None,
    clock: Clock = system_clock,
) -> SqlSessionStore:
    """The store ``settings`` ask for, not yet opened (see :func:`open_store`)."""
    common: dict[str, Any] = {
        "codec": codec,
        "codec_tag": codec_tag,
        "read_codecs": read_codecs,
        "cache": cache,
        "default_ttl_seconds": settings.ttl_seconds,
        "max_message_bytes": settings.max_message_bytes,
        "clock": clock,
    }
    url = settings.database_url
    if settings.uses_postgres:
        assert url is not None  # uses_postgres implies a URL
        return PostgresSessionStore(
            url,
            schema=settings.database_schema,
            pool_size=settings.database_pool_size,
            timeout_seconds=settings.database_timeout_seconds,
            **common,
        )
    if url is not None and not url.startswith("sqlite:///"):
        raise InvalidArgumentError(
            f"DATABASE_URL {url.split('://', 1)[0]}://... is not supported; use postgresql://... "
            "or sqlite:///path (or leave it unset for SQLite in data_dir)"
        )
    return SqliteSessionStore(
        settings.sqlite_path,
        busy_timeout_seconds=settings.database_timeout_seconds,
        synchronous=settings.sqlite_synchronous,
        **common,
    )


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
