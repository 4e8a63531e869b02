"""Helpers for the session-store, cache and model tests (also imported by child processes)."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
import zlib
from typing import Any

from relay_context.engine.store.postgres import PostgresSessionStore
from relay_context.engine.store.sql import SqlSessionStore
from relay_context.engine.store.sqlite import SqliteSessionStore


class ZlibCodec:
    """Test-only stand-in for the zstd CompressionEngine (same two methods)."""

    def compress(self, data: bytes, /) -> bytes:
        return zlib.compress(data, 6)

    def decompress(self, data: bytes, /) -> bytes:
        return zlib.decompress(data)


class FakeClock:
    """Microseconds since the epoch that only move when told to (drives TTL expiry)."""

    def __init__(self) -> None:
        self.now = time.time_ns() // 1000

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += round(seconds * 1_000_000)


def unique_name(prefix: str) -> str:
    """Unique across processes and runs: prefix, pid and random hex (lower case, [a-z0-9_])."""
    return f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"


async def _try_connect(dsn: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(dsn, timeout=5)
    await connection.close()


def find_pg_dsn(host: str, database: str, users: tuple[str, ...]) -> tuple[str | None, str]:
    problems = []
    for user in users:
        dsn = f"postgresql://{user}@{host}/{database}"
        try:
            asyncio.run(_try_connect(dsn))
        except Exception as exc:
            problems.append(f"{user}: {exc!r}")
        else:
            return dsn, ""
    return None, "; ".join(problems)


async def _drop_schema(dsn: str, schema: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(dsn, timeout=10)
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()


def drop_pg_schema(dsn: str, schema: str) -> None:
    asyncio.run(_drop_schema(dsn, schema))


def delete_redis_keys(url: str, prefix: str) -> None:
    """Deletes every key under ``prefix`` in the Redis at ``url`` (a test's leftovers)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def build_store(config: dict[str, Any], **options: Any) -> SqlSessionStore:
    """A store from a picklable description (so child processes can open the same one)."""
    options.setdefault("codec", ZlibCodec())
    options.setdefault("codec_tag", "zlib")
    if config["backend"] == "sqlite":
        return SqliteSessionStore(config["path"], **options)
    if config["backend"] == "postgres":
        return PostgresSessionStore(config["dsn"], schema=config["schema"], **options)
    raise ValueError(f"unknown backend {config['backend']!r}")


# --- child processes of the concurrency tests (module-level so that "spawn" can import them) ---
def _worker_options(config: dict[str, Any]) -> dict[str, Any]:
    # Few connections per process: many processes share PostgreSQL's connection limit.
    return {"pool_size": 2} if config["backend"] == "postgres" else {}


async def _append_many_times(
    config: dict[str, Any], session_id: str, label: str, count: int, go: Any, acks: Any
) -> None:
    from relay_context.engine.models import MessageRole, NewMessage

    async with build_store(config, **_worker_options(config)) as store:
        go.wait()
        for i in range(count):
            message = NewMessage(
                MessageRole.USER, f"{label}:{i}", metadata={"writer": label, "i": i}
            )
            stored = await store.append(session_id, message)
            if acks is not None:
                acks.send((i, stored.seq))  # acknowledged: the append committed


def append_worker(
    config: dict[str, Any],
    session_id: str,
    label: str,
    count: int,
    go: Any,
    acks: Any = None,
) -> None:
    """Append ``count`` messages ``<label>:<i>`` in order, after ``go`` is set; with ``acks``
    (a pipe end), report ``(i, seq)`` of each append after it returned."""
    asyncio.run(_append_many_times(config, session_id, label, count, go, acks))


async def _append_concurrently(
    config: dict[str, Any], session_ids: list[str], label: str, width: int, go: Any, acks: Any
) -> None:
    from relay_context.engine.models import MessageRole, NewMessage

    async with build_store(config, **_worker_options(config)) as store:
        go.wait()
        counter = iter(range(10**9))

        async def lane() -> None:
            while True:
                i = next(counter)
                sid = session_ids[i % len(session_ids)]
                message = NewMessage(
                    MessageRole.USER, f"{label}:{i}", metadata={"writer": label, "i": i}
                )
                stored = await store.append(sid, message)
                acks.send((sid, i, stored.seq))  # acknowledged: its batch committed

        await asyncio.gather(*(lane() for _ in range(width)))


def concurrent_append_worker(
    config: dict[str, Any], session_ids: list[str], label: str, width: int, go: Any, acks: Any
) -> None:
    """``width`` concurrent lanes appending ``<label>:<i>`` round-robin over ``session_ids``
    (so appends share group commits) until killed; reports ``(session, i, seq)`` of each
    append after it returned."""
    asyncio.run(_append_concurrently(config, session_ids, label, width, go, acks))


async def _hold_write_lock(config: dict[str, Any], session_id: str, report: Any) -> None:
    async with build_store(config, **_worker_options(config)) as store, store._write() as tx:
        # Half an append: the seq is taken, the session row (SQLite: the database) locked.
        await tx.fetch(
            "UPDATE relay_sessions SET last_seq = last_seq + 1 WHERE id = $1 RETURNING last_seq",
            session_id,
        )
        report.send("locked")
        await asyncio.sleep(3600)  # until killed


def hold_write_lock(config: dict[str, Any], session_id: str, report: Any) -> None:
    """Start an append transaction, report ``"locked"``, and wait to be killed inside it."""
    asyncio.run(_hold_write_lock(config, session_id, report))


# --- the context engine over each back-end (settings picklable for child processes) ---------
def engine_settings(config: dict[str, Any], **overrides: Any) -> Any:
    """``Settings`` that make ``ContextEngine`` open the store ``config`` describes."""
    from relay_context.config.settings import Settings

    values: dict[str, Any] = {}
    if config["backend"] == "sqlite":
        values["database_url"] = f"sqlite:///{config['path']}"
    else:
        values["database_url"] = config["dsn"]
        values["database_schema"] = config["schema"]
        values["database_pool_size"] = 4
    values.update(overrides)
    return Settings(**values)


async def _engine_appends(
    settings_values: dict[str, Any], session_id: str, label: str, count: int, go: Any
) -> None:
    from relay_context.config.settings import Settings
    from relay_context.core.context_engine import ContextEngine

    async with ContextEngine(Settings(**settings_values)) as engine:
        go.wait()
        for i in range(count):
            await engine.add_message(session_id, "user", f"{label}:{i}", metadata={"i": i})


def engine_append_worker(
    settings_values: dict[str, Any], session_id: str, label: str, count: int, go: Any
) -> None:
    """Add ``count`` messages ``<label>:<i>`` through a ContextEngine of its own."""
    asyncio.run(_engine_appends(settings_values, session_id, label, count, go))
