"""Appends with an idempotency key: a retry returns the first message, concurrent retries store
one message, another message under a used key is refused — on both back-ends."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from engine_support import build_store
from relay_context.engine.context_engine import ContextEngine
from relay_context.engine.models import MessageRole, NewMessage
from relay_context.errors import IdempotencyKeyReusedError, InvalidArgumentError

HELLO = NewMessage(MessageRole.USER, "hello", metadata={"k": 1})


async def test_a_retry_returns_the_first_message(store_config: dict[str, Any]) -> None:
    async with build_store(store_config) as store:
        await store.create_session("s", "alice")
        first, replayed = await store.append_once(
            "s", HELLO, request_key="k1", fingerprint=HELLO.fingerprint()
        )
        assert (first.seq, replayed) == (1, False)
        again, replayed = await store.append_once(
            "s", HELLO, request_key="k1", fingerprint=HELLO.fingerprint()
        )
        assert replayed is True
        assert again == first
        assert await store.count_messages("s") == 1
        # Keys are per session: the same key elsewhere is another request.
        await store.create_session("t", "alice")
        other, replayed = await store.append_once(
            "t", HELLO, request_key="k1", fingerprint=HELLO.fingerprint()
        )
        assert (other.session_id, other.seq, replayed) == ("t", 1, False)


async def test_concurrent_retries_store_one_message(store_config: dict[str, Any]) -> None:
    async with build_store(store_config) as store:
        await store.create_session("s", "alice")
        results = await asyncio.gather(
            *(
                store.append_once("s", HELLO, request_key="same", fingerprint=HELLO.fingerprint())
                for _ in range(12)
            )
        )
        assert {m.seq for m, _ in results} == {1}
        assert sorted(replayed for _, replayed in results) == [False] + [True] * 11
        assert await store.count_messages("s") == 1


async def test_another_message_under_a_used_key_is_refused(store_config: dict[str, Any]) -> None:
    async with build_store(store_config) as store:
        await store.create_session("s", "alice")
        await store.append_once("s", HELLO, request_key="k", fingerprint=HELLO.fingerprint())
        other = NewMessage(MessageRole.USER, "goodbye")
        with pytest.raises(IdempotencyKeyReusedError, match="'k' was first used with a different"):
            await store.append_once("s", other, request_key="k", fingerprint=other.fingerprint())
        with pytest.raises(InvalidArgumentError, match="printable ASCII"):
            await store.append_once("s", other, request_key="a b", fingerprint="x")
        assert await store.count_messages("s") == 1


def test_the_fingerprint_covers_what_the_message_says() -> None:
    assert (
        HELLO.fingerprint()
        == NewMessage(MessageRole.USER, "hello", metadata={"k": 1}).fingerprint()
    )
    assert HELLO.fingerprint() != NewMessage(MessageRole.USER, "hello").fingerprint()
    assert (
        HELLO.fingerprint()
        != NewMessage(MessageRole.ASSISTANT, "hello", metadata={"k": 1}).fingerprint()
    )
    # Token counts are the engine's bookkeeping, not the request.
    assert HELLO.fingerprint() == HELLO.with_token_counts({"o200k_base": 1}).fingerprint()


async def test_the_engine_publishes_a_replayed_append_once(
    store_config: dict[str, Any], tmp_path: Any
) -> None:
    from relay_context.config.settings import Settings

    async with build_store(store_config) as store:
        engine = ContextEngine(Settings(data_dir=tmp_path), store=store)
        async with engine:
            a = await engine.add_message("s", "user", "hi", request_key="r1")
            b = await engine.add_message("s", "user", "hi", request_key="r1")
            assert a == b
            seen = []
            async for message in engine.subscribe("s"):
                seen.append(message.seq)
                break
            assert seen == [1]
            assert len(await engine.messages("s")) == 1
