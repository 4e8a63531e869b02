"""Helpers of the handoff relay's tests: the service in a thread of this process on real
back-ends, and a ``HandoffRelay`` opened straight on a database."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from relay_context.config.handoff import HandoffSettings
from relay_context.config.settings import Environment, Settings
from relay_context.handoff import HandoffRelay
from relay_context.persistence.postgres import PostgresDatabase
from relay_context.persistence.sqlite import SqliteDatabase
from service_support import TEST_SECRET, serve_in_thread


def handoff_settings(
    data_dir: Path, *, handoff: dict[str, Any] | None = None, **extra: Any
) -> Settings:
    return Settings(
        environment=Environment.TESTING,
        secret_key=SecretStr(TEST_SECRET),
        data_dir=data_dir,
        rate_limit_requests=100_000,
        log_level="WARNING",
        handoff={"auth": "open", **(handoff or {})},
        **extra,
    )


@contextlib.contextmanager
def handoff_service(settings: Settings, span_exporter: Any = None) -> Iterator[tuple[str, Any]]:
    """The whole service under uvicorn in a thread: its URL and its ``ServiceState``."""
    from relay_context.service.app import create_app

    app = create_app(settings, span_exporter=span_exporter)
    with serve_in_thread(app) as url:
        yield url, app.state.relay


@contextlib.asynccontextmanager
async def open_relay(
    config: dict[str, Any], data_dir: Path, clock: Any, **settings: Any
) -> AsyncIterator[HandoffRelay]:
    """A relay on the back-end ``config`` names (the ``store_config`` fixture's shape)."""
    database: Any
    if config["backend"] == "sqlite":
        database = SqliteDatabase(config["path"], clock=clock)
    else:
        database = PostgresDatabase(config["dsn"], schema=config["schema"], clock=clock)
    relay = HandoffRelay(
        HandoffSettings(**{"sweep_interval_seconds": 0, **settings}),
        database=database,
        data_dir=data_dir,
    )
    try:
        async with relay:
            yield relay
    finally:
        await database.close()


def make_api_key(settings: Settings, role: str = "user") -> str:
    """A new API key in the settings' database (made before or beside the running service)."""
    import asyncio

    from relay_context.persistence import database_for
    from relay_context.security.api_keys import ApiKeyStore
    from relay_context.security.auth import UserRole

    async def create() -> str:
        async with database_for(settings) as database:
            _, key = await ApiKeyStore(database).create(role=UserRole(role), name="test")
        return key

    return asyncio.run(create())
