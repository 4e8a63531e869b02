"""ContextWindow: provider formats, serialisation, display, and near-duplicate collapse."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from conversation_support import conversation, stored
from relay_context import TokenCounter, fuzzy
from relay_context.engine.window import ContextWindow
from test_policies import check_window, make_engine

TOOL_TURNS = [
    {"role": "system", "content": "You are a weather bot."},
    {"role": "user", "content": "Weather in Paris and Rome?"},
    {
        "role": "assistant",
        "content": "Let me check.",
        "tool_calls": [
            {
                "id": "a",
                "type": "function",
                "function": {"name": "wx", "arguments": '{"c": "Paris"}'},
            },
            {"id": "b", "type": "function", "function": {"name": "wx", "arguments": "not json"}},
        ],
    },
    {"role": "tool", "content": "18C sunny", "tool_call_id": "a"},
    {"role": "tool", "content": "24C clear", "tool_call_id": "b"},
    {"role": "assistant", "content": "Paris 18C, Rome 24C."},
    {"role": "assistant", "content": "Anything else?"},
    {"role": "user", "content": "No thanks."},
]


async def full_window(turns, **kw) -> ContextWindow:  # type: ignore[no-untyped-def]
    engine = make_engine(dedup_threshold=1.01)
    return await engine.build_window(
        "conv-test",
        stored(turns),
        budget=kw.get("budget", 10_000),
        model="gpt-4o",
        policy=kw.get("policy", "knapsack"),
    )


async def test_to_anthropic_separates_system_and_maps_tools() -> None:
    window = await full_window(TOOL_TURNS)
    out = window.to_anthropic()
    assert out["system"] == "You are a weather bot."
    roles = [t["role"] for t in out["messages"]]
    assert roles == ["user", "assistant", "user", "assistant", "user"]  # alternating
    assistant = out["messages"][1]["content"]
    assert assistant[0] == {"type": "text", "text": "Let me check."}
    assert assistant[1] == {"type": "tool_use", "id": "a", "name": "wx", "input": {"c": "Paris"}}
    assert assistant[2]["input"] == {"arguments": "not json"}
    results = out["messages"][2]["content"]
    assert [b["type"] for b in results] == ["tool_result", "tool_result"]
    assert results[0] == {"type": "tool_result", "tool_use_id": "a", "content": "18C sunny"}
    merged = out["messages"][3]["content"]  # two assistant turns in a row became one
    assert [b["text"] for b in merged] == ["Paris 18C, Rome 24C.", "Anything else?"]


async def test_to_openai_matches_the_stored_messages_and_the_count() -> None:
    window = await full_window(TOOL_TURNS)
    messages = stored(TOOL_TURNS)
    assert window.to_openai() == [m.to_openai() for m in messages]
    assert TokenCounter("o200k_base").count_messages(window.to_openai()) == window.tokens_used


async def test_json_round_trip_and_html() -> None:
    window = await full_window(
        conversation(50, seed=9, tool_rate=0.2), budget=800, policy="summarize"
    )
    again = ContextWindow.from_json(window.to_json())
    assert again == window
    page = window._repr_html_()
    assert "<table>" in page
    assert "summarize" in page
    assert f"{window.tokens_used}" in page
    assert "<script" not in window._repr_html_()
    assert "ContextWindow(" in repr(window)


async def test_html_escapes_content() -> None:
    turns = [{"role": "user", "content": "<script>alert(1)</script> & more"}]
    page = (await full_window(turns))._repr_html_()
    assert "<script>" not in page
    assert "&lt;script&gt;" in page


async def test_near_duplicates_collapse_into_the_latest_copy() -> None:
    engine = make_engine(dedup_threshold=0.95)
    base = "Could you please explain how the PostgreSQL query planner picks an index scan?"
    turns = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": base},
        {"role": "assistant", "content": "It compares estimated costs of the plans."},
        {"role": "user", "content": base + "?"},  # ratio > 0.95: collapses
        {"role": "assistant", "content": "It compares estimated costs of the plans!"},
        {"role": "user", "content": "Could you explain how MySQL picks an index?"},  # < 0.95
        {"role": "user", "content": base.replace("please ", "")},  # ratio ~0.95 boundary
    ]
    messages = stored(turns)
    window = await engine.build_window(
        "conv-test", messages, budget=10_000, model="gpt-4o", policy="knapsack"
    )
    check_window(window, messages, 10_000)
    # A message collapses when a later one of its role matches it (the latest copy stays).
    expected = {
        older.seq
        for older in messages
        for newer in messages
        if newer.seq > older.seq
        and newer.role == older.role
        and older.role.value in ("user", "assistant")
        and fuzzy.ratio(older.content, newer.content) >= 95.0
    }
    assert {2, 3} <= expected
    assert 6 not in expected
    assert 7 not in expected
    counter = TokenCounter("o200k_base")
    assert window.dedup_tokens_saved == sum(
        counter.count_messages([messages[s - 1].to_openai()]) - 3 for s in expected
    )


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.sampled_from(["alpha beta", "alpha beta!", "gamma", "gamma delta", "x"]),
        min_size=1,
        max_size=12,
    )
)
async def test_dedup_keeps_no_pair_above_the_threshold(texts: list[str]) -> None:
    engine = make_engine(dedup_threshold=0.9)
    turns = [{"role": "user", "content": t} for t in texts]
    messages = stored(turns)
    window = await engine.build_window(
        "conv-test", messages, budget=10_000, model="gpt-4o", policy="recent"
    )
    kept = [m for m in window.messages]
    for i, a in enumerate(kept):
        for b in kept[i + 1 :]:
            assert fuzzy.ratio(a.content, b.content) < 90.0
    # A message collapses exactly when a later one matches it.
    for m in messages:
        later = any(fuzzy.ratio(m.content, n.content) >= 90.0 for n in messages if n.seq > m.seq)
        assert (m.seq in window.deduplicated_seqs) is later


@settings(max_examples=30, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["user", "assistant"]),
            st.sampled_from(["alpha beta", "alpha beta!", "gamma", "gamma delta", "x y z"]),
        ),
        min_size=2,
        max_size=14,
    ),
    st.integers(1, 13),
)
async def test_incremental_dedup_equals_a_fresh_pass(
    pairs: list[tuple[str, str]], cut: int
) -> None:
    """The engine keeps a session's dedup state between calls; growing it message by message
    (or after an edit of history) gives what a fresh pass gives."""
    from relay_context.engine.dedup import DedupCache, collapse_near_duplicates

    engine = make_engine(dedup_threshold=0.9)
    messages = stored([{"role": r, "content": t} for r, t in pairs])
    candidates = await engine.planner.candidates(messages, "o200k_base")
    cache = DedupCache()
    cache.collapse("s", candidates[: min(cut, len(candidates))], 0.9)
    grown = cache.collapse("s", candidates, 0.9)
    assert grown == collapse_near_duplicates(candidates, 0.9)
    edited = stored([{"role": r, "content": t + " edited"} for r, t in pairs])
    edited_candidates = await engine.planner.candidates(edited, "o200k_base")
    assert cache.collapse("s", edited_candidates, 0.9) == collapse_near_duplicates(
        edited_candidates, 0.9
    )
