"""The knapsack policy: what it keeps and why (recency, relevance, importance, pins, groups)."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from conversation_support import stored
from relay_context.core.knapsack import KnapsackSelector
from relay_context.engine.policies.base import PolicyContext
from relay_context.engine.policies.knapsack import message_values
from test_policies import check_window, make_engine

FILLER = [
    "The weather in Lisbon was sunny with a light breeze from the ocean all afternoon.",
    "My cat knocked a glass of water off the kitchen table again this morning.",
    "We watched a documentary about deep sea creatures and their strange lights.",
    "The bakery on the corner started selling sourdough with olives and rosemary.",
    "Traffic on the bridge was slow because of the marathon through the city centre.",
    "I finally finished the jigsaw puzzle of the alpine lake with a thousand pieces.",
]


def turns_with(first_user: str, first_meta: dict | None = None) -> list[dict]:  # type: ignore[type-arg]
    turns = [{"role": "system", "content": "You are a helpful assistant."}]
    turns.append({"role": "user", "content": first_user, "metadata": first_meta or {}})
    for i, text in enumerate(FILLER):
        turns.append({"role": "assistant" if i % 2 else "user", "content": text})
    turns.append({"role": "user", "content": "How do I tune PostgreSQL autovacuum for big tables?"})
    return turns


def budget_for(messages, keep: int) -> int:  # type: ignore[no-untyped-def]
    """Room for the system prompt, the latest user turn and about ``keep`` other messages."""
    from relay_context import TokenCounter

    counter = TokenCounter("o200k_base")
    fixed = counter.count_messages([messages[0].to_openai(), messages[-1].to_openai()])
    each = max(counter.count_messages([m.to_openai()]) - 3 for m in messages[1:-1])
    return fixed + keep * each


async def test_relevant_old_message_beats_recent_irrelevant_ones() -> None:
    engine = make_engine()
    messages = stored(
        turns_with("Our PostgreSQL autovacuum on big tables falls behind; tune autovacuum how?")
    )
    budget = budget_for(messages, 2)
    window = await engine.build_window(
        "conv-test", messages, budget=budget, model="gpt-4o", policy="knapsack"
    )
    check_window(window, messages, budget)
    assert 2 in window.kept_seqs  # the old, relevant question
    assert 3 in window.dropped_seqs  # an older irrelevant one


async def test_without_relevance_recency_decides() -> None:
    engine = make_engine()
    messages = stored(turns_with("A question about gardening and tomatoes in the spring."))
    budget = budget_for(messages, 2)
    window = await engine.build_window(
        "conv-test", messages, budget=budget, model="gpt-4o", policy="knapsack"
    )
    check_window(window, messages, budget)
    assert 2 in window.dropped_seqs
    assert 3 in window.dropped_seqs
    kept_middle = [s for s in window.kept_seqs if 1 < s < len(messages)]
    dropped = list(window.dropped_seqs)
    # Newer messages are worth more: what is kept is on average newer than what is dropped.
    assert kept_middle
    assert sum(kept_middle) / len(kept_middle) > sum(dropped) / len(dropped)


async def test_importance_and_pinned_metadata() -> None:
    engine = make_engine()
    text = "Remember: the budget code is 7731."
    for meta, kept in (({}, False), ({"importance": 50}, True), ({"pinned": True}, True)):
        messages = stored(turns_with(text, meta))
        budget = budget_for(messages, 1)
        window = await engine.build_window(
            "conv-test", messages, budget=budget, model="gpt-4o", policy="knapsack"
        )
        check_window(window, messages, budget)
        assert (2 in window.kept_seqs) is kept, meta


async def test_tool_call_and_results_go_together() -> None:
    engine = make_engine()
    big_result = " ".join(["row"] * 800)
    turns = [
        {"role": "system", "content": "You are a SQL assistant."},
        {"role": "user", "content": "Count the orders."},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "run_sql", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "content": big_result, "tool_call_id": "c1"},
        {"role": "assistant", "content": "There are 800 rows."},
        {"role": "user", "content": "Thanks, and what is the capital of France?"},
    ]
    messages = stored(turns)
    window = await engine.build_window(
        "conv-test", messages, budget=120, model="gpt-4o", policy="knapsack"
    )
    check_window(window, messages, 120)
    assert {3, 4} <= set(window.dropped_seqs)  # the call went with its too-large result
    window = await engine.build_window(
        "conv-test", messages, budget=5000, model="gpt-4o", policy="knapsack"
    )
    assert {3, 4} <= set(window.kept_seqs)


async def test_selection_is_optimal_for_the_values() -> None:
    """The kept set maximises the total value (brute force over every subset)."""
    engine = make_engine(dedup_threshold=1.01)
    messages = stored(turns_with("Autovacuum thresholds and PostgreSQL table bloat."))
    candidates = await engine.planner.candidates(messages, "o200k_base")
    budget = budget_for(messages, 3)
    ctx = PolicyContext(
        counter=engine.counter("o200k_base"),
        settings=engine.settings,
        budget=budget - 3,
        query=messages[-1].content,
    )
    values = message_values(candidates, ctx)
    window = await engine.build_window(
        "conv-test", messages, budget=budget, model="gpt-4o", policy="knapsack"
    )
    free = [i for i, c in enumerate(candidates) if not c.pinned]
    fixed = sum(c.tokens for c in candidates if c.pinned)
    best = 0.0
    for r in range(len(free) + 1):
        for subset in itertools.combinations(free, r):
            if fixed + sum(candidates[i].tokens for i in subset) <= budget - 3:
                best = max(best, sum(values[i] for i in subset))
    got = sum(values[i] for i in free if candidates[i].seq in window.kept_seqs)
    assert abs(got - best) < 1e-9
    assert KnapsackSelector().epsilon > 0  # the selector in use is the C++ one


async def test_explicit_query_steers_relevance() -> None:
    engine = make_engine()
    messages = stored(turns_with("A question about gardening and tomatoes in the spring."))
    budget = budget_for(messages, 1)
    bakery = 6  # "The bakery on the corner started selling sourdough with olives and rosemary."
    assert "bakery" in messages[bakery - 1].content
    plain = await engine.build_window(
        "conv-test", messages, budget=budget, model="gpt-4o", policy="knapsack"
    )
    steered = await engine.build_window(
        "conv-test",
        messages,
        budget=budget,
        model="gpt-4o",
        policy="knapsack",
        query="sourdough bread with olives and rosemary from the bakery",
    )
    check_window(steered, messages, budget)
    assert bakery not in plain.kept_seqs
    assert bakery in steered.kept_seqs


async def test_rows_remembered_per_query_give_the_windows_of_a_fresh_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A session plan keeps the knapsack rows of its last few queries: reading the session
    again with a query it has seen scores nothing again, and every window equals what an
    engine that never saw the session builds."""
    from relay_context.engine.policies import knapsack

    scored: list[str | None] = []
    values = knapsack._values

    def counting(static: Any, relevance: Any, query: str | None) -> list[float]:
        scored.append(query)
        return values(static, relevance, query)

    monkeypatch.setattr(knapsack, "_values", counting)
    messages = stored(turns_with("Our PostgreSQL autovacuum on big tables falls behind."))
    budget = budget_for(messages, 2)
    queries = [f"{FILLER[i % len(FILLER)][: 20 + i]} question {i}" for i in range(12)]
    engine = make_engine()

    async def window(query: str, on: Any) -> list[int]:
        built = await on.build_window(
            "conv-memo", messages, budget=budget, model="gpt-4o", policy="knapsack", query=query
        )
        return list(built.kept_seqs)

    kept = set()
    for query in queries[:4]:
        first = await window(query, engine)
        assert await window(query, engine) == first  # remembered ...
        assert await window(query, make_engine()) == first  # ... and the same as from scratch
        kept.add(tuple(first))
    assert scored.count(queries[0]) == 2  # once in the session's plan, once in the fresh engine
    assert len(kept) > 1  # the queries do change the windows
    for query in queries:  # more than QUERIES_REMEMBERED: the oldest is forgotten
        await window(query, engine)
    scored.clear()
    await window(queries[-1], engine)
    await window(queries[0], engine)
    assert scored == [queries[0]]
    assert len(queries) > knapsack.QUERIES_REMEMBERED
