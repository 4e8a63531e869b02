"""ContextWindow.to_anthropic() produces requests the Anthropic Messages API accepts: every message
and content block validated against the ``anthropic`` SDK's own request types, and the documented
conversation rules (a user turn first, roles alternating, each ``tool_result`` answering a
``tool_use`` of the turn before)."""

from __future__ import annotations

from typing import Any

import pytest
from anthropic.types import (
    AssistantMessageParam,
    TextBlockParam,
    ToolResultBlockParam,
    ToolUseBlockParam,
    UserMessageParam,
)
from anthropic.types.message_create_params import MessageCreateParamsNonStreaming
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from relay_context.engine.window import ANTHROPIC_LEADING_USER_TEXT, ContextWindow
from test_context_window import TOOL_TURNS, full_window

BLOCKS: dict[str, Any] = {
    "text": TextBlockParam,
    "tool_use": ToolUseBlockParam,
    "tool_result": ToolResultBlockParam,
}
MESSAGES: dict[str, Any] = {"user": UserMessageParam, "assistant": AssistantMessageParam}


def _strict(kind: Any, value: dict[str, Any]) -> None:
    """``value`` is a valid ``kind`` (an SDK TypedDict) with no keys the SDK does not know.
    (Lists are checked item by item: pydantic validates an SDK ``Iterable`` lazily.)"""
    TypeAdapter(kind).validate_python(value)
    assert set(value) <= set(kind.__annotations__), (set(value), kind.__name__)


def check_anthropic_request(out: dict[str, Any]) -> None:
    request = {"model": "claude-test", "max_tokens": 16, **out}
    _strict(MessageCreateParamsNonStreaming, request)
    assert isinstance(out["system"], str)
    turns = out["messages"]
    assert turns, "the Messages API needs at least one message"
    assert turns[0]["role"] == "user", "the first message must be a user turn"
    previous_tool_uses: set[str] = set()
    for i, turn in enumerate(turns):
        _strict(MESSAGES[turn["role"]], turn)
        if i:
            assert turn["role"] != turns[i - 1]["role"], "roles must alternate"
        assert isinstance(turn["content"], list)
        assert turn["content"], "content must not be empty"
        for block in turn["content"]:
            _strict(BLOCKS[block["type"]], block)
            if block["type"] == "text":
                assert block["text"], "text blocks must not be empty"
            if block["type"] == "tool_result":
                assert turn["role"] == "user"
                assert block["tool_use_id"] in previous_tool_uses
        previous_tool_uses = {b["id"] for b in turn["content"] if b["type"] == "tool_use"}


async def test_a_window_that_starts_with_a_user_turn_is_unchanged() -> None:
    out = (await full_window(TOOL_TURNS)).to_anthropic()
    check_anthropic_request(out)
    assert out["messages"][0]["content"] == [{"type": "text", "text": TOOL_TURNS[1]["content"]}]
    assert all(
        b.get("text") != ANTHROPIC_LEADING_USER_TEXT for t in out["messages"] for b in t["content"]
    )


async def test_a_window_that_starts_with_an_assistant_turn_gets_a_placeholder_user_turn() -> None:
    turns = [
        {"role": "system", "content": "Be brief."},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "18C."},
    ]
    window = await full_window(turns)
    out = window.to_anthropic()
    check_anthropic_request(out)
    assert out["system"] == "Be brief."
    assert out["messages"][0] == {
        "role": "user",
        "content": [{"type": "text", "text": ANTHROPIC_LEADING_USER_TEXT}],
    }
    assert [t["role"] for t in out["messages"]] == ["user", "assistant", "user", "assistant"]
    assert out["messages"][1]["content"] == [{"type": "text", "text": "Hello! How can I help?"}]
    # The placeholder is not part of the window: the OpenAI form is unchanged.
    assert [m["role"] for m in window.to_openai()] == ["system", "assistant", "user", "assistant"]


async def test_an_assistant_tool_call_first_is_preceded_by_the_placeholder() -> None:
    turns = TOOL_TURNS[2:]  # the assistant's tool calls, their results, the answers
    out = (await full_window(turns)).to_anthropic()
    check_anthropic_request(out)
    assert out["messages"][0]["content"][0]["text"] == ANTHROPIC_LEADING_USER_TEXT
    assert out["messages"][1]["content"][1]["type"] == "tool_use"


async def test_a_budget_that_drops_the_first_user_turn_still_gives_a_valid_request() -> None:
    turns = [
        {"role": "user", "content": "word " * 400},
        {"role": "assistant", "content": "A short answer."},
        {"role": "user", "content": "And then?"},
        {"role": "assistant", "content": "Then the end."},
    ]
    window = await full_window(turns, budget=60, policy="recent")
    assert window.to_openai()[0]["role"] == "assistant"  # the long user turn did not fit
    check_anthropic_request(window.to_anthropic())


def test_the_checker_rejects_what_the_api_rejects() -> None:
    user = {"role": "user", "content": [{"type": "text", "text": "hi"}]}
    assistant = {"role": "assistant", "content": [{"type": "text", "text": "yo"}]}
    for bad in (
        {"system": "", "messages": [assistant]},
        {"system": "", "messages": [user, user]},
        {"system": "", "messages": [{"role": "user", "content": [{"type": "text"}]}]},
        {"system": "", "messages": [user, {"role": "assistant", "content": []}]},
    ):
        with pytest.raises((AssertionError, ValueError)):
            check_anthropic_request(bad)


ROLES = st.sampled_from(["user", "assistant", "system"])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(ROLES, st.text(min_size=1, max_size=20).map(str.strip)), max_size=8))
async def test_any_plain_conversation_gives_a_valid_request(
    script: list[tuple[str, str]],
) -> None:
    turns = [{"role": r, "content": c or "x"} for r, c in script]
    if not any(r != "system" for r, _ in script):
        turns.append({"role": "assistant", "content": "only me"})
    window: ContextWindow = await full_window(turns)
    check_anthropic_request(window.to_anthropic())
