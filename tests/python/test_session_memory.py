"""What the engine keeps of sessions in memory is bounded by bytes (``context_memory_max_bytes``),
not by a number of sessions, and a session evicted from it gives the very same windows (it is
read from the store again)."""

from __future__ import annotations

import dataclasses
import gc
import random
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from relay_context.config.settings import Settings
from relay_context.core.context_engine import ContextEngine
from relay_context.engine.session_memory import SessionMemory, message_footprint
from relay_context.errors import InvalidArgumentError

WORDS = [
    "context",
    "window",
    "token",
    "budget",
    "session",
    "message",
    "relay",
    "gateway",
    "stream",
    "cache",
]


def settings_for(tmp_path: Path, **overrides: Any) -> Settings:
    # No window cache: every window below is computed from the messages, not read back.
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path / 'relay.db'}",
        "redis_url": None,
        "context_cache_entries": 0,
    }
    values.update(overrides)
    return Settings(**values)


def text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def test_lru_by_bytes_keeps_many_small_or_few_large_entries() -> None:
    evicted: list[str] = []
    memory: SessionMemory[str] = SessionMemory(1000, on_evict=evicted.append)
    for i in range(20):
        memory.put(f"small{i}", "x", 40)  # 20 x 40 = 800 bytes: all fit
    assert len(memory) == 20
    assert memory.total_bytes == 800
    assert memory.get("small0") == "x"  # now the most recent: "small1" is the oldest
    memory.put("large", "y", 600)
    # 800 + 600 > 1000: the least recently used small ones went, until the total fits.
    assert memory.total_bytes <= 1000
    assert evicted == [f"small{i}" for i in range(1, 11)]
    assert "small0" in memory
    assert "large" in memory
    memory.put("large2", "z", 700)  # two large ones do not fit together
    assert memory.total_bytes <= 1000
    assert "large" not in memory
    assert list(memory)[-1] == "large2"


def test_the_entry_just_used_stays_even_alone_over_the_bound() -> None:
    memory: SessionMemory[int] = SessionMemory(100)
    memory.put("a", 1, 50)
    memory.put("huge", 2, 500)
    assert list(memory) == ["huge"]  # "a" is evicted, "huge" is what is in use
    assert memory.total_bytes == 500
    memory.put("a", 1, 50)
    assert list(memory) == ["a"]
    assert memory.total_bytes == 50
    memory.forget("a")
    assert len(memory) == 0
    assert memory.total_bytes == 0
    with pytest.raises(InvalidArgumentError):
        SessionMemory(-1)


async def test_engine_memory_is_bounded_by_bytes_not_sessions(tmp_path: Path) -> None:
    bound = 1024 * 1024
    rng = random.Random(3)
    async with ContextEngine(settings_for(tmp_path, context_memory_max_bytes=bound)) as engine:
        memory = engine.session_memory

        async def grow(prefix: str, sessions: int, messages: int, words: int) -> None:
            for i in range(messages):
                for k in range(sessions):
                    await engine.add_message(f"{prefix}{k}", "user", text(rng, words))
                    if i % 5 == 4:
                        await engine.get_context(f"{prefix}{k}", budget=500)
                    assert memory.total_bytes <= bound
                    # The planner keeps nothing of a session the engine dropped.
                    planned = {sid for sid, _ in engine.planner._plans}
                    tracked = {sid for sid, _ in engine.planner.dedup._trackers}
                    assert planned <= set(memory)
                    assert tracked <= set(memory)

        await grow("short", 30, 4, 5)  # 30 sessions of 4 short messages (~17 KiB each): all fit
        assert sum(sid.startswith("short") for sid in memory) == 30
        await grow("long", 6, 40, 200)  # 6 sessions of 40 long messages: ~3 fit (~340 KiB each)
        assert memory.evictions > 0
        kept = list(memory)
        assert 2 <= len(kept) <= 4
        assert not any(sid.startswith("short") for sid in kept)
        # What is counted is the messages kept: each session's footprint, summed.
        expected = 0
        for sid in kept:
            expected += sum(map(message_footprint, await engine.messages(sid)))
        assert memory.total_bytes == expected


async def test_evicted_sessions_give_identical_windows(tmp_path: Path) -> None:
    """One engine with room for ~1 session, one with room for all, on the same store: at every
    point, the same windows (the tight one re-reads the sessions it evicted)."""
    rng = random.Random(11)
    sessions = [f"s{k}" for k in range(8)]
    tight = settings_for(tmp_path, context_memory_max_bytes=20 * 1024)
    roomy = settings_for(tmp_path, context_memory_max_bytes=64 * 1024 * 1024)
    async with ContextEngine(tight) as engine, ContextEngine(roomy) as reference:
        compared = 0
        for turn in range(12):
            for sid in sessions:
                role = "user" if turn % 2 == 0 else "assistant"
                await engine.add_message(sid, role, text(rng, 25 + turn))
                if turn % 3 == 2:
                    # Near-duplicates too, so that collapse (the dedup index) is exercised.
                    await engine.add_message(sid, "user", "please retry the failing test now")
            for sid in sessions:
                for budget, policy in ((300, "knapsack"), (800, "recent")):
                    window = await engine.get_context(sid, budget=budget, policy=policy)
                    expected = await reference.get_context(sid, budget=budget, policy=policy)
                    # The C++ drift sums run in hash-table order, which differs between
                    # tables: drift agrees to rounding only (as between two fresh engines).
                    assert window.drift_score == pytest.approx(expected.drift_score, abs=1e-12)
                    assert dataclasses.replace(window, drift_score=expected.drift_score) == expected
                    assert window.to_openai() == expected.to_openai()
                    compared += 1
        assert compared == 12 * 8 * 2
        assert engine.session_memory.evictions > 50
        assert reference.session_memory.evictions == 0
        assert len(reference.session_memory) == len(sessions)
        assert any(w.deduplicated_seqs for w in [await engine.get_context("s0", budget=4000)])


async def test_bound_limits_the_memory_actually_held(tmp_path: Path) -> None:
    """The estimate is what bounds real allocations: Python memory held after long sessions,
    traced, with a tight bound against a roomy one (same messages, same store)."""

    async def held(bound: int, prefix: str) -> int:
        rng = random.Random(5)
        async with ContextEngine(settings_for(tmp_path, context_memory_max_bytes=bound)) as e:
            await e.add_message(f"{prefix}warm", "user", "hello")
            await e.get_context(f"{prefix}warm", budget=500)
            gc.collect()
            tracemalloc.start()
            try:
                before = tracemalloc.get_traced_memory()[0]
                for i in range(60):
                    for k in range(10):
                        await e.add_message(f"{prefix}{k}", "user", text(rng, 120))
                        if i % 10 == 9:
                            await e.get_context(f"{prefix}{k}", budget=500)
                gc.collect()
                return tracemalloc.get_traced_memory()[0] - before
            finally:
                tracemalloc.stop()

    tight = await held(256 * 1024, "t")
    roomy = await held(256 * 1024 * 1024, "r")
    # 600 messages of ~800 characters: MiBs kept with room, a fraction of that with the bound.
    assert roomy > 1024 * 1024, roomy
    assert tight < 512 * 1024, tight
    assert tight * 4 < roomy, (tight, roomy)


def test_messages_footprint_is_the_sum_of_each_message() -> None:
    from datetime import datetime, timezone

    from relay_context.engine.models import MessageRole, stored_message
    from relay_context.engine.session_memory import messages_footprint

    at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    messages = [
        stored_message("s", i + 1, MessageRole.USER, text, at, None, None, (), {}, {})
        for i, text in enumerate(["", "a", "é" * 40, "\U0001f600" * 3, "plain words " * 50])
    ]
    expected = sum(message_footprint(m) for m in messages)
    assert messages_footprint(messages) == expected
    assert messages_footprint(iter(messages)) == expected  # any iterable, read once
    assert messages_footprint(m for m in messages[:0]) == 0
