"""The session totals the route answers after an append come from the engine's memory when it
followed the session; they must equal a full recount whatever else wrote to the session."""

from __future__ import annotations

import asyncio
from typing import Any

from engine_support import engine_settings
from relay_context.config.settings import Settings
from relay_context.core.context_engine import ContextEngine


async def recount(settings: Settings, session_id: str) -> tuple[int, int]:
    async with ContextEngine(settings) as fresh:  # remembers nothing: reads everything
        return await fresh.totals(session_id)


async def test_totals_after_concurrent_appends_equal_a_recount(
    store_config: dict[str, Any],
) -> None:
    settings = engine_settings(store_config)
    async with ContextEngine(settings) as engine:

        async def add(i: int) -> tuple[int, int, int]:
            stored = await engine.add_message(
                "hot", "user" if i % 2 else "assistant", f"message number {i} " * (1 + i % 5)
            )
            count, tokens = await engine.totals("hot", since=stored)
            return stored.seq, count, tokens

        answers = await asyncio.gather(*(add(i) for i in range(120)))
        for seq, count, _ in answers:
            assert count >= seq  # a state that includes this append
        assert max(a[1:] for a in answers) == await recount(settings, "hot")
        assert await engine.totals("hot") == await recount(settings, "hot")


async def test_totals_stay_exact_when_another_engine_writes_between(
    store_config: dict[str, Any],
) -> None:
    settings = engine_settings(store_config)
    async with ContextEngine(settings) as mine, ContextEngine(settings) as other:
        for i in range(30):
            writer = mine if i % 3 else other  # the other stands for another process
            stored = await writer.add_message("shared", "user", f"turn {i} " * (i % 4 + 1))
            if writer is mine:
                assert await mine.totals("shared", since=stored) == await recount(
                    settings, "shared"
                )
        # A prefix deleted elsewhere, then appends here: the remembered tokens follow.
        await other.store.delete_messages("shared", before_seq=11)
        stored = await mine.add_message("shared", "assistant", "after the delete")
        assert await mine.totals("shared", since=stored) == await recount(settings, "shared")
        stored = await mine.add_message("shared", "user", "and one more")
        assert await mine.totals("shared", since=stored) == await recount(settings, "shared")
        assert (await mine.totals("shared"))[0] == 22


async def test_totals_stay_exact_when_sessions_are_forgotten_under_load(
    store_config: dict[str, Any],
) -> None:
    """More sessions than the engine remembers: entries are dropped mid-stream and rebuilt from
    a read plus the appends made meanwhile."""
    # About two sessions of 30 short messages (~2 KiB each as the engine counts them).
    settings = engine_settings(store_config, context_memory_max_bytes=128 * 1024)
    async with ContextEngine(settings) as engine:

        async def add(i: int) -> tuple[str, int, int, int]:
            sid = f"s{i % 5}"
            stored = await engine.add_message(sid, "user", f"turn {i} " * (1 + i % 3))
            count, tokens = await engine.totals(sid, since=stored)
            return sid, stored.seq, count, tokens

        answers = await asyncio.gather(*(add(i) for i in range(150)))
        for sid in {a[0] for a in answers}:
            final = await recount(settings, sid)
            assert max(a[2:] for a in answers if a[0] == sid) <= final
            assert await engine.totals(sid) == final
        for _, seq, count, _ in answers:
            assert count >= seq
        assert engine.session_memory.evictions > 0  # the bound was reached: entries were dropped
