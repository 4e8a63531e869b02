"""ContextEngine.subscribe: resume after a seq, in-process fan-out, other processes through
Redis pub/sub, and store polling without Redis (real SQLite/PostgreSQL and Redis)."""

from __future__ import annotations

import asyncio
import multiprocessing
from typing import Any

import pytest

from engine_support import engine_append_worker, engine_settings
from relay_context.config.settings import Settings
from relay_context.core.context_engine import ContextEngine
from relay_context.engine.models import StoredMessage
from relay_context.errors import InvalidArgumentError

#: Liveness bound only (a hang fails instead of blocking the suite), not a speed assertion.
PATIENCE = 60.0


async def take(iterator: Any, n: int) -> list[StoredMessage]:
    out = []
    async with asyncio.timeout(PATIENCE):
        async for message in iterator:
            out.append(message)
            if len(out) == n:
                break
    return out


async def test_resume_after_a_seq_then_live_messages(store_config: dict[str, Any]) -> None:
    async with ContextEngine(engine_settings(store_config, subscribe_poll_seconds=30)) as engine:
        for i in range(8):
            await engine.add_message("sub", "user", f"m{i}")
        stream = engine.subscribe("sub", after_seq=5)

        async def produce() -> None:
            await asyncio.sleep(0.05)
            for i in range(8, 12):
                await engine.add_message("sub", "user", f"m{i}")

        producer = asyncio.create_task(produce())
        got = await take(stream, 6)
        await producer
        await stream.aclose()
        # The backlog after seq 5, then the live ones, in order, each once; no poll was needed
        # (30 s poll interval): the in-process fan-out delivered them.
        assert [m.seq for m in got] == list(range(6, 12))
        assert [m.content for m in got] == [f"m{i}" for i in range(5, 11)]


async def test_many_local_subscribers_each_get_everything(store_config: dict[str, Any]) -> None:
    async with ContextEngine(engine_settings(store_config, subscribe_poll_seconds=30)) as engine:
        await engine.add_message("fan", "user", "first")
        streams = [engine.subscribe("fan") for _ in range(3)]
        readers = [asyncio.create_task(take(s, 21)) for s in streams]
        await asyncio.sleep(0.05)
        for i in range(20):
            await engine.add_message("fan", "assistant", f"reply {i}")
        results = await asyncio.gather(*readers)
        for got in results:
            assert [m.seq for m in got] == list(range(1, 22))
        for s in streams:
            await s.aclose()


async def test_after_clear_a_new_session_streams_from_seq_1(tmp_path: Any) -> None:
    config = {"backend": "sqlite", "path": str(tmp_path / "r.db")}
    async with ContextEngine(engine_settings(config, subscribe_poll_seconds=0.1)) as engine:
        for i in range(3):
            await engine.add_message("again", "user", f"old {i}")
        stream = engine.subscribe("again")
        first = await take(stream, 3)
        await engine.clear("again")
        await engine.add_message("again", "user", "new 0")
        (fresh,) = await take(stream, 1)
        await stream.aclose()
        assert [m.seq for m in first] == [1, 2, 3]
        assert (fresh.seq, fresh.content) == (1, "new 0")


async def test_invalid_resume_point(store_config: dict[str, Any]) -> None:
    async with ContextEngine(engine_settings(store_config)) as engine:
        with pytest.raises(InvalidArgumentError, match="after_seq"):
            await take(engine.subscribe("x", after_seq=-1), 1)
        with pytest.raises(TypeError):
            await take(engine.subscribe("x", after_seq="3"), 1)  # type: ignore[arg-type]


def _start_writer(values: dict[str, Any], session: str, count: int) -> Any:
    context = multiprocessing.get_context("spawn")
    go = context.Event()
    process = context.Process(
        target=engine_append_worker, args=(values, session, "child", count, go)
    )
    process.start()
    return process, go


@pytest.mark.parametrize("transport", ["redis", "polling"])
async def test_messages_from_another_process(
    transport: str, store_config: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    overrides: dict[str, Any] = {}
    if transport == "redis":
        overrides["redis_url"] = request.getfixturevalue("redis_server")
        overrides["redis_key_prefix"] = request.getfixturevalue("redis_prefix")
        # Pub/sub must do the work: the safety-net poll is far slower than the patience.
        overrides["subscribe_poll_seconds"] = 3600
    else:
        overrides["subscribe_poll_seconds"] = 0.2
    settings = engine_settings(store_config, **overrides)
    async with ContextEngine(settings) as engine:
        await engine.add_message("cross", "system", "start")
        stream = engine.subscribe("cross", after_seq=1)
        reader = asyncio.create_task(take(stream, 10))
        await asyncio.sleep(0.5)  # let the subscription start before the writer
        process, go = _start_writer(settings.model_dump(), "cross", 10)
        go.set()
        got = await reader
        await asyncio.to_thread(process.join, PATIENCE)
        assert process.exitcode == 0
        await stream.aclose()
    assert [m.seq for m in got] == list(range(2, 12))
    assert [m.content for m in got] == [f"child:{i}" for i in range(10)]


async def test_redis_channel_carries_the_seq(
    redis_server: str, redis_prefix: str, tmp_path: Any, redis_client: Any
) -> None:
    config = {"backend": "sqlite", "path": str(tmp_path / "c.db")}
    settings = engine_settings(config, redis_url=redis_server, redis_key_prefix=redis_prefix)
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(f"{redis_prefix}events:chan")
    async with ContextEngine(settings) as engine:
        await engine.add_message("chan", "user", "ping")
    async with asyncio.timeout(PATIENCE):
        while True:
            item = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if item is not None:
                break
    assert item["data"] == b"1"
    await pubsub.aclose()


def test_settings_defaults() -> None:
    s = Settings()
    assert s.context_policy == "knapsack"
    assert (s.recent_threshold_tokens, s.recent_keep_messages, s.max_message_tokens) == (
        180_000,
        7,
        20_000,
    )
    assert s.dedup_threshold == 0.95
