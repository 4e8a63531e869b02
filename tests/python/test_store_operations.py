"""Every SessionStore operation, on the real SQLite and the real PostgreSQL (same tests)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any

import pytest

from engine_support import FakeClock, build_store
from relay_context.engine.cache import InProcessContextCache
from relay_context.engine.models import MessageRole, NewMessage, ToolCall
from relay_context.engine.store.sql import SqlSessionStore
from relay_context.errors import (
    CorruptFrameError,
    InputTypeError,
    InvalidArgumentError,
    InvalidSessionIdError,
    MessageTooLargeError,
    SessionExistsError,
    SessionNotFoundError,
    StoreError,
)


def user(text: str, **fields: Any) -> NewMessage:
    return NewMessage(MessageRole.USER, text, **fields)


async def raw_rows(store: SqlSessionStore, sql: str, *args: Any) -> list[Any]:
    async with store._read() as tx:
        return await tx.fetch(sql, *args)


# --- sessions ---------------------------------------------------------------------------------
async def test_create_and_get(store: SqlSessionStore, clock: FakeClock) -> None:
    created = await store.create_session("chat-1", "alice", metadata={"title": "hi"})
    assert created.owner == "alice"
    assert created.ttl_seconds == store.default_ttl_seconds == 3600
    assert created.last_seq == 0
    assert (created.expires_at - created.updated_at).total_seconds() == 3600
    assert created.metadata == {"title": "hi"}
    assert await store.get_session("chat-1") == created
    assert await store.get_session("chat-2") is None


async def test_create_twice_fails_but_ensure_returns_the_existing(store: SqlSessionStore) -> None:
    first = await store.create_session("s", "alice", ttl_seconds=60)
    with pytest.raises(SessionExistsError, match="'s' already exists"):
        await store.create_session("s", "bob")
    # ensure_session does not change an existing session, whoever asks.
    assert await store.ensure_session("s", "bob", ttl_seconds=5) == first
    created = await store.ensure_session("t", "bob", ttl_seconds=5)
    assert (created.owner, created.ttl_seconds) == ("bob", 5)


async def test_invalid_arguments_are_typed(store: SqlSessionStore) -> None:
    with pytest.raises(InvalidSessionIdError):
        await store.create_session("no spaces", "alice")
    with pytest.raises(InvalidArgumentError, match="owner is empty"):
        await store.create_session("s", "")
    with pytest.raises(InvalidArgumentError, match="ttl_seconds"):
        await store.create_session("s", "alice", ttl_seconds=0)
    with pytest.raises(InvalidArgumentError, match="not JSON-serializable"):
        await store.create_session("s", "alice", metadata={"x": {1, 2}})
    await store.create_session("s", "alice")
    with pytest.raises(InputTypeError, match="sequence of NewMessage"):
        await store.append_many("s", user("x"))  # type: ignore[arg-type]
    with pytest.raises(InputTypeError, match="expected a NewMessage"):
        await store.append("s", {"role": "user", "content": "x"})  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="limit must be >= 1"):
        await store.list_sessions("alice", limit=0)
    with pytest.raises(InvalidArgumentError, match="start_seq"):
        await store.list_messages("s", start_seq=-1)


async def test_delete(store: SqlSessionStore) -> None:
    await store.create_session("s", "alice")
    await store.append("s", user("hello"))
    assert await store.delete_session("s") is True
    assert await store.get_session("s") is None
    assert await store.delete_session("s") is False
    assert await raw_rows(store, "SELECT seq FROM relay_messages WHERE session_id = $1", "s") == []
    # A re-created session starts over, under a new incarnation.
    again = await store.create_session("s", "alice")
    assert (await store.append("s", user("again"))).seq == 1
    assert [m.content for m in await store.list_messages("s")] == ["again"]
    assert again.incarnation


async def test_list_sessions_by_owner(store: SqlSessionStore, clock: FakeClock) -> None:
    for name in ("a", "b", "c"):
        await store.create_session(name, "alice")
        clock.advance(1)
    await store.create_session("other", "bob")
    clock.advance(1)
    await store.append("a", user("bump"))  # "a" is now the most recently updated
    assert [s.id for s in await store.list_sessions("alice")] == ["a", "c", "b"]
    assert [s.id for s in await store.list_sessions("alice", limit=2, offset=1)] == ["c", "b"]
    assert [s.id for s in await store.list_sessions("bob")] == ["other"]
    assert await store.list_sessions("carol") == []


# --- messages ---------------------------------------------------------------------------------
async def test_append_assigns_consecutive_seqs(store: SqlSessionStore) -> None:
    await store.create_session("s", "alice")
    first = await store.append("s", user("one"))
    batch = await store.append_many("s", [user("two"), user("three")])
    assert [first.seq, *(m.seq for m in batch)] == [1, 2, 3]
    assert await store.count_messages("s") == 3
    session = await store.get_session("s")
    assert session is not None
    assert (session.last_seq, session.revision) == (3, 2)
    assert await store.append_many("s", []) == []


async def test_a_message_round_trips_field_for_field(store: SqlSessionStore) -> None:
    await store.create_session("s", "alice")
    call = ToolCall(id="call_1", name="search", arguments='{"q": "zstd"}')
    when = datetime(2026, 5, 6, 7, 8, 9, 123_456, tzinfo=timezone.utc)
    sent = [
        NewMessage(MessageRole.SYSTEM, "You are terse.", token_counts={"o200k_base": 4}),
        NewMessage(MessageRole.ASSISTANT, "", tool_calls=(call,), metadata={"k": [1, None]}),
        NewMessage(
            MessageRole.TOOL, "Ünïcödé ✓ 🚀\x00 and NUL", tool_call_id="call_1", name="search"
        ),
        NewMessage(MessageRole.USER, "then", created_at=when),
    ]
    stored = await store.append_many("s", sent)
    listed = await store.list_messages("s")
    assert listed == stored
    for message, original in zip(listed, sent, strict=True):
        for field in ("role", "content", "name", "tool_call_id", "tool_calls", "metadata"):
            assert getattr(message, field) == getattr(original, field)
        assert message.token_counts == original.token_counts
        assert message.session_id == "s"
    assert listed[3].created_at == when


async def test_ranges_limits_and_the_tail(store: SqlSessionStore) -> None:
    await store.create_session("s", "alice")
    await store.append_many("s", [user(f"m{i}") for i in range(1, 11)])

    async def seqs(**kwargs: Any) -> list[int]:
        return [m.seq for m in await store.list_messages("s", **kwargs)]

    assert await seqs() == list(range(1, 11))
    assert await seqs(start_seq=4, end_seq=6) == [4, 5, 6]
    assert await seqs(limit=3) == [1, 2, 3]
    assert await seqs(limit=3, newest=True) == [8, 9, 10]
    assert await seqs(start_seq=2, end_seq=5, limit=2, newest=True) == [4, 5]
    assert await seqs(start_seq=11) == []
    assert await seqs(limit=0) == []


async def test_delete_old_messages(store: SqlSessionStore) -> None:
    await store.create_session("s", "alice")
    await store.append_many("s", [user(f"m{i}") for i in range(1, 6)])
    before = await store.get_session("s")
    assert await store.delete_messages("s", before_seq=4) == 3
    assert [m.seq for m in await store.list_messages("s")] == [4, 5]
    assert await store.count_messages("s") == 2
    after = await store.get_session("s")
    assert before is not None
    assert after is not None
    assert after.cache_version != before.cache_version
    assert (await store.append("s", user("next"))).seq == 6  # seqs are never reused
    assert await store.delete_messages("s", before_seq=1) == 0
    with pytest.raises(InvalidArgumentError, match="before_seq"):
        await store.delete_messages("s", before_seq=0)


async def test_ping(store: SqlSessionStore) -> None:
    await store.ping()


async def test_operations_on_a_missing_session(store: SqlSessionStore) -> None:
    for operation in (
        store.append("ghost", user("x")),
        store.list_messages("ghost"),
        store.list_messages("ghost", limit=0),
        store.count_messages("ghost"),
        store.touch_session("ghost"),
        store.delete_messages("ghost", before_seq=3),
    ):
        with pytest.raises(SessionNotFoundError, match="'ghost'"):
            await operation


async def test_size_limit_and_atomic_batches(
    store_config: dict[str, Any], clock: FakeClock
) -> None:
    async with build_store(store_config, clock=clock, max_message_bytes=100) as store:
        await store.create_session("s", "alice")
        await store.append("s", user("x" * 100))  # exactly at the limit
        with pytest.raises(MessageTooLargeError, match=r"101 bytes.*100"):
            await store.append_many("s", [user("fine"), user("é" * 50 + "x")])
        assert await store.count_messages("s") == 1  # nothing of the failed batch was written


async def test_content_is_stored_compressed_with_its_codec_tag(store: SqlSessionStore) -> None:
    await store.create_session("s", "alice")
    long_text = "The quick brown fox jumps over the lazy dog. " * 200
    await store.append_many("s", [user(long_text), user("hi")])
    rows = await raw_rows(
        store,
        "SELECT seq, codec, content_size, LENGTH(content) FROM relay_messages ORDER BY seq",
    )
    (_, codec1, size1, stored1), (_, codec2, size2, stored2) = rows
    assert (codec1, size1) == ("zlib", len(long_text))
    assert stored1 < size1 / 10
    # Two bytes do not compress: stored raw, and tagged so.
    assert (codec2, size2, stored2) == ("raw", 2, 2)
    assert (await store.list_messages("s"))[0].content == long_text


async def test_rows_name_their_codec(store_config: dict[str, Any], clock: FakeClock) -> None:
    """A store without the codec a row was written with refuses it with a clear error, and
    reads it once the codec is registered for reading."""
    async with build_store(store_config, clock=clock) as store:
        await store.create_session("s", "alice")
        await store.append("s", user("compress me " * 100))
    async with build_store(store_config, clock=clock, codec=None, codec_tag=None) as plain:
        with pytest.raises(CorruptFrameError, match="codec 'zlib', which is not registered"):
            await plain.list_messages("s")
        await plain.append("s", user("plain " * 100))  # written raw
    from engine_support import ZlibCodec

    async with build_store(
        store_config, clock=clock, codec=None, codec_tag=None, read_codecs={"zlib": ZlibCodec()}
    ) as reader:
        contents = [m.content for m in await reader.list_messages("s")]
        assert contents == ["compress me " * 100, "plain " * 100]


async def test_rows_of_the_zstd_engine_are_read_in_one_batch(
    store_config: dict[str, Any], clock: FakeClock
) -> None:
    """The engine's own codec restores a session's compressed rows in one call; raw rows,
    compressed ones and a codec without a batch call mix, and a bad row is still named."""
    from relay_context.core.compression import CompressionEngine

    zstd = CompressionEngine()
    texts = [f"message {i} " + "about the tables and the budget " * (i % 7) for i in range(60)]
    async with build_store(store_config, clock=clock, codec=zstd, codec_tag="zstd") as store:
        await store.create_session("s", "alice")
        await store.append_many("s", [user(t) for t in texts[:40]])
    # This one writes zlib (a codec without a batch call: its rows are read one by one).
    async with build_store(store_config, clock=clock, read_codecs={"zstd": zstd}) as store:
        await store.append_many("s", [user(t) for t in texts[40:]])
        assert [m.content for m in await store.list_messages("s")] == texts
        codecs = {row[0] for row in await raw_rows(store, "SELECT codec FROM relay_messages")}
        assert codecs == {"raw", "zstd", "zlib"}
        # A frame whose text is not UTF-8, among good ones: the error names its row.
        bad = zstd.compress(b"\xff\xfe not text")
        async with store._write() as tx:
            await tx.execute(
                "UPDATE relay_messages SET content = $1, content_size = $2 WHERE seq = 12",
                bad,
                len(b"\xff\xfe not text"),
            )
        with pytest.raises(StoreError, match="message s#12 is not UTF-8"):
            await store.list_messages("s")
        async with store._write() as tx:
            await tx.execute(
                "UPDATE relay_messages SET content = $1, content_size = 3 WHERE seq = 12",
                zstd.compress(texts[11]),
            )
        with pytest.raises(CorruptFrameError, match="where 3 were stored"):
            await store.list_messages("s")


async def test_concurrent_appends_in_one_process(store: SqlSessionStore) -> None:
    await store.create_session("s", "alice")
    results = await asyncio.gather(*(store.append("s", user(f"m{i}")) for i in range(40)))
    assert sorted(m.seq for m in results) == list(range(1, 41))
    listed = await store.list_messages("s")
    assert {m.content for m in listed} == {f"m{i}" for i in range(40)}
    by_content = {m.content: m.seq for m in results}
    assert all(by_content[m.content] == m.seq for m in listed)


# --- TTL --------------------------------------------------------------------------------------
async def test_sessions_expire_after_their_ttl(store: SqlSessionStore, clock: FakeClock) -> None:
    await store.create_session("s", "alice", ttl_seconds=10)
    await store.append("s", user("hello"))
    clock.advance(9)
    touched = await store.touch_session("s")  # the TTL restarts from here
    assert (touched.expires_at - touched.updated_at).total_seconds() == 10
    clock.advance(9)
    await store.append("s", user("still here"))  # appends restart it too
    clock.advance(9.999)
    assert await store.get_session("s") is not None
    clock.advance(0.001)
    # Expired: invisible everywhere, before any sweep.
    assert await store.get_session("s") is None
    assert await store.list_sessions("alice") == []
    with pytest.raises(SessionNotFoundError):
        await store.append("s", user("too late"))
    with pytest.raises(SessionNotFoundError):
        await store.list_messages("s")
    assert await store.delete_session("s") is False


async def test_the_sweep_purges_expired_sessions_and_their_messages(
    store: SqlSessionStore, clock: FakeClock
) -> None:
    for i in range(5):
        await store.create_session(f"old{i}", "alice", ttl_seconds=10)
        await store.append_many(f"old{i}", [user("a"), user("b")])
    await store.create_session("young", "alice", ttl_seconds=100)
    await store.append("young", user("keep"))
    clock.advance(11)
    assert await store.expire_sessions(limit=2) == 2
    assert await store.expire_sessions() == 3
    assert await store.expire_sessions() == 0
    assert [r[0] for r in await raw_rows(store, "SELECT id FROM relay_sessions")] == ["young"]
    assert [r[0] for r in await raw_rows(store, "SELECT session_id FROM relay_messages")] == [
        "young"
    ]


async def test_an_expired_id_can_be_created_again_and_starts_empty(
    store: SqlSessionStore, clock: FakeClock
) -> None:
    old = await store.create_session("s", "alice", ttl_seconds=10)
    await store.append_many("s", [user("a"), user("b")])
    clock.advance(10)
    new = await store.create_session("s", "bob")  # before any sweep
    assert new.owner == "bob"
    assert new.incarnation != old.incarnation
    assert await store.count_messages("s") == 0
    assert (await store.append("s", user("fresh"))).seq == 1


# --- the cache is invalidated by writes -------------------------------------------------------
async def test_writes_invalidate_cached_windows(
    store_config: dict[str, Any], clock: FakeClock
) -> None:
    cache = InProcessContextCache(16)
    async with build_store(store_config, clock=clock, cache=cache) as store:
        session = await store.create_session("s", "alice")
        await cache.set("s", session.cache_version, b"window v0")
        stored = await store.append("s", user("hello"))
        assert len(cache) == 0
        after = await store.get_session("s")
        assert after is not None
        assert after.cache_version != session.cache_version
        # A window built before the write but stored after it is never served.
        await cache.set("s", session.cache_version, b"stale")
        assert await cache.get("s", after.cache_version) is None
        await cache.set("s", after.cache_version, b"window v1")
        await store.touch_session("s")  # no change to the messages: the window stays valid
        assert await cache.get("s", after.cache_version) == b"window v1"
        await store.delete_session("s")
        assert len(cache) == 0
        assert stored.seq == 1


async def test_large_content_round_trips(store: SqlSessionStore) -> None:
    """Content past the size compressed in a worker thread (300 KB here), up to the limit."""
    await store.create_session("s", "alice")
    large = "".join(f"line {i}: some repeated context\n" for i in range(10_000))
    assert len(large) > 256 * 1024
    stored = await store.append("s", user(large))
    (listed,) = await store.list_messages("s")
    assert listed.content == large
    assert stored.seq == listed.seq == 1
    rows = await raw_rows(store, "SELECT codec, LENGTH(content) FROM relay_messages")
    assert rows[0][0] == "zlib"
    assert rows[0][1] < len(large) / 5


def test_stored_tool_calls_read_back_equal_the_validated_ones() -> None:
    from relay_context.engine.models import stored_tool_call

    call = ToolCall(id="call_1", name="get_weather", arguments='{"city": "Paris"}')
    assert stored_tool_call(call.to_openai()) == call
    assert stored_tool_call({"id": "c", "function": {"name": "f"}}) == ToolCall("c", "f", "")
    # Not the stored shape: the validating path says what is wrong.
    with pytest.raises(InvalidArgumentError, match="no 'function' object"):
        stored_tool_call({"id": "c"})
    with pytest.raises(InputTypeError, match="mapping"):
        stored_tool_call(["not", "a", "call"])  # type: ignore[arg-type]
