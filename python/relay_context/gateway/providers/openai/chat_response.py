"""OpenAI Chat Completions responses <-> :class:`~relay_context.gateway.schema.ChatResponse`."""

from __future__ import annotations

import time
from typing import Any

from relay_context.gateway.schema import (
    ChatResponse,
    Part,
    StopReason,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    Usage,
)

STOP_FROM_OPENAI: dict[str, StopReason] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
STOP_TO_OPENAI: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "stop",
}


def stop_from_openai(finish: str | None, *, has_tool_calls: bool) -> StopReason | None:
    if finish is None:
        return None
    reason = STOP_FROM_OPENAI.get(finish, "end_turn")
    # Some OpenAI-compatible servers say "stop" after tool calls; the client must still see
    # tool_use, or it never runs the tools (a bug peers have shipped).
    if has_tool_calls and reason == "end_turn":
        return "tool_use"
    return reason


def parse_usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    details = raw.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return Usage(
        input_tokens=int(raw.get("prompt_tokens") or 0),
        output_tokens=int(raw.get("completion_tokens") or 0),
        cached_input_tokens=int(cached or 0),
    )


def emit_usage(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.input_tokens + usage.output_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_input_tokens},
    }


def parse_chat_response(body: dict[str, Any]) -> ChatResponse:
    choices = body.get("choices") or [{}]
    choice = choices[0] if isinstance(choices[0], dict) else {}
    message = choice.get("message") or {}
    parts: list[Part] = []
    reasoning = message.get("reasoning_content")
    if isinstance(reasoning, str) and reasoning:
        parts.append(ThinkingPart(reasoning))
    content = message.get("content")
    if isinstance(content, str) and content:
        parts.append(TextPart(content))
    calls = message.get("tool_calls") or []
    for call in calls:
        fn = call.get("function") or {}
        parts.append(
            ToolCallPart(str(call.get("id")), str(fn.get("name")), str(fn.get("arguments") or "{}"))
        )
    return ChatResponse(
        id=str(body.get("id", "")),
        model=str(body.get("model", "")),
        parts=parts,
        stop_reason=stop_from_openai(choice.get("finish_reason"), has_tool_calls=bool(calls)),
        usage=parse_usage(body.get("usage")),
    )


def emit_chat_response(resp: ChatResponse, model: str) -> dict[str, Any]:
    text = "".join(p.text for p in resp.parts if isinstance(p, TextPart))
    thinking = "".join(p.text for p in resp.parts if isinstance(p, ThinkingPart))
    calls = [
        {"id": p.id, "type": "function", "function": {"name": p.name, "arguments": p.arguments}}
        for p in resp.parts
        if isinstance(p, ToolCallPart)
    ]
    message: dict[str, Any] = {"role": "assistant", "content": text or None, "refusal": None}
    if thinking:
        message["reasoning_content"] = thinking
    if calls:
        message["tool_calls"] = calls
    stop = resp.stop_reason or "end_turn"
    if calls and stop == "end_turn":
        stop = "tool_use"
    out: dict[str, Any] = {
        "id": resp.id if resp.id.startswith("chatcmpl") else f"chatcmpl-{resp.id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": STOP_TO_OPENAI[stop],
            }
        ],
    }
    if resp.usage is not None:
        out["usage"] = emit_usage(resp.usage)
    return out


__all__ = [
    "STOP_TO_OPENAI",
    "emit_chat_response",
    "emit_usage",
    "parse_chat_response",
    "parse_usage",
    "stop_from_openai",
]
