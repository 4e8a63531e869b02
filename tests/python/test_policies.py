"""Rules every context policy keeps, checked on random conversations (hypothesis) with the
real tokenizer: the request never exceeds the budget, pinned messages and tool groups survive,
order is kept, and a budget below what must be kept is an InfeasibleBudgetError."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conversation_support import conversation, stored
from relay_context import TokenCounter
from relay_context.config.settings import Settings
from relay_context.core.context_engine import ContextEngine
from relay_context.errors import InfeasibleBudgetError

POLICIES = ("knapsack", "recent", "summarize")


def make_engine(**overrides: object) -> ContextEngine:
    return ContextEngine(Settings(**overrides))  # type: ignore[arg-type]


def check_window(window, messages, budget):  # type: ignore[no-untyped-def]
    counter = TokenCounter(window.encoding)
    openai = window.to_openai()
    # The budget holds, counted independently by the tokenizer's count_messages rule.
    assert counter.count_messages(openai) == window.tokens_used <= budget
    by_seq = {m.seq: m for m in messages}
    kept = [m.seq for m in window.messages if m.seq is not None]
    assert kept == sorted(kept), "conversation order"
    assert set(kept) | set(window.dropped_seqs) == set(by_seq)
    assert not set(kept) & set(window.dropped_seqs)
    latest_user = max(m.seq for m in messages if m.role.value == "user")
    for m in messages:
        must = m.role.value == "system" or m.seq == latest_user or m.metadata.get("pinned")
        if must:
            assert m.seq in kept, f"pinned seq {m.seq} ({m.role.value}) was dropped"
    # Tool calls and their results are kept or dropped together.
    for m in messages:
        for call in m.tool_calls:
            results = [r.seq for r in messages if r.tool_call_id == call.id]
            assert all((r in kept) == (m.seq in kept) for r in results), (m.seq, results)
    # Kept stored messages are sent unchanged (except recent's truncation).
    for wm in window.messages:
        if wm.seq is not None and not wm.truncated:
            assert wm.content == by_seq[wm.seq].content


@pytest.mark.parametrize("policy", POLICIES)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(2, 120),
    seed=st.integers(0, 10_000),
    budget=st.integers(60, 6000),
    pin_rate=st.sampled_from([0.0, 0.05]),
    tool_rate=st.sampled_from([0.0, 0.2]),
    model=st.sampled_from(["gpt-4o", "gpt-4"]),
)
async def test_budget_pins_groups_and_order_hold(
    policy: str, n: int, seed: int, budget: int, pin_rate: float, tool_rate: float, model: str
) -> None:
    engine = make_engine(recent_threshold_tokens=2000, max_message_tokens=400)
    turns = conversation(n, seed, pin_rate=pin_rate, tool_rate=tool_rate, long_rate=0.05)
    messages = stored(turns)
    try:
        window = await engine.build_window(
            "conv-test", messages, budget=budget, model=model, policy=policy
        )
    except InfeasibleBudgetError:
        # Only when what must be kept really does not fit.
        counter = TokenCounter(engine._encoding_for(model))
        latest_user = max(m.seq for m in messages if m.role.value == "user")
        must = [
            m.to_openai()
            for m in messages
            if m.role.value == "system" or m.seq == latest_user or m.metadata.get("pinned")
        ]
        if policy == "recent":  # recent first cuts messages to max_message_tokens (400)
            for m in must:
                m["content"] = counter.truncate_to_budget(m["content"], 400 - 12)
        assert counter.count_messages(must) > budget
        return
    check_window(window, messages, budget)


@pytest.mark.parametrize("policy", POLICIES)
async def test_everything_fits_keeps_everything(policy: str) -> None:
    engine = make_engine(dedup_threshold=1.01)
    messages = stored(conversation(30, seed=3, tool_rate=0.2))
    window = await engine.build_window(
        "conv-test", messages, budget=100_000, model="gpt-4o", policy=policy
    )
    assert [m.seq for m in window.messages] == [m.seq for m in messages]
    assert window.dropped_seqs == ()
    assert window.tokens_used == window.total_tokens
    assert TokenCounter("o200k_base").count_messages([m.to_openai() for m in messages]) == (
        window.tokens_used
    )


@pytest.mark.parametrize("policy", POLICIES)
async def test_budget_below_the_pinned_messages_is_infeasible(policy: str) -> None:
    engine = make_engine()
    messages = stored(conversation(10, seed=4))
    with pytest.raises(InfeasibleBudgetError, match="must be kept"):
        await engine.build_window("conv-test", messages, budget=20, model="gpt-4o", policy=policy)
    with pytest.raises(InfeasibleBudgetError, match="priming"):
        await engine.build_window("conv-test", messages, budget=2, model="gpt-4o", policy=policy)


@pytest.mark.parametrize("policy", POLICIES)
async def test_long_session(policy: str) -> None:
    """2,100 messages: the knapsack is solved in a worker thread; the rules still hold."""
    engine = make_engine()
    messages = stored(conversation(2100, seed=21, tool_rate=0.1, pin_rate=0.01))
    window = await engine.build_window(
        "conv-test", messages, budget=20_000, model="gpt-4o", policy=policy
    )
    check_window(window, messages, 20_000)
    assert window.tokens_used > 15_000  # the budget is used, not left mostly empty
