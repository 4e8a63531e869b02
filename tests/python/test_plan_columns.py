"""The columns a session's first plan is made of, each against the slower rule it replaces:
billed tokens counted in one batch, the knapsack's required tokens without units, its recency
table, window messages made positionally, survivors indexed from two lists."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conversation_support import conversation, stored
from relay_context import TokenCounter
from relay_context.core.fuzzy import NearDuplicateIndex
from relay_context.engine.models import MessageRole, ToolCall
from relay_context.engine.policies.base import (
    UnitColumns,
    billed_tokens,
    make_candidate,
    message_tokens,
    units,
)
from relay_context.engine.policies.knapsack import RECENCY_FLOOR, _recency, _Static
from relay_context.engine.window import WindowMessage, make_window_message
from relay_context.errors import InputTypeError, InvalidArgumentError

COUNTERS = [TokenCounter("o200k_base"), TokenCounter("cl100k_base")]


@pytest.mark.parametrize("counter", COUNTERS, ids=lambda c: c.name)
@given(seed=st.integers(0, 10_000), named=st.booleans())
@settings(max_examples=25, deadline=None)
def test_billed_tokens_are_what_count_messages_gives(
    counter: TokenCounter, seed: int, named: bool
) -> None:
    messages = stored(conversation(40, seed=seed, tool_rate=0.4))
    if named:  # names on some turns, as OpenAI's chat format allows
        messages = [
            dataclasses.replace(m, name=f"agent_{m.seq}") if m.seq % 3 == 0 else m for m in messages
        ]
    content = [counter.count(m.content) for m in messages]
    batch = billed_tokens(counter, messages, content)
    # count_messages adds the reply priming (3 tokens) once per list.
    assert batch == [counter.count_messages([m.to_openai()]) - 3 for m in messages]
    assert batch == [message_tokens(counter, m, n) for m, n in zip(messages, content, strict=True)]


def test_billed_tokens_of_a_call_with_empty_arguments() -> None:
    counter = COUNTERS[0]
    (m,) = stored([{"role": "assistant", "content": "", "tool_calls": [ToolCall("c1", "f", "")]}])
    assert billed_tokens(counter, [m], [0]) == [counter.count_messages([m.to_openai()]) - 3]
    assert billed_tokens(counter, [], []) == []


@given(
    pins=st.lists(st.booleans(), min_size=1, max_size=60),
    groups=st.lists(st.integers(0, 5) | st.none(), min_size=60, max_size=60),
    tokens=st.lists(st.integers(1, 500), min_size=60, max_size=60),
)
@settings(max_examples=200, deadline=None)
def test_knapsack_required_tokens_equal_the_units(
    pins: list[bool], groups: list[int | None], tokens: list[int]
) -> None:
    n = len(pins)
    messages = stored([{"role": "user", "content": f"m{i}"} for i in range(n)])
    candidates = [
        make_candidate(m, t, t, p, g)
        for m, t, p, g in zip(messages, tokens[:n], pins, groups[:n], strict=True)
    ]
    assert _Static(candidates, 20.0).required == UnitColumns.of(units(candidates)).required


@pytest.mark.parametrize("half_life", [0.5, 7.0, 20.0])
def test_recency_table_is_the_formula(half_life: float) -> None:
    for n in (0, 1, 5, 300, 40):  # grows, then a shorter read of the same table
        assert _recency(n, half_life) == [
            max(RECENCY_FLOOR, 0.5 ** (age / half_life)) for age in range(n)
        ]


def test_window_message_made_positionally_equals_the_keyword_one() -> None:
    calls = (ToolCall("c1", "lookup", '{"q": 1}'),)
    fast = make_window_message(MessageRole.ASSISTANT, "hi", 7, 3, "bot", None, calls)
    slow = WindowMessage(
        role=MessageRole.ASSISTANT, content="hi", tokens=7, seq=3, name="bot", tool_calls=calls
    )
    assert fast == slow
    assert repr(fast) == repr(slow)
    assert hash(fast) == hash(slow)
    assert fast.to_dict() == slow.to_dict()
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.content = "changed"  # type: ignore[misc]


def test_add_earlier_keys_stores_what_add_earlier_stores() -> None:
    texts = [f"the report for week {i} is ready for review today" for i in range(6)]
    texts += ["something else entirely about lunch", "the report for week 5 is ready for review"]
    keyed, paired = NearDuplicateIndex(), NearDuplicateIndex()
    batch = keyed.collapse_earlier(texts, ratio_cutoff=95.0)
    live = [i for i, to in enumerate(batch.into) if to < 0]
    keyed.add_earlier_keys(batch, live, [f"k{i}" for i in live])
    paired.add_earlier(
        paired.collapse_earlier(texts, ratio_cutoff=95.0), [(i, f"k{i}") for i in live]
    )
    assert len(keyed) == len(paired) == len(live)
    for text in texts:
        assert keyed.query(text, 0.5) == paired.query(text, 0.5)
    with pytest.raises(InvalidArgumentError, match="2 keys for 1 positions"):
        keyed.add_earlier_keys(batch, [0], ["a", "b"])
    with pytest.raises(InputTypeError):
        keyed.add_earlier_keys(batch, ["0"], ["a"])  # type: ignore[list-item]
    with pytest.raises(InvalidArgumentError):
        keyed.add_earlier_keys(batch, [len(texts)], ["a"])
