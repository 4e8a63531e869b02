"""The gateway's Anthropic surface through the official ``anthropic`` SDK (what Claude Code
sends), to an Anthropic upstream (forwarded) and to an OpenAI one (translated), and the peers'
translation bugs, each pinned by a test."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator

import anthropic
import httpx
import pytest

from gateway_support import UPSTREAM_KEY, GatewayRig, running_gateway
from relay_context.core.tokenizer import TokenCounter

TOOLS = [
    {
        "name": "get_weather",
        "description": "weather of a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
    }
]


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayRig]:
    with running_gateway(tmp_path_factory.mktemp("gw")) as r:
        yield r


def client(rig: GatewayRig, key: str | None = None) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=rig.url, api_key=key or rig.key, max_retries=0)


def raw_events(rig: GatewayRig, body: dict[str, object]) -> list[tuple[str, dict[str, object]]]:
    """The SSE events of a streamed /v1/messages call, as (event name, data)."""
    out = []
    with httpx.stream(
        "POST",
        rig.url + "/v1/messages",
        json={**body, "stream": True},
        headers={"x-api-key": rig.key, "anthropic-version": "2023-06-01"},
        timeout=30,
    ) as response:
        assert response.status_code == 200
        name = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                out.append((name, json.loads(line[6:])))
    return out


def test_messages_forwarded_with_x_api_key_injected(rig: GatewayRig) -> None:
    out = client(rig).messages.create(
        model="claude-sonnet-4-5", max_tokens=64, messages=[{"role": "user", "content": "hi"}]
    )
    assert out.content[0].type == "text"
    seen = rig.upstream.requests[-1]
    assert seen.path == "/v1/messages"
    assert seen.headers["x-api-key"] == UPSTREAM_KEY
    assert seen.headers["anthropic-version"]  # the client's own version, passed on
    assert out.usage.input_tokens > 0


def test_stream_forwarded_byte_for_byte_with_thinking(rig: GatewayRig) -> None:
    with client(rig).messages.stream(
        model="claude-sonnet-4-5",
        max_tokens=2000,
        thinking={"type": "enabled", "budget_tokens": 1024},
        messages=[{"role": "user", "content": "fake:thinking fake:tools=2"}],
        tools=TOOLS,  # type: ignore[arg-type]
    ) as stream:
        final = stream.get_final_message()
    assert [b.type for b in final.content] == ["thinking", "text", "tool_use", "tool_use"]
    assert final.content[0].signature  # type: ignore[union-attr]
    assert final.stop_reason == "tool_use"


def test_anthropic_request_to_openai_upstream_is_translated(rig: GatewayRig) -> None:
    out = client(rig).messages.create(
        model="gpt-4o",
        max_tokens=100,
        system="you are terse",
        messages=[
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "checking"},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "get_weather",
                        "input": {"city": "Oslo"},
                    },
                    {
                        "type": "tool_use",
                        "id": "toolu_2",
                        "name": "get_weather",
                        "input": {"city": "Rome"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "cold"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_2",
                        "content": [{"type": "text", "text": "warm"}],
                    },
                    {"type": "text", "text": "and now?"},
                ],
            },
        ],
        tools=TOOLS,  # type: ignore[arg-type]
        tool_choice={"type": "any"},
    )
    body = rig.upstream.requests[-1].json()
    assert rig.upstream.requests[-1].path == "/v1/chat/completions"
    assert rig.upstream.requests[-1].headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["system", "user", "assistant", "tool", "tool", "user"]
    assert [c["id"] for c in body["messages"][2]["tool_calls"]] == ["toolu_1", "toolu_2"]
    assert body["messages"][3] == {"role": "tool", "tool_call_id": "toolu_1", "content": "cold"}
    assert body["tool_choice"] == "required"
    assert body["tools"][0]["function"]["parameters"] == TOOLS[0]["input_schema"]
    assert out.content[0].type == "text"
    assert out.stop_reason == "end_turn"
    assert out.usage.output_tokens > 0


def test_translated_stream_is_well_formed_for_parallel_tools(rig: GatewayRig) -> None:
    events = raw_events(
        rig,
        {
            "model": "gpt-4o",
            "max_tokens": 100,
            "messages": [{"role": "user", "content": "fake:tools=3"}],
            "tools": TOOLS,
        },
    )
    names = [n for n, _ in events]
    assert names[0] == "message_start"
    assert names[-2:] == ["message_delta", "message_stop"]
    starts = Counter(int(d["index"]) for n, d in events if n == "content_block_start")  # type: ignore[call-overload]
    stops = Counter(int(d["index"]) for n, d in events if n == "content_block_stop")  # type: ignore[call-overload]
    # Peer bug: a second content_block_stop for one tool_use block.
    assert starts == stops
    assert set(stops.values()) == {1}
    # Peer bug: tool-call ids lost when the calls run in parallel.
    ids = [
        d["content_block"]["id"]
        for n, d in events
        if n == "content_block_start" and d["content_block"]["type"] == "tool_use"
    ]  # type: ignore[index]
    assert len(ids) == 3
    assert len(set(ids)) == 3
    # Peer bug: end_turn instead of tool_use.
    delta = next(d for n, d in events if n == "message_delta")
    assert delta["delta"]["stop_reason"] == "tool_use"  # type: ignore[index]


def test_tool_use_stop_reason_when_upstream_says_stop(rig: GatewayRig) -> None:
    """Some OpenAI-compatible servers finish tool calls with "stop"; Claude Code must see
    tool_use or it never runs the tools."""
    rig.upstream.push({"tools": 1, "stop": "stop"})
    out = client(rig).messages.create(
        model="gpt-4o",
        max_tokens=50,
        messages=[{"role": "user", "content": "x"}],
        tools=TOOLS,  # type: ignore[arg-type]
    )
    assert out.stop_reason == "tool_use"
    assert out.content[-1].type == "tool_use"
    rig.upstream.push({"tools": 1, "stop": "stop"})
    events = raw_events(
        rig,
        {
            "model": "gpt-4o",
            "max_tokens": 50,
            "messages": [{"role": "user", "content": "x"}],
            "tools": TOOLS,
        },
    )
    delta = next(d for n, d in events if n == "message_delta")
    assert delta["delta"]["stop_reason"] == "tool_use"  # type: ignore[index]


def test_thinking_blocks_survive_translation_to_openai_and_back(rig: GatewayRig) -> None:
    """Peer bug: thinking dropped. An Anthropic upstream's thinking reaches an OpenAI client as
    reasoning_content; an Anthropic client's signed thinking goes back to Anthropic intact."""
    response = rig.post(
        "/v1/chat/completions",
        {
            "model": "claude-sonnet-4-5",
            "messages": [{"role": "user", "content": "fake:thinking hi"}],
        },
    )
    message = response.json()["choices"][0]["message"]
    assert message["reasoning_content"].startswith("Let me think")
    client(rig).messages.create(
        model="claude-sonnet-4-5",
        max_tokens=2000,
        messages=[
            {"role": "user", "content": "q"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "t", "signature": "sig"},
                    {"type": "text", "text": "a"},
                ],
            },
            {"role": "user", "content": "again"},
        ],
    )
    sent = rig.upstream.requests[-1].json()
    assert sent["messages"][1]["content"][0] == {
        "type": "thinking",
        "thinking": "t",
        "signature": "sig",
    }


async def test_async_anthropic_stream_from_openai_upstream(rig: GatewayRig) -> None:
    async with (
        anthropic.AsyncAnthropic(base_url=rig.url, api_key=rig.key, max_retries=0) as aclient,
        aclient.messages.stream(
            model="gpt-4o-mini", max_tokens=50, messages=[{"role": "user", "content": "hello"}]
        ) as stream,
    ):
        text = "".join([t async for t in stream.text_stream])
        final = await stream.get_final_message()
    assert text.startswith("Hello from")
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


def test_count_tokens_exact_for_openai_models_forwarded_for_claude(rig: GatewayRig) -> None:
    c = client(rig)
    messages = [{"role": "user", "content": "Hello world, how are you?"}]
    counted = c.messages.count_tokens(model="gpt-4o", messages=messages)  # type: ignore[arg-type]
    expected = TokenCounter.for_model("gpt-4o").count_messages(messages)
    assert counted.input_tokens == expected
    before = len(rig.upstream.requests)
    forwarded = c.messages.count_tokens(model="claude-sonnet-4-5", messages=messages)  # type: ignore[arg-type]
    assert forwarded.input_tokens > 0
    assert rig.upstream.requests[before].path == "/v1/messages/count_tokens"


def test_errors_are_anthropic_shaped(rig: GatewayRig) -> None:
    with pytest.raises(anthropic.NotFoundError) as missing:
        client(rig).messages.create(
            model="nope", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert missing.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
    with pytest.raises(anthropic.AuthenticationError):
        client(rig, key="relay_" + "y" * 43).messages.create(
            model="claude-sonnet-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    no_max = httpx.post(
        rig.url + "/v1/messages",
        json={"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "x"}]},
        headers={"x-api-key": rig.key},
    )
    assert no_max.status_code == 400
    assert "max_tokens" in no_max.json()["error"]["message"]
    rig.upstream.push({"status": 529})
    rig.upstream.push({"status": 529})
    rig.upstream.push({"status": 529})
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        client(rig).messages.create(
            model="claude-sonnet-4-5", max_tokens=5, messages=[{"role": "user", "content": "x"}]
        )
    assert overloaded.value.status_code == 529
    invalid = httpx.post(rig.url + "/v1/messages", content=b"[1,", headers={"x-api-key": rig.key})
    assert invalid.status_code == 400
    assert invalid.json()["type"] == "error"


def test_interleaved_parallel_tool_argument_deltas_to_anthropic(rig: GatewayRig) -> None:
    """An OpenAI-compatible upstream that interleaves the argument deltas of parallel tool
    calls by index (call 0's piece, call 1's, call 2's, call 0's, ...) still gives each
    tool_use block all of its own arguments and none of another's, through the SDK's stream
    accumulator (before: pieces of a call after another had begun were dropped)."""
    client = anthropic.Anthropic(base_url=rig.url, api_key=rig.key, max_retries=0)
    with client.messages.stream(
        model="gpt-4o",
        max_tokens=100,
        messages=[{"role": "user", "content": "fake:tools=3 fake:interleave_tools"}],
        tools=TOOLS,  # type: ignore[arg-type]
    ) as stream:
        message = stream.get_final_message()
    calls = [b for b in message.content if b.type == "tool_use"]
    assert [c.input for c in calls] == [
        {"city": city, "unit": "celsius"} for city in ("Paris", "Tokyo", "Lima")
    ]
    assert len({c.id for c in calls}) == 3
    assert message.stop_reason == "tool_use"
    events = raw_events(
        rig,
        {
            "model": "gpt-4o",
            "max_tokens": 100,
            "messages": [{"role": "user", "content": "fake:tools=3 fake:interleave_tools"}],
            "tools": TOOLS,
        },
    )
    starts = Counter(int(d["index"]) for n, d in events if n == "content_block_start")  # type: ignore[call-overload]
    stops = Counter(int(d["index"]) for n, d in events if n == "content_block_stop")  # type: ignore[call-overload]
    assert starts == stops
    assert set(stops.values()) == {1}
