"""The context-window cache: the in-process LRU and the real Redis behind one interface."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from engine_support import FakeClock, ZlibCodec, build_store
from relay_context.config.settings import Settings
from relay_context.engine.cache import (
    ContextCache,
    InProcessContextCache,
    RedisContextCache,
    open_cache,
)
from relay_context.engine.models import MessageRole, NewMessage, ToolCall
from relay_context.engine.window import ContextWindow, WindowMessage
from relay_context.errors import (
    BackendUnavailableError,
    CorruptFrameError,
    InputTypeError,
    InvalidArgumentError,
    InvalidSessionIdError,
)


class MonotonicFake:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["in-process", "redis"])
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[ContextCache]:
    if request.param == "in-process":
        yield InProcessContextCache(64, default_ttl_seconds=60)
        return
    # Synchronous fixtures only: an async one cannot be requested from inside this one.
    prefix = request.getfixturevalue("redis_prefix")
    cache = RedisContextCache.from_url(
        request.getfixturevalue("redis_server"),
        key_prefix=prefix,
        codec=ZlibCodec(),
        codec_tag="zlib",
        default_ttl_seconds=60,
    )
    yield cache
    await cache.close()


async def test_get_set_and_versions(cache: ContextCache) -> None:
    assert await cache.get("s", "v1") is None
    await cache.set("s", "v1", b"window one")
    assert await cache.get("s", "v1") == b"window one"
    assert await cache.get("s", "v2") is None  # another version of the session: a miss
    await cache.set("s", "v2", b"window two")
    assert await cache.get("s", "v2") == b"window two"
    assert await cache.get("s", "v1") is None  # replaced
    assert await cache.get("other", "v2") is None
    assert (cache.stats.hits, cache.stats.misses, cache.stats.sets) == (2, 4, 2)
    assert cache.stats.hit_rate == pytest.approx(2 / 6)


async def test_variants_are_separate_and_invalidate_drops_them_all(cache: ContextCache) -> None:
    await cache.set("s", "v1", b"for gpt-4o", variant="gpt-4o:8000")
    await cache.set("s", "v1", b"for claude", variant="claude:4000")
    await cache.set("t", "v1", b"other session")
    assert await cache.get("s", "v1", "gpt-4o:8000") == b"for gpt-4o"
    assert await cache.get("s", "v1", "claude:4000") == b"for claude"
    assert await cache.get("s", "v1") is None
    await cache.invalidate("s")
    assert await cache.get("s", "v1", "gpt-4o:8000") is None
    assert await cache.get("s", "v1", "claude:4000") is None
    assert await cache.get("t", "v1") == b"other session"
    await cache.invalidate("never-cached")  # harmless


async def test_binary_and_empty_payloads(cache: ContextCache) -> None:
    blob = bytes(range(256)) * 50 + b"\n\n\x00"
    await cache.set("s", "v", blob)
    assert await cache.get("s", "v") == blob
    await cache.set("s", "v", b"")
    assert await cache.get("s", "v") == b""


async def test_bad_arguments(cache: ContextCache) -> None:
    with pytest.raises(InvalidSessionIdError):
        await cache.get("a b", "v")
    with pytest.raises(InvalidArgumentError, match="version is empty"):
        await cache.set("s", "", b"x")
    with pytest.raises(InvalidArgumentError, match="without newlines"):
        await cache.get("s", "v\n1")
    with pytest.raises(InputTypeError, match="payload must be bytes"):
        await cache.set("s", "v", "text")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="ttl_seconds"):
        await cache.set("s", "v", b"x", ttl_seconds=0)


def a_window(content: str = "hello", seq: int = 2) -> ContextWindow:
    call = ToolCall("call_1", "lookup", '{"q": 1}')
    return ContextWindow(
        session_id="s",
        messages=(
            WindowMessage(MessageRole.SYSTEM, "be brief", 6, seq=1),
            WindowMessage(MessageRole.ASSISTANT, "", 12, seq=seq, tool_calls=(call,)),
            WindowMessage(MessageRole.TOOL, content, 9, seq=seq + 1, tool_call_id="call_1"),
        ),
        tokens_used=30,
        budget=100,
        model="gpt-4o",
        encoding="o200k_base",
        policy="knapsack",
        total_tokens=70,
        dropped_seqs=(5, 6),
        deduplicated_seqs=(6,),
        dedup_tokens_saved=4,
        drift_score=0.25,
        kept_seqs=(1, seq, seq + 1),
    )


async def test_windows_round_trip(cache: ContextCache) -> None:
    window = a_window()
    assert await cache.get_window("s", "v1") is None
    await cache.set_window("s", "v1", window, variant="gpt-4o")
    got = await cache.get_window("s", "v1", "gpt-4o")
    assert got == window
    assert got is not window
    assert got.from_cache
    assert not window.from_cache
    assert await cache.get_window("s", "v2", "gpt-4o") is None  # another version
    # The bytes interface sees the window's JSON, whichever form the cache holds it in.
    payload = await cache.get("s", "v1", "gpt-4o")
    assert payload is not None
    assert ContextWindow.from_json(payload) == window
    # A window stored as bytes is read back as a window.
    await cache.set("s", "v3", a_window("other").to_json())
    assert await cache.get_window("s", "v3") == a_window("other")
    # A cached window stored again is stored as a window, not as "from the cache".
    await cache.set_window("s", "v4", got)
    again = await cache.get_window("s", "v4")
    assert again == window
    assert again.from_cache
    assert (cache.stats.hits, cache.stats.sets) == (4, 3)
    await cache.invalidate("s")
    assert await cache.get_window("s", "v4") is None


# --- in-process -------------------------------------------------------------------------------
async def test_in_process_cache_keeps_window_objects_counted_by_their_footprint() -> None:
    from relay_context.engine.cache import ENTRY_OVERHEAD_BYTES, window_footprint

    small, large = a_window(), a_window("x" * 50_000)
    assert window_footprint(large) - window_footprint(small) == 50_000 - len("hello")
    size = window_footprint(large) + ENTRY_OVERHEAD_BYTES
    cache = InProcessContextCache(100, max_bytes=2 * size)
    for i in range(5):
        await cache.set_window(f"s{i}", "v", large)
        assert cache.total_bytes <= 2 * size
    assert len(cache) == 2
    assert await cache.get_window("s2", "v") is None
    assert await cache.get_window("s4", "v") == large
    await cache.set_window("s4", "v", small)  # replaced: counted once, at its new size
    assert cache.total_bytes == size + window_footprint(small) + ENTRY_OVERHEAD_BYTES
    with pytest.raises(InputTypeError, match="must be a ContextWindow"):
        await cache.set_window("s", "v", b"{}")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="version is empty"):
        await cache.set_window("s", "", small)
    assert await InProcessContextCache(0).get_window("s", "v") is None


async def test_lru_evicts_the_least_recently_used() -> None:
    cache = InProcessContextCache(2)
    await cache.set("a", "v", b"A")
    await cache.set("b", "v", b"B")
    assert await cache.get("a", "v") == b"A"  # "a" is now more recent than "b"
    await cache.set("c", "v", b"C")
    assert len(cache) == 2
    assert await cache.get("b", "v") is None
    assert await cache.get("a", "v") == b"A"
    assert await cache.get("c", "v") == b"C"


async def test_in_process_cache_is_bounded_by_bytes_not_entries() -> None:
    from relay_context.engine.cache import ENTRY_OVERHEAD_BYTES

    entry = 10_000 + ENTRY_OVERHEAD_BYTES
    cache = InProcessContextCache(1000, max_bytes=3 * entry)  # room for 1000 windows by count
    for i in range(10):
        await cache.set(f"s{i}", "v", bytes(10_000))
        assert cache.total_bytes <= 3 * entry
    assert len(cache) == 3  # the bytes, not the count, decided
    assert [await cache.get(f"s{i}", "v") is not None for i in (6, 7, 8, 9)] == [
        False,
        True,
        True,
        True,
    ]
    await cache.set("s7", "v2", bytes(100))  # a replaced entry is counted once, at its new size
    assert cache.total_bytes == 2 * entry + 100 + ENTRY_OVERHEAD_BYTES
    await cache.set("big", "v", bytes(4 * entry))  # larger than the bound: not stored
    assert await cache.get("big", "v") is None
    assert len(cache) == 3
    await cache.invalidate("s8")
    assert cache.total_bytes == entry + 100 + ENTRY_OVERHEAD_BYTES
    for sid in ("s7", "s9"):
        await cache.invalidate(sid)
    assert cache.total_bytes == 0


async def test_in_process_entries_expire() -> None:
    clock = MonotonicFake()
    cache = InProcessContextCache(8, default_ttl_seconds=30, clock=clock)
    await cache.set("s", "v", b"x")
    await cache.set("t", "v", b"y", ttl_seconds=100)
    clock.now += 29.9
    assert await cache.get("s", "v") == b"x"
    clock.now += 0.1
    assert await cache.get("s", "v") is None
    assert await cache.get("t", "v") == b"y"
    assert len(cache) == 1


async def test_zero_entries_disables_the_in_process_cache() -> None:
    cache = InProcessContextCache(0)
    await cache.set("s", "v", b"x")
    assert await cache.get("s", "v") is None
    with pytest.raises(InvalidArgumentError, match="max_entries"):
        InProcessContextCache(-1)


# --- Redis ------------------------------------------------------------------------------------
async def test_redis_stores_compressed_values_with_a_ttl(
    redis_client: Any, redis_prefix: str
) -> None:
    cache = RedisContextCache(
        redis_client, key_prefix=redis_prefix, codec=ZlibCodec(), codec_tag="zlib"
    )
    window = b'{"role": "user", "content": "the same words again"}\n' * 500
    await cache.set("s", "abc.3", window, ttl_seconds=120)
    key = f"{redis_prefix}ctx:s"
    raw = await redis_client.hget(key, "")
    version, tag, blob = raw.split(b"\n", 2)
    assert (version, tag) == (b"abc.3", b"zlib")
    assert len(blob) < len(window) / 10
    assert 0 < await redis_client.ttl(key) <= 120
    # A cache configured without the codec refuses the value by name instead of misreading it.
    plain = RedisContextCache(redis_client, key_prefix=redis_prefix)
    with pytest.raises(CorruptFrameError, match="codec 'zlib'"):
        await plain.get("s", "abc.3")
    # Values written by another process with the same codec are read back.
    other = RedisContextCache(
        redis_client, key_prefix=redis_prefix, read_codecs={"zlib": ZlibCodec()}
    )
    assert await other.get("s", "abc.3") == window


async def test_a_malformed_redis_value_is_a_typed_error(
    redis_client: Any, redis_prefix: str
) -> None:
    cache = RedisContextCache(redis_client, key_prefix=redis_prefix)
    await redis_client.hset(f"{redis_prefix}ctx:s", "", b"no header")
    with pytest.raises(CorruptFrameError, match="malformed"):
        await cache.get("s", "v")


async def test_redis_keys_live_under_the_prefix(redis_client: Any, redis_prefix: str) -> None:
    cache = RedisContextCache(redis_client, key_prefix=redis_prefix)
    await cache.set("s:1", "v", b"x", variant="a")
    await cache.set("s:1", "v", b"y", variant="b")
    keys = [k async for k in redis_client.scan_iter(match=redis_prefix + "*")]
    assert keys == [f"{redis_prefix}ctx:s:1".encode()]
    await cache.invalidate("s:1")
    assert await redis_client.exists(f"{redis_prefix}ctx:s:1") == 0


async def test_unreachable_redis_is_a_typed_error() -> None:
    cache = RedisContextCache.from_url("redis://127.0.0.1:1/0")
    try:
        with pytest.raises(BackendUnavailableError, match="Redis unavailable during cache get"):
            await cache.get("s", "v")
    finally:
        await cache.close()


async def test_open_cache_follows_the_settings(redis_prefix: str) -> None:
    in_process = open_cache(Settings(redis_url=None, context_cache_entries=7))
    assert isinstance(in_process, InProcessContextCache)
    assert in_process.max_entries == 7
    redis_cache = open_cache(
        Settings(redis_url="redis://127.0.0.1:6379/0", redis_key_prefix=redis_prefix),
        codec=ZlibCodec(),
        codec_tag="zlib",
    )
    async with redis_cache:
        assert isinstance(redis_cache, RedisContextCache)
        assert redis_cache.key("s") == f"{redis_prefix}ctx:s"
        await redis_cache.set("s", "v", b"x")
        assert await redis_cache.get("s", "v") == b"x"


# --- the store invalidates Redis on every write -----------------------------------------------
async def test_store_writes_invalidate_redis(
    store_config: dict[str, Any], redis_client: Any, redis_prefix: str
) -> None:
    cache = RedisContextCache(redis_client, key_prefix=redis_prefix)
    clock = FakeClock()
    async with build_store(store_config, clock=clock, cache=cache) as store:
        session = await store.create_session("s", "alice", ttl_seconds=10)
        key = f"{redis_prefix}ctx:s"
        await cache.set("s", session.cache_version, b"window")
        await store.append("s", NewMessage(MessageRole.USER, "hi"))
        assert await redis_client.exists(key) == 0
        current = await store.get_session("s")
        assert current is not None
        await cache.set("s", current.cache_version, b"window")
        clock.advance(10)
        assert await store.expire_sessions() == 1  # the sweep drops cached windows too
        assert await redis_client.exists(key) == 0


async def test_a_cache_outage_does_not_fail_committed_writes(
    store_config: dict[str, Any],
) -> None:
    """Invalidation is best effort: versioned entries make a missed one harmless."""
    cache = RedisContextCache.from_url("redis://127.0.0.1:1/0")
    async with build_store(store_config, cache=cache) as store:
        await store.create_session("s", "alice")
        stored = await store.append("s", NewMessage(MessageRole.USER, "kept"))
        assert [m.content for m in await store.list_messages("s")] == ["kept"]
        assert stored.seq == 1
    await cache.close()
