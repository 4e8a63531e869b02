"""The recent policy: system prompt + last N past the threshold, per-message token cap."""

from __future__ import annotations

from conversation_support import conversation, stored
from relay_context import TokenCounter
from relay_context.engine.policies.recent import TRUNCATION_MARKER
from test_policies import check_window, make_engine


async def test_below_threshold_keeps_everything_that_fits() -> None:
    engine = make_engine(recent_threshold_tokens=100_000, dedup_threshold=1.01)
    messages = stored(conversation(40, seed=1))
    window = await engine.build_window(
        "conv-test", messages, budget=50_000, model="gpt-4o", policy="recent"
    )
    assert window.kept_seqs == tuple(m.seq for m in messages)


async def test_past_threshold_keeps_system_and_last_n() -> None:
    engine = make_engine(recent_threshold_tokens=500, recent_keep_messages=7, dedup_threshold=1.01)
    messages = stored(conversation(60, seed=2, tool_rate=0.0))
    window = await engine.build_window(
        "conv-test", messages, budget=50_000, model="gpt-4o", policy="recent"
    )
    check_window(window, messages, 50_000)
    assert window.kept_seqs == (1, *range(54, 61))
    assert window.messages[0].role.value == "system"


async def test_budget_drops_the_oldest_first() -> None:
    engine = make_engine(dedup_threshold=1.01)
    messages = stored(conversation(40, seed=3, tool_rate=0.0))
    counter = TokenCounter("o200k_base")
    # Room for the system prompt and the last 5 messages exactly.
    tail = [messages[0].to_openai()] + [m.to_openai() for m in messages[-5:]]
    budget = counter.count_messages(tail)
    window = await engine.build_window(
        "conv-test", messages, budget=budget, model="gpt-4o", policy="recent"
    )
    check_window(window, messages, budget)
    assert window.kept_seqs[:1] == (1,)
    assert set(range(36, 41)) <= set(window.kept_seqs)
    assert window.tokens_used == budget or len(window.kept_seqs) > 6


async def test_long_message_is_truncated_on_a_token_boundary() -> None:
    engine = make_engine(max_message_tokens=200, dedup_threshold=1.01)
    turns = conversation(6, seed=4, tool_rate=0.0)
    long_text = " ".join(f"word{i} alpha beta" for i in range(600))
    turns[2]["content"] = long_text
    messages = stored(turns)
    window = await engine.build_window(
        "conv-test", messages, budget=10_000, model="gpt-4o", policy="recent"
    )
    check_window(window, messages, 10_000)
    (cut,) = [m for m in window.messages if m.truncated]
    counter = TokenCounter("o200k_base")
    assert cut.seq == 3
    assert cut.content.endswith(TRUNCATION_MARKER)
    assert counter.count(cut.content) <= 200
    prefix = cut.content.removesuffix(TRUNCATION_MARKER)
    assert long_text.startswith(prefix)
    assert len(prefix) > 100
    # A token boundary: the prefix is exactly the decoding of the text's first tokens.
    tokens = counter.encode_ordinary(long_text)
    assert counter.decode(tokens[: counter.count(prefix)]) == prefix
    assert window.compression_tokens_saved == counter.count(long_text) - counter.count(cut.content)
