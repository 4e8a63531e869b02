"""ContextEngine against the real back-ends: SQLite, PostgreSQL, and Redis as the window cache."""

from __future__ import annotations

import multiprocessing
from collections.abc import AsyncIterator
from typing import Any

import pytest

from conversation_support import conversation
from engine_support import engine_append_worker, engine_settings
from relay_context import TokenCounter
from relay_context.core.compression import CompressionEngine
from relay_context.core.context_engine import ContextEngine, MessageRole
from relay_context.core.token_manager import TokenManager
from relay_context.engine.cache import InProcessContextCache, RedisContextCache
from relay_context.errors import (
    EmptyContentError,
    InfeasibleBudgetError,
    InvalidArgumentError,
    InvalidSessionIdError,
    MessageTooLargeError,
    SessionNotFoundError,
    UnknownModelError,
    UnknownPolicyError,
    UnknownRoleError,
)
from test_policies import check_window


@pytest.fixture(params=["memory-cache", "redis-cache"])
def settings_values(request: pytest.FixtureRequest, store_config: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {"max_message_bytes": 100_000}
    if request.param == "redis-cache":
        values["redis_url"] = request.getfixturevalue("redis_server")
        values["redis_key_prefix"] = request.getfixturevalue("redis_prefix")
    return engine_settings(store_config, **values).model_dump()


@pytest.fixture
async def engine(settings_values: dict[str, Any]) -> AsyncIterator[ContextEngine]:
    from relay_context.config.settings import Settings

    async with ContextEngine(
        Settings(**settings_values),
        token_manager=TokenManager("gpt-4"),
        compression=CompressionEngine(algorithm="zstd", level=3),
    ) as opened:
        yield opened


async def add_all(engine: ContextEngine, session: str, turns: list[dict[str, Any]]) -> None:
    for turn in turns:
        await engine.add_message(session, **turn)


async def test_brief_example_and_defaults(engine: ContextEngine) -> None:
    stored = await engine.add_message("session-001", MessageRole.USER, "Hello!")
    assert stored.seq == 1
    # Counted once at add_message, in the token manager's encoding and the default model's.
    assert stored.token_counts == {"cl100k_base": 2, "o200k_base": 2}
    context = await engine.get_context("session-001")
    assert context.policy == "knapsack"
    assert context.model == "gpt-4"
    assert context.budget == engine.settings.max_window_tokens
    assert context.to_openai() == [{"role": "user", "content": "Hello!"}]
    assert TokenCounter("cl100k_base").count_messages(context.to_openai()) == context.tokens_used
    if engine.settings.redis_url:
        assert isinstance(engine.cache, RedisContextCache)
    else:
        assert isinstance(engine.cache, InProcessContextCache)


async def test_windows_on_a_real_store_respect_the_budget(engine: ContextEngine) -> None:
    turns = conversation(90, seed=11, tool_rate=0.15, pin_rate=0.03)
    await add_all(engine, "conv-1", turns)
    messages = await engine.messages("conv-1")
    assert [m.seq for m in messages] == list(range(1, 91))
    for policy in ("knapsack", "recent", "summarize"):
        for model in ("gpt-4o", "gpt-4"):
            window = await engine.get_context("conv-1", budget=1500, model=model, policy=policy)
            check_window(window, messages, 1500)
            again = await engine.get_context("conv-1", budget=1500, model=model, policy=policy)
            assert again == window  # served from the cache
    hits = engine.cache.stats.hits
    assert hits >= 6


async def test_cache_never_serves_a_stale_window(engine: ContextEngine) -> None:
    await add_all(engine, "conv-2", conversation(10, seed=12))
    first = await engine.get_context("conv-2", budget=5000)
    await engine.add_message("conv-2", "user", "One more question about Redis streams?")
    second = await engine.get_context("conv-2", budget=5000)
    assert second.kept_seqs[-1] == 11
    assert first.kept_seqs[-1] == 10


async def test_model_without_stored_counts_is_counted_on_demand(engine: ContextEngine) -> None:
    await add_all(engine, "conv-3", conversation(12, seed=13))
    # gpt-4o-mini is o200k_base (stored); text-embedding-3-small is cl100k (stored too);
    # an encoding name works as a model.
    for model in ("gpt-4o-mini", "cl100k_base", "o200k_base"):
        window = await engine.get_context("conv-3", budget=4000, model=model)
        assert TokenCounter(window.encoding).count_messages(window.to_openai()) == (
            window.tokens_used
        )


async def test_stats(engine: ContextEngine) -> None:
    turns = conversation(40, seed=14, tool_rate=0.2)
    turns.append(dict(turns[-1]))  # an exact repeat of the last turn
    await add_all(engine, "conv-4", turns)
    stats = await engine.stats("conv-4")
    assert stats.message_count == 41 == stats.last_seq
    assert sum(stats.messages_by_role.values()) == 41
    counter = TokenCounter(stats.encoding)
    messages = await engine.messages("conv-4")
    assert stats.total_tokens == counter.count_messages([m.to_openai() for m in messages])
    assert sum(stats.tokens_by_role.values()) + 3 == stats.total_tokens
    assert stats.content_bytes == sum(len(m.content.encode()) for m in messages)
    assert 0 < stats.stored_bytes <= stats.content_bytes
    assert stats.compression_ratio >= 1.0
    assert stats.bytes_saved >= 0
    assert 0.0 <= stats.drift_score <= 1.0
    assert stats.near_duplicates >= 1
    assert stats.as_dict()["tokens_by_role"] == stats.tokens_by_role


async def test_drift_rises_when_the_topic_changes(engine: ContextEngine) -> None:
    for i in range(24):
        await engine.add_message("drift", "user", f"PostgreSQL vacuum and index bloat question {i}")
    steady = (await engine.stats("drift")).drift_score
    for i in range(6):
        await engine.add_message("drift", "user", f"Best sourdough bread recipe with rye flour {i}")
    moved = (await engine.stats("drift")).drift_score
    assert steady < 0.5 < moved
    assert (await engine.get_context("drift")).drift_score == moved


async def test_clear(engine: ContextEngine) -> None:
    await engine.add_message("gone", "user", "hi")
    assert await engine.clear("gone") is True
    assert await engine.clear("gone") is False
    with pytest.raises(SessionNotFoundError):
        await engine.get_context("gone")
    with pytest.raises(SessionNotFoundError):
        await engine.stats("gone")
    again = await engine.add_message("gone", "user", "back")
    assert again.seq == 1


async def test_bad_input_gets_typed_errors(engine: ContextEngine) -> None:
    with pytest.raises(UnknownRoleError, match="'wizard'"):
        await engine.add_message("s", "wizard", "hi")
    with pytest.raises(EmptyContentError):
        await engine.add_message("s", "user", "")
    with pytest.raises(MessageTooLargeError, match="100000"):
        await engine.add_message("s", "user", "x" * 100_001)
    with pytest.raises(InvalidSessionIdError, match="' '"):
        await engine.add_message("bad id", "user", "hi")
    await engine.add_message("s", "system", "You are terse.")
    await engine.add_message("s", "user", "hi there")
    with pytest.raises(UnknownPolicyError, match="'fancy'"):
        await engine.get_context("s", policy="fancy")
    with pytest.raises(UnknownModelError, match="'llama-9'"):
        await engine.get_context("s", model="llama-9")
    with pytest.raises(InfeasibleBudgetError):
        await engine.get_context("s", budget=10)
    with pytest.raises(ValueError, match=">= 1"):
        await engine.get_context("s", budget=0)
    with pytest.raises(TypeError):
        await engine.get_context("s", budget="100")  # type: ignore[arg-type]
    assert await engine.store.count_messages("s") == 2  # nothing bad was stored


async def test_default_components_come_from_settings(settings_values: dict[str, Any]) -> None:
    from relay_context.config.settings import Settings

    engine = ContextEngine(Settings(**{**settings_values, "compression_algorithm": "lz4"}))
    await engine.add_message("defaults", "user", "hello")  # opens lazily
    try:
        assert isinstance(engine.compression, CompressionEngine)
        assert engine.compression.algorithm == "lz4"
        assert engine.model == engine.settings.default_model
    finally:
        await engine.close()
        await engine.close()  # idempotent


def test_concurrent_add_message_from_processes_keeps_a_total_order(
    settings_values: dict[str, Any],
) -> None:
    import asyncio

    async def prepare() -> None:
        from relay_context.config.settings import Settings

        async with ContextEngine(Settings(**settings_values)) as engine:
            await engine.add_message("multi", "system", "shared session")

    asyncio.run(prepare())
    context = multiprocessing.get_context("spawn")
    go = context.Event()
    workers = [
        context.Process(
            target=engine_append_worker, args=(settings_values, "multi", f"w{k}", 15, go)
        )
        for k in range(3)
    ]
    for w in workers:
        w.start()
    go.set()
    for w in workers:
        w.join(120)
        assert w.exitcode == 0

    async def check() -> None:
        from relay_context.config.settings import Settings

        async with ContextEngine(Settings(**settings_values)) as engine:
            messages = await engine.messages("multi")
            assert [m.seq for m in messages] == list(range(1, 47))
            for k in range(3):
                mine = [m.content for m in messages if m.content.startswith(f"w{k}:")]
                assert mine == [f"w{k}:{i}" for i in range(15)]  # each writer's order kept
            window = await engine.get_context("multi", budget=300, policy="recent")
            assert window.kept_seqs[0] == 1

    asyncio.run(check())


async def test_counts_for_a_new_encoding_are_stored_back(settings_values: dict[str, Any]) -> None:
    from relay_context.config.settings import Settings

    async with ContextEngine(Settings(**settings_values)) as engine:  # gpt-4o: o200k only
        await add_all(engine, "recount", conversation(15, seed=15))
        before = await engine.messages("recount")
        assert all(set(m.token_counts) == {"o200k_base"} for m in before)
        version = (await engine.store.get_session("recount")).cache_version  # type: ignore[union-attr]
        window = await engine.get_context("recount", budget=3000, model="gpt-4")
        after = await engine.messages("recount")
        counter = TokenCounter("cl100k_base")
        for m in after:
            assert m.token_counts["cl100k_base"] == counter.count(m.content)
            assert m.token_counts["o200k_base"] == before[m.seq - 1].token_counts["o200k_base"]
        # Counts are not content: the session version (and cached windows) stay valid.
        assert (await engine.store.get_session("recount")).cache_version == version  # type: ignore[union-attr]
        assert await engine.get_context("recount", budget=3000, model="gpt-4") == window
        assert counter.count_messages(window.to_openai()) == window.tokens_used


async def test_history_kept_in_memory_follows_other_writers(
    settings_values: dict[str, Any],
) -> None:
    """The engine re-reads only what changed; appends, prefix deletes and re-creation made by
    another engine (another process) all show up."""
    from relay_context.config.settings import Settings

    async with (
        ContextEngine(Settings(**settings_values)) as reader,
        ContextEngine(Settings(**settings_values)) as writer,
    ):
        await add_all(writer, "hist", conversation(20, seed=16))

        async def window_seqs() -> tuple[int, ...]:
            window = await reader.get_context("hist", budget=100_000, policy="recent")
            return tuple(sorted(window.kept_seqs + window.dropped_seqs))

        assert await window_seqs() == tuple(range(1, 21))
        await writer.add_message("hist", "user", "a new question from elsewhere")
        assert await window_seqs() == tuple(range(1, 22))
        assert await writer.store.delete_messages("hist", before_seq=6) == 5
        await writer.add_message("hist", "assistant", "and an answer")
        assert await window_seqs() == tuple(range(6, 23))
        assert (await reader.stats("hist")).message_count == 17
        await writer.clear("hist")
        await writer.add_message("hist", "user", "fresh start")
        window = await reader.get_context("hist", budget=1000)
        assert window.kept_seqs == (1,)
        assert window.messages[0].content == "fresh start"


async def test_expired_sessions_are_purged_by_the_sweep(
    store_config: dict[str, Any], clock: Any
) -> None:
    import asyncio

    from engine_support import build_store
    from relay_context.config.settings import Settings

    settings = engine_settings(store_config, ttl_seconds=60, session_sweep_interval_seconds=0.05)
    store = build_store(store_config, clock=clock, default_ttl_seconds=60)
    async with (
        store,
        ContextEngine(
            settings,
            token_manager=TokenManager("gpt-4"),
            store=store,
        ) as engine,
    ):
        await engine.add_message("short-lived", "user", "hello")
        await engine.add_message("long-lived", "user", "hello")
        clock.advance(30)
        await engine.add_message("long-lived", "user", "still here")  # restarts its TTL
        clock.advance(31)
        for _ in range(200):  # the sweep runs every 50 ms
            if engine.sessions_expired:
                break
            await asyncio.sleep(0.05)
        assert engine.sessions_expired == 1
        assert await store.get_session("short-lived") is None
        assert (await store.get_session("long-lived")) is not None
        assert await engine.expire_sessions() == 0  # nothing left to purge
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        Settings(session_sweep_interval_seconds=-1)


async def test_a_session_the_caller_has_read_gives_the_same_window(engine: ContextEngine) -> None:
    await add_all(engine, "conv-read", conversation(8, seed=5))
    session = await engine.store.get_session("conv-read")
    assert session is not None
    given = await engine.get_context("conv-read", budget=3000, query="redis", session=session)
    read = await engine.get_context("conv-read", budget=3000, query="redis")
    assert given.to_dict() == read.to_dict()
    other = await engine.store.ensure_session("conv-other", "alice")
    with pytest.raises(InvalidArgumentError, match="conv-other"):
        await engine.get_context("conv-read", session=other)
