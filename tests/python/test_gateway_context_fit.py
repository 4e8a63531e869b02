"""Context fitting through the HTTP API (``GATEWAY_CONTEXT_POLICY``): fit (knapsack), truncate
(brief 002's rule), reject and off; tool-call/result pairs stay valid for both APIs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from gateway_support import running_gateway
from relay_context.core.tokenizer import TokenCounter

WORDS = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
MODELS = {
    "tiny": {"routes": ["openai/gpt-4o"], "context_window": 600, "max_output_tokens": 100},
    "tiny-claude": {
        "routes": ["anthropic/claude-sonnet-4-5"],
        "context_window": 600,
        "max_output_tokens": 100,
    },
}


def long_text(tokens: int) -> str:
    return (WORDS * (tokens // 12 + 1))[: tokens * 5]


def openai_conversation() -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "You are a coding assistant."},
        {"role": "user", "content": "old question " + long_text(200)},
        {"role": "assistant", "content": "old answer " + long_text(200)},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "read", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": long_text(150)},
        {"role": "user", "content": "middle " + long_text(60)},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "latest question"},
    ]


def test_fit_drops_old_messages_keeps_system_latest_and_tool_pairs(tmp_path: Path) -> None:
    with running_gateway(tmp_path, models=MODELS) as rig:
        messages = openai_conversation()
        response = rig.post(
            "/v1/chat/completions", {"model": "tiny", "messages": messages, "max_tokens": 100}
        )
        assert response.status_code == 200
        dropped = int(response.headers["x-relay-context-dropped"])
        assert dropped > 0
        sent = rig.upstream.requests[-1].json()["messages"]
        assert len(sent) == len(messages) - dropped
        assert sent[0] == messages[0]
        assert sent[-1] == messages[-1]
        ids = {c["id"] for m in sent for c in m.get("tool_calls") or []}
        results = {m["tool_call_id"] for m in sent if m["role"] == "tool"}
        assert ids == results  # a call and its result are kept or dropped together
        prompt = int(response.headers["x-relay-prompt-tokens"])
        assert prompt == TokenCounter.for_model("gpt-4o").count_messages(sent)
        assert prompt + 100 <= 600


def test_fit_keeps_anthropic_tool_pairs_valid(tmp_path: Path) -> None:
    with running_gateway(tmp_path, models=MODELS) as rig:
        messages: list[dict[str, Any]] = [
            {"role": "user", "content": "start " + long_text(400)},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_a", "name": "read", "input": {}}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_a", "content": long_text(400)}
                ],
            },
            {"role": "assistant", "content": "summary " + long_text(30)},
            {"role": "user", "content": "now what?"},
        ]
        response = httpx.post(
            rig.url + "/v1/messages",
            json={"model": "tiny-claude", "max_tokens": 100, "messages": messages},
            headers={"x-api-key": rig.key},
        )
        assert response.status_code == 200
        assert int(response.headers["x-relay-context-dropped"]) >= 1
        sent = rig.upstream.requests[-1].json()["messages"]
        uses = {
            b["id"]
            for m in sent
            if isinstance(m["content"], list)
            for b in m["content"]
            if b["type"] == "tool_use"
        }
        results = {
            b["tool_use_id"]
            for m in sent
            if isinstance(m["content"], list)
            for b in m["content"]
            if b["type"] == "tool_result"
        }
        assert uses == results
        assert sent[-1] == messages[-1]


def test_reject_answers_context_length_exceeded_in_each_shape(tmp_path: Path) -> None:
    with running_gateway(tmp_path, models=MODELS, context_policy="reject") as rig:
        before = len(rig.upstream.requests)
        response = rig.post(
            "/v1/chat/completions", {"model": "tiny", "messages": openai_conversation()}
        )
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "context_length_exceeded"
        assert "maximum context length is 600" in response.json()["error"]["message"]
        anthropic_shaped = httpx.post(
            rig.url + "/v1/messages",
            json={
                "model": "tiny-claude",
                "max_tokens": 100,
                "messages": [{"role": "user", "content": long_text(700)}],
            },
            headers={"x-api-key": rig.key},
        )
        assert anthropic_shaped.status_code == 400
        assert anthropic_shaped.json()["error"]["type"] == "invalid_request_error"
        assert len(rig.upstream.requests) == before  # nothing left Relay


def test_truncate_caps_messages_and_keeps_system_plus_last_n(tmp_path: Path) -> None:
    with running_gateway(
        tmp_path,
        context_policy="truncate",
        truncate_threshold_tokens=150,
        truncate_keep_messages=3,
        truncate_message_tokens=50,
    ) as rig:
        messages = openai_conversation()
        response = rig.post("/v1/chat/completions", {"model": "gpt-4o", "messages": messages})
        assert response.status_code == 200
        sent = rig.upstream.requests[-1].json()["messages"]
        assert sent[0] == messages[0]
        assert len(sent) == 4  # the system prompt and the last three messages
        assert sent[1]["content"].startswith("middle")
        assert sent[2:] == messages[-2:]
        assert response.headers["x-relay-context-dropped"] == str(len(messages) - 4)
        # Long messages were cut on a token boundary and marked.
        capped = rig.post(
            "/v1/chat/completions",
            {"model": "gpt-4o", "messages": [{"role": "user", "content": long_text(400)}]},
        )
        text = rig.upstream.requests[-1].json()["messages"][0]["content"]
        assert text.endswith("[...content truncated]")
        assert (
            TokenCounter.for_model("gpt-4o").count(text.removesuffix("\n[...content truncated]"))
            <= 50
        )
        assert capped.status_code == 200


def test_off_forwards_everything_but_still_counts(tmp_path: Path) -> None:
    with running_gateway(tmp_path, models=MODELS, context_policy="off") as rig:
        messages = openai_conversation()
        response = rig.post("/v1/chat/completions", {"model": "tiny", "messages": messages})
        assert response.status_code == 200
        assert response.headers["x-relay-context-dropped"] == "0"
        assert rig.upstream.requests[-1].json()["messages"] == messages
        assert int(response.headers["x-relay-prompt-tokens"]) == TokenCounter.for_model(
            "gpt-4o"
        ).count_messages(messages)
