"""Prefix-stable context fitting through the HTTP API with the SDKs: once a conversation outgrows
its window, the oldest messages are cut in large steps, so the prefix sent upstream stays
byte-identical turn after turn (and the provider's prompt cache keeps hitting) instead of
sliding by a message per request; tool calls and their results stay paired."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from gateway_support import GatewayRig, running_gateway

WINDOW = 6000
MODELS = {
    "small": {"routes": ["openai/gpt-4o"], "context_window": WINDOW, "max_output_tokens": 200},
    "small-claude": {
        "routes": ["anthropic/claude-sonnet-4-5"],
        "context_window": WINDOW,
        "max_output_tokens": 200,
    },
}
SYSTEM = "You are a coding assistant working in a large repository."
TURNS = 40


def filler(turn: int, what: str) -> str:
    return " ".join(f"{what} {turn} line {i} of the change to parser.py" for i in range(18))


def openai_turn(turn: int) -> list[dict[str, Any]]:
    """A user question, then (every third turn) a tool call and its result, then an answer."""
    out: list[dict[str, Any]] = [{"role": "user", "content": filler(turn, "question")}]
    if turn % 3 == 0:
        call = f"call_{turn}"
        out.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call,
                        "type": "function",
                        "function": {"name": "read_file", "arguments": '{"path":"parser.py"}'},
                    }
                ],
            }
        )
        out.append({"role": "tool", "tool_call_id": call, "content": filler(turn, "file")})
    return out


def anthropic_turn(turn: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [{"role": "user", "content": filler(turn, "question")}]
    if turn % 3 == 0:
        tid = f"toolu_{turn}"
        out.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": tid, "name": "read_file", "input": {"p": "x"}}
                ],
            }
        )
        out.append(
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": tid, "content": filler(turn, "file")}
                ],
            }
        )
    return out


def run_session(rig: GatewayRig, api: str) -> tuple[list[list[Any]], list[int]]:
    """Messages sent upstream and cached tokens reported, per turn."""
    sent: list[list[Any]] = []
    cached: list[int] = []
    history: list[dict[str, Any]] = []
    oa = openai.OpenAI(base_url=rig.v1, api_key=rig.key, max_retries=0)
    an = anthropic.Anthropic(base_url=rig.url, api_key=rig.key, max_retries=0)
    for turn in range(TURNS):
        if api == "openai":
            history += openai_turn(turn)
            reply = oa.chat.completions.create(
                model="small", messages=[{"role": "system", "content": SYSTEM}, *history]
            )
            assert reply.usage is not None
            assert reply.usage.prompt_tokens_details is not None
            cached.append(reply.usage.prompt_tokens_details.cached_tokens or 0)
            answer: Any = reply.choices[0].message.content
        else:
            history += anthropic_turn(turn)
            message = an.messages.create(
                model="small-claude", max_tokens=200, system=SYSTEM, messages=history
            )  # type: ignore[arg-type]
            cached.append(message.usage.cache_read_input_tokens or 0)
            answer = "".join(b.text for b in message.content if b.type == "text")
        body = rig.upstream.requests[-1].json()
        messages = body["messages"]
        for m in messages:
            # Relay's own cache marks are not part of the prompt (a marked message's text is
            # sent as a text block, which Anthropic reads as the same string).
            if isinstance(m.get("content"), str) and api == "anthropic":
                m["content"] = [{"type": "text", "text": m["content"]}]
            if isinstance(m.get("content"), list):
                for b in m["content"]:
                    b.pop("cache_control", None)
        sent.append(messages)
        history.append({"role": "assistant", "content": f"{answer} {filler(turn, 'answer')}"})
    return sent, cached


def prefix_changes(sent: list[list[Any]]) -> int:
    """Turns whose messages do not begin with all the previous turn's messages, byte for byte."""
    changes = 0
    for before, after in itertools.pairwise(sent):
        head = [json.dumps(m, sort_keys=True) for m in before]
        if head != [json.dumps(m, sort_keys=True) for m in after[: len(before)]]:
            changes += 1
    return changes


def assert_tool_pairs_valid(sent: list[list[Any]]) -> None:
    for messages in sent:
        calls = {c["id"] for m in messages for c in m.get("tool_calls") or []}
        calls |= {
            b["id"]
            for m in messages
            if isinstance(m.get("content"), list)
            for b in m["content"]
            if b.get("type") == "tool_use"
        }
        results = {m["tool_call_id"] for m in messages if m.get("role") == "tool"}
        results |= {
            b["tool_use_id"]
            for m in messages
            if isinstance(m.get("content"), list)
            for b in m["content"]
            if b.get("type") == "tool_result"
        }
        assert calls == results


@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_cuts_in_steps_keep_the_prefix_identical(tmp_path: Path, api: str) -> None:
    with running_gateway(tmp_path / "stable", models=MODELS) as rig:
        stable, stable_cached = run_session(rig, api)
    with running_gateway(
        tmp_path / "sliding", models=MODELS, context_fit_prefix_stable=False
    ) as rig:
        sliding, sliding_cached = run_session(rig, api)
    assert_tool_pairs_valid(stable)
    assert_tool_pairs_valid(sliding)
    # The conversation outgrew the window several times over...
    assert len(stable[-1]) < TURNS
    # ... and the kept prefix moved a few times only (each a large step), where the knapsack
    # alone moved it on nearly every request once the window was full.
    stable_moves = prefix_changes(stable)
    sliding_moves = prefix_changes(sliding)
    assert 1 <= stable_moves <= 8
    assert sliding_moves >= 2 * stable_moves
    # Between two cuts, consecutive turns share the whole previous request as a prefix.
    runs = [k for k in range(1, len(stable)) if stable[k][: len(stable[k - 1])] == stable[k - 1]]
    assert len(runs) >= TURNS - 1 - stable_moves
    # Which is what the provider's prompt cache rewards.
    assert sum(stable_cached) > 2 * sum(sliding_cached)
