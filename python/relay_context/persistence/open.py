"""``database_for(settings)``: the database the settings ask for, not yet opened."""

from __future__ import annotations

from typing import TYPE_CHECKING

from relay_context.errors import InvalidArgumentError
from relay_context.persistence.clock import Clock, system_clock

if TYPE_CHECKING:
    from relay_context.config.settings import Settings
    from relay_context.persistence.database import Database


def database_for(settings: Settings, *, clock: Clock = system_clock) -> Database:
    """PostgreSQL when ``settings.database_url`` is ``postgres://``/``postgresql://`` (also
    ``postgresql+asyncpg://``); SQLite for ``sqlite:///path`` or no URL (``data_dir/relay.db``).
    Each back-end's driver is imported only when it is chosen."""
    url = settings.database_url
    if settings.uses_postgres:
        assert url is not None  # uses_postgres implies a URL
        from relay_context.persistence.postgres import PostgresDatabase

        return PostgresDatabase(
            url,
            schema=settings.database_schema,
            pool_size=settings.database_pool_size,
            timeout_seconds=settings.database_timeout_seconds,
            clock=clock,
        )
    if url is not None and not url.startswith("sqlite:///"):
        raise InvalidArgumentError(
            f"DATABASE_URL {url.split('://', 1)[0]}://... is not supported; use postgresql://... "
            "or sqlite:///path (or leave it unset for SQLite in data_dir)"
        )
    from relay_context.persistence.sqlite import SqliteDatabase

    return SqliteDatabase(
        settings.sqlite_path,
        busy_timeout_seconds=settings.database_timeout_seconds,
        synchronous=settings.sqlite_synchronous,
        clock=clock,
    )


__all__ = ["database_for"]
