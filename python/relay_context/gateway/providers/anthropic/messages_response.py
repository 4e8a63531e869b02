"""Anthropic Messages responses <-> :class:`~relay_context.gateway.schema.ChatResponse`."""

from __future__ import annotations

import json
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

_KNOWN_STOPS: dict[str, StopReason] = {
    "end_turn": "end_turn",
    "max_tokens": "max_tokens",
    "tool_use": "tool_use",
    "stop_sequence": "stop_sequence",
    "refusal": "refusal",
}


def parse_stop(raw: Any) -> StopReason | None:
    if raw is None:
        return None
    return _KNOWN_STOPS.get(str(raw), "end_turn")


def parse_usage(raw: Any, base: Usage | None = None) -> Usage | None:
    """Neutral usage: ``input_tokens`` includes the cache reads and writes (as OpenAI's
    ``prompt_tokens`` does); fields missing from ``raw`` keep ``base``'s values."""
    if not isinstance(raw, dict):
        return base
    b = base or Usage()
    read = raw.get("cache_read_input_tokens")
    write = raw.get("cache_creation_input_tokens")
    fresh = raw.get("input_tokens")
    cached = int(read) if read is not None else b.cached_input_tokens
    written = int(write) if write is not None else b.cache_write_tokens
    input_tokens = int(fresh) + cached + written if fresh is not None else b.input_tokens
    output = raw.get("output_tokens")
    return Usage(
        input_tokens=input_tokens,
        output_tokens=int(output) if output is not None else b.output_tokens,
        cached_input_tokens=cached,
        cache_write_tokens=written,
    )


def emit_usage(usage: Usage) -> dict[str, Any]:
    fresh = max(0, usage.input_tokens - usage.cached_input_tokens - usage.cache_write_tokens)
    return {
        "input_tokens": fresh,
        "cache_creation_input_tokens": usage.cache_write_tokens,
        "cache_read_input_tokens": usage.cached_input_tokens,
        "output_tokens": usage.output_tokens,
    }


def parse_messages_response(body: dict[str, Any]) -> ChatResponse:
    parts: list[Part] = []
    for block in body.get("content") or []:
        kind = block.get("type")
        if kind == "text":
            parts.append(TextPart(str(block.get("text", ""))))
        elif kind == "tool_use":
            parts.append(
                ToolCallPart(
                    str(block.get("id")),
                    str(block.get("name")),
                    json.dumps(block.get("input") or {}, separators=(",", ":")),
                )
            )
        elif kind == "thinking":
            parts.append(ThinkingPart(str(block.get("thinking", "")), block.get("signature")))
        elif kind == "redacted_thinking":
            parts.append(ThinkingPart("", redacted_data=str(block.get("data", ""))))
    return ChatResponse(
        id=str(body.get("id", "")),
        model=str(body.get("model", "")),
        parts=parts,
        stop_reason=parse_stop(body.get("stop_reason")),
        usage=parse_usage(body.get("usage")),
        stop_sequence=body.get("stop_sequence"),
    )


def emit_content(parts: list[Part]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in parts:
        if isinstance(p, TextPart):
            out.append({"type": "text", "text": p.text})
        elif isinstance(p, ToolCallPart):
            try:
                arguments = json.loads(p.arguments) if p.arguments.strip() else {}
            except ValueError:
                arguments = {"arguments": p.arguments}
            out.append({"type": "tool_use", "id": p.id, "name": p.name, "input": arguments})
        elif isinstance(p, ThinkingPart):
            if p.redacted_data is not None:
                out.append({"type": "redacted_thinking", "data": p.redacted_data})
            else:
                out.append({"type": "thinking", "thinking": p.text, "signature": p.signature or ""})
    return out


def emit_messages_response(resp: ChatResponse, model: str) -> dict[str, Any]:
    stop = resp.stop_reason or "end_turn"
    if stop == "end_turn" and any(isinstance(p, ToolCallPart) for p in resp.parts):
        stop = "tool_use"
    return {
        "id": resp.id if resp.id.startswith("msg_") else f"msg_{resp.id}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": emit_content(resp.parts),
        "stop_reason": stop,
        "stop_sequence": resp.stop_sequence,
        "usage": emit_usage(resp.usage or Usage()),
    }


__all__ = [
    "emit_messages_response",
    "emit_usage",
    "parse_messages_response",
    "parse_stop",
    "parse_usage",
]
