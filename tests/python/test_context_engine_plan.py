"""The engine's per-session plan (token costs, near-duplicates, word index, policy columns made
once per list of messages) changes no window: a warm engine answers as a fresh one."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest

from conversation_support import conversation, stored
from relay_context.engine.models import StoredMessage
from test_policies import check_window, make_engine

POLICIES = ("knapsack", "recent", "summarize")
#: Small enough that recent truncates some messages.
SETTINGS = {"max_message_tokens": 60}


def with_repeats(turns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Some turns said again (near-duplicates to collapse) later in the conversation."""
    out = list(turns)
    plain = [t for t in turns if t["role"] in ("user", "assistant") and not t.get("tool_calls")]
    for i in range(2, len(plain), 5):
        # Not word for word: identical sentences tie in the extractive summary, and hash-table
        # order breaks such ties differently from one engine to another.
        again = {**plain[i], "content": plain[i]["content"] + " Again."}
        out.insert(min(len(out), 2 * i + 7), again)
    return out


async def fresh_window(messages: list[StoredMessage], **kw: Any) -> dict[str, Any]:
    window = await make_engine(**SETTINGS).build_window("plan-test", messages, model="gpt-4o", **kw)
    return comparable(window.to_dict())


def comparable(window: dict[str, Any]) -> dict[str, Any]:
    # The C++ sums run in hash-table order, which differs between tables: drift agrees to
    # rounding only (as between two fresh engines).
    window["drift_score"] = pytest.approx(window["drift_score"], abs=1e-12)
    # The same holds for the extractive summary's sentence scores, so sentences of equal
    # centrality may be picked in another order (it varies between two fresh engines too):
    # a summary is compared by what it stands for.
    for m in window["messages"]:
        if m["summarizes"]:
            m["content"] = m["tokens"] = None
            window["tokens_used"] = window["compression_tokens_saved"] = None
    return window


async def test_warm_plan_gives_the_windows_of_a_fresh_engine() -> None:
    messages = stored(with_repeats(conversation(90, seed=7, tool_rate=0.2, long_rate=0.1)))
    engine = make_engine(**SETTINGS)
    # The session grows (the plan is extended), is read again with other queries, budgets and
    # policies (the plan is reused), then loses a prefix (the plan is rebuilt).
    views = [messages[:30], messages[:60], messages[:61], messages, messages, messages[25:]]
    truncated = 0
    for step, view in enumerate(views):
        current = list(view)
        for policy in POLICIES:
            for budget, query in ((1500, None), (700, f"question {step} about tables"), (1500, "")):
                kw = {"budget": budget, "policy": policy, "query": query}
                window = await engine.build_window("plan-test", current, model="gpt-4o", **kw)
                check_window(window, current, budget)
                truncated += sum(m.truncated for m in window.messages)
                assert comparable(window.to_dict()) == await fresh_window(current, **kw)
    assert truncated > 0


async def test_changed_messages_are_not_served_from_the_plan() -> None:
    messages = stored(conversation(40, seed=3))
    engine = make_engine(**SETTINGS)
    await engine.build_window("plan-test", messages, budget=600, model="gpt-4o", policy="recent")
    # Same seqs, other objects and contents (e.g. another session under the same id).
    other = stored(conversation(40, seed=4))
    window = await engine.build_window(
        "plan-test", other, budget=600, model="gpt-4o", policy="recent"
    )
    assert comparable(window.to_dict()) == await fresh_window(other, budget=600, policy="recent")


async def test_ten_times_the_messages_costs_less_than_thirty_times_the_time() -> None:
    async def cost(n: int) -> float:
        messages = stored(conversation(n, seed=11, tool_rate=0.1))
        engine = make_engine()
        await engine.build_window("big", messages, budget=8000, model="gpt-4o", policy="knapsack")
        best = float("inf")
        for i in range(5):
            start = time.thread_time()
            await engine.build_window(
                "big", messages, budget=8000, model="gpt-4o", policy="knapsack", query=f"q {i}"
            )
            best = min(best, time.thread_time() - start)
        return best

    small, large = await cost(200), await cost(2000)
    assert large < 30 * max(small, 1e-4)


async def test_batched_near_duplicate_tracking_matches_one_by_one() -> None:
    from relay_context.engine.dedup import Fingerprints, NearDuplicateTracker

    turns = with_repeats(conversation(150, seed=5, tool_rate=0.1))
    # Word-for-word and near copies (the batch must find what query-then-add finds), some pinned.
    for i in range(3, 60, 4):
        turns.append(dict(turns[i]))
        turns.append({**turns[i + 1], "content": turns[i + 1]["content"].replace("e", "E", 1)})
    turns[40] = {**turns[40], "metadata": {"pinned": True}}
    messages = stored(turns)
    candidates = await make_engine().planner.candidates(messages, "o200k_base")
    fingerprints = Fingerprints.of(candidates)
    split = 200
    one_by_one, batched = NearDuplicateTracker(0.95), NearDuplicateTracker(0.95)
    for i, c in enumerate(candidates):
        one_by_one.add(c, fingerprints.at(i))
    batched.add_many(candidates[:split], fingerprints.head(split))
    for i in range(split, len(candidates)):
        # The batch left the index as one-by-one adds would have.
        batched.add(candidates[i], fingerprints.at(i))
    assert len(one_by_one.collapsed) > 10
    assert batched.collapsed == one_by_one.collapsed
    assert batched.seen == one_by_one.seen


async def test_a_new_user_turn_extends_the_near_duplicate_pass() -> None:
    """The latest user turn is pinned until the next one arrives; the tracker then indexes it
    (it was left out while pinned) rather than making the session's pass again, and collapses
    what a fresh pass over the same candidates collapses."""
    from relay_context.engine.dedup import DedupCache, collapse_near_duplicates

    turns = conversation(60, seed=9, tool_rate=0.1)
    # User turns said again at once (each new one collapses the turn before it, which was the
    # pinned latest turn when it was tracked), and later on.
    for i in range(5):
        text = f"Could you show me how to index the orders table by customer, take {i}?"
        turns += [
            {"role": "user", "content": text},
            {"role": "assistant", "content": f"Sure, here is take {i}."},
            {"role": "user", "content": text + "!"},
        ]
    old = next(i for i, t in enumerate(turns) if i > 3 and t["role"] == "user")
    turns += [{"role": "user", "content": turns[old]["content"]}]
    messages = stored(turns)
    planner = make_engine().planner
    cache = DedupCache()
    first = None
    for n in range(40, len(messages) + 1):
        candidates = await planner.candidates(messages[:n], "o200k_base")
        kept, collapsed = cache.collapse("s", candidates, 0.95)
        fresh_kept, fresh_collapsed = collapse_near_duplicates(candidates, 0.95)
        assert [c.seq for c in kept] == [c.seq for c in fresh_kept]
        assert [c.seq for c in collapsed] == [c.seq for c in fresh_collapsed]
        tracker = cache._trackers["s", 0.95]
        first = first or tracker
        assert tracker is first  # extended, never made again
    # The five turns said again at once, and the old one said again.
    assert {c.seq for c in collapsed} >= {61, 64, 67, 70, 73, old + 1}


async def test_a_changed_message_still_makes_the_pass_again() -> None:
    from relay_context.engine.dedup import DedupCache

    messages = stored(conversation(40, seed=2))
    planner = make_engine().planner
    cache = DedupCache()
    cache.collapse("s", await planner.candidates(messages, "o200k_base"), 0.95)
    tracker = cache._trackers["s", 0.95]
    other = stored(conversation(40, seed=3))  # same seqs, other contents
    cache.collapse("s", await planner.candidates(other, "o200k_base"), 0.95)
    assert cache._trackers["s", 0.95] is not tracker


async def test_a_grown_session_keeps_its_candidates_and_window_messages() -> None:
    messages = stored(conversation(80, seed=4, tool_rate=0.2))
    engine = make_engine()
    kw: dict[str, Any] = {"budget": 4000, "model": "gpt-4o", "policy": "knapsack"}
    before = await engine.build_window("plan-test", messages, **kw)
    old = engine.planner._plans["plan-test", "o200k_base"]
    (turn,) = stored([{"role": "user", "content": "And how do I index the orders table?"}])
    grown = [*messages, dataclasses.replace(turn, seq=len(messages) + 1)]
    after = await engine.build_window("plan-test", grown, **kw)
    new = engine.planner._plans["plan-test", "o200k_base"]
    latest_user = max(m.seq for m in messages if m.role.value == "user")
    changed = [c.seq for c, o in zip(new.candidates, old.candidates, strict=False) if c is not o]
    assert changed == [latest_user]  # it lost its pin; every other candidate is the same object
    # The window messages made before are reused for those candidates.
    by_seq = {m.seq: m for m in before.messages}
    shared = [m for m in after.messages if m.seq in by_seq and m.seq != latest_user]
    assert shared
    assert all(m is by_seq[m.seq] for m in shared)
    fresh = await fresh_window(grown, budget=kw["budget"], policy=kw["policy"])
    assert comparable(after.to_dict()) == fresh
