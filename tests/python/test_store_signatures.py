"""Near-duplicate signatures stored with each message (session schema version 3), on SQLite and
PostgreSQL: made at append, read back, and back-filled for rows of an older schema, which
give the same windows as rows stored with them."""

from __future__ import annotations

from typing import Any

import pytest

from conversation_support import conversation
from engine_support import engine_settings
from relay_context.config.settings import Settings
from relay_context.core.context_engine import ContextEngine
from relay_context.engine.dedup import SIGNATURE_BYTES, signature
from relay_context.engine.models import MessageRole, StoredMessage
from test_context_engine_plan import comparable, with_repeats

QUERIES = (None, "how do I serialize the rate limiter")
POLICIES = ("knapsack", "recent", "summarize")


def turns() -> list[dict[str, Any]]:
    out = with_repeats(conversation(160, seed=21, tool_rate=0.1, pin_rate=0.02))
    # Word-for-word copies too (the exact-text rule), as a conversation repeats itself.
    for i in range(4, 80, 9):
        if out[i]["role"] in ("user", "assistant") and not out[i].get("tool_calls"):
            out.append(dict(out[i]))
    return out


def may_collapse(m: StoredMessage) -> bool:
    return m.role in (MessageRole.USER, MessageRole.ASSISTANT) and bool(m.content)


async def windows(settings: Settings, session: str) -> list[dict[str, Any]]:
    """Every policy's window for each query, from a new engine (nothing in memory)."""
    out = []
    async with ContextEngine(settings) as engine:
        for policy in POLICIES:
            for query in QUERIES:
                window = await engine.get_context(session, budget=3000, policy=policy, query=query)
                out.append(comparable(window.to_dict()))
    return out


async def stored_signatures(settings: Settings, session: str) -> dict[int, bytes | None]:
    async with ContextEngine(settings) as engine:
        return {m.seq: m.dedup_signature for m in await engine.messages(session)}


async def to_old_schema(engine: ContextEngine) -> None:
    """The database as the session store of schema version 2 left it: no signature column."""
    async with engine.store._write() as tx:  # type: ignore[attr-defined]
        await tx.execute("ALTER TABLE relay_messages DROP COLUMN dedup_signature")
        await tx.execute(
            "DELETE FROM relay_migrations WHERE component = 'sessions' AND version = 3"
        )


async def test_appends_store_signatures_and_reads_return_them(
    store_config: dict[str, Any],
) -> None:
    settings = engine_settings(store_config)
    async with ContextEngine(settings) as engine:
        for turn in turns()[:40]:
            added = await engine.add_message("sig", **turn)
            assert added.dedup_signature == signature(added.role, added.content)
        listed = await engine.messages("sig")
    assert any(m.role is MessageRole.TOOL for m in listed)
    for m in listed:
        if may_collapse(m):
            assert m.dedup_signature is not None
            assert len(m.dedup_signature) == SIGNATURE_BYTES
            assert m.dedup_signature == signature(m.role, m.content)
        else:  # tool results, system turns: nothing collapses them, nothing is signed
            assert m.dedup_signature is None


async def test_rows_of_the_old_schema_give_the_same_windows_and_are_back_filled(
    store_config: dict[str, Any],
) -> None:
    settings = engine_settings(store_config)
    async with ContextEngine(settings) as engine:
        for turn in turns():
            await engine.add_message("old", **turn)
    reference = await windows(settings, "old")  # from the signatures stored at append
    assert any(w["deduplicated_seqs"] for w in reference)  # near-duplicates were collapsed
    async with ContextEngine(settings) as engine:
        await to_old_schema(engine)

    # Reopened by this Relay: migrated again (the column is back, empty for every old row).
    async with ContextEngine(settings) as engine:
        assert await engine.store.schema_version() == 3
        old_rows = await engine.messages("old")
    assert all(m.dedup_signature is None for m in old_rows)
    assert sum(map(may_collapse, old_rows)) > 100
    assert await windows(settings, "old") == reference

    # The first windows wrote the signatures back: the next engine reads them, same windows.
    back_filled = await stored_signatures(settings, "old")
    for m in old_rows:
        assert back_filled[m.seq] == signature(m.role, m.content)
    assert await windows(settings, "old") == reference

    # A damaged signature (not this index's size) is made again, not trusted.
    async with ContextEngine(settings) as engine, engine.store._write() as tx:  # type: ignore[attr-defined]
        await tx.execute(
            "UPDATE relay_messages SET dedup_signature = $1 WHERE session_id = 'old'",
            b"\x00\x01",
        )
    assert await windows(settings, "old") == reference


async def test_a_window_of_signed_rows_equals_one_of_unsigned_messages(
    store_config: dict[str, Any],
) -> None:
    """The window from the store (signatures read) equals build_window over the same messages
    without any signature (each text signed in the batch)."""
    settings = engine_settings(store_config)
    async with ContextEngine(settings) as engine:
        for turn in turns():
            await engine.add_message("s", **turn)
        listed = await engine.messages("s")
    assert all(m.dedup_signature is not None for m in listed if may_collapse(m))
    unsigned = [
        StoredMessage(
            session_id=m.session_id,
            seq=m.seq,
            role=m.role,
            content=m.content,
            created_at=m.created_at,
            name=m.name,
            tool_call_id=m.tool_call_id,
            tool_calls=m.tool_calls,
            metadata=m.metadata,
            token_counts=m.token_counts,
        )
        for m in listed
    ]
    for policy in POLICIES:
        async with ContextEngine(settings) as engine:
            from_store = await engine.get_context("s", budget=3000, policy=policy)
        built = await ContextEngine(settings).build_window(
            "s", unsigned, budget=3000, model=engine.model, policy=policy
        )
        assert comparable(built.to_dict()) == comparable(from_store.to_dict())


@pytest.mark.parametrize("bad", ["text", 5])
async def test_store_signatures_refuses_what_is_not_bytes(
    store_config: dict[str, Any], bad: object
) -> None:
    from relay_context.errors import InputTypeError

    settings = engine_settings(store_config)
    async with ContextEngine(settings) as engine:
        await engine.add_message("s", "user", "hello there")
        with pytest.raises(InputTypeError, match="signature must be bytes"):
            await engine.store.store_signatures("s", {1: bad})  # type: ignore[dict-item]
        assert await engine.store.store_signatures("s", {}) == 0
