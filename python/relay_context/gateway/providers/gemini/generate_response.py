"""Gemini ``GenerateContentResponse`` <-> :class:`~relay_context.gateway.schema.ChatResponse`."""

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

STOP_FROM_GEMINI: dict[str, StopReason] = {
    "STOP": "end_turn",
    "MAX_TOKENS": "max_tokens",
    "SAFETY": "refusal",
    "RECITATION": "refusal",
    "PROHIBITED_CONTENT": "refusal",
    "BLOCKLIST": "refusal",
    "SPII": "refusal",
}
STOP_TO_GEMINI: dict[str, str] = {
    "end_turn": "STOP",
    "stop_sequence": "STOP",
    "tool_use": "STOP",  # Gemini reports function calls with STOP
    "max_tokens": "MAX_TOKENS",
    "refusal": "SAFETY",
}


def parse_usage(raw: Any) -> Usage | None:
    if not isinstance(raw, dict):
        return None
    return Usage(
        input_tokens=int(raw.get("promptTokenCount") or 0),
        output_tokens=int(raw.get("candidatesTokenCount") or 0)
        + int(raw.get("thoughtsTokenCount") or 0),
        cached_input_tokens=int(raw.get("cachedContentTokenCount") or 0),
    )


def emit_usage(usage: Usage) -> dict[str, Any]:
    return {
        "promptTokenCount": usage.input_tokens,
        "candidatesTokenCount": usage.output_tokens,
        "totalTokenCount": usage.input_tokens + usage.output_tokens,
        "cachedContentTokenCount": usage.cached_input_tokens,
    }


def parse_parts(raw: Any, calls_seen: int = 0) -> list[Part]:
    parts: list[Part] = []
    for p in raw or []:
        if not isinstance(p, dict):
            continue
        if "text" in p:
            if p.get("thought"):
                parts.append(ThinkingPart(str(p["text"]), p.get("thoughtSignature")))
            else:
                parts.append(TextPart(str(p["text"])))
        elif "functionCall" in p:
            call = p["functionCall"] or {}
            calls_seen += 1
            name = str(call.get("name"))
            parts.append(
                ToolCallPart(
                    str(call.get("id") or f"call_{name}_{calls_seen}"),
                    name,
                    json.dumps(call.get("args") or {}, separators=(",", ":")),
                )
            )
    return parts


def stop_from_gemini(finish: Any, *, has_tool_calls: bool) -> StopReason | None:
    if finish is None:
        return None
    if has_tool_calls:
        return "tool_use"
    return STOP_FROM_GEMINI.get(str(finish), "end_turn")


def parse_generate_response(body: dict[str, Any]) -> ChatResponse:
    candidates = body.get("candidates") or [{}]
    candidate = candidates[0] if isinstance(candidates[0], dict) else {}
    parts = parse_parts((candidate.get("content") or {}).get("parts"))
    has_calls = any(isinstance(p, ToolCallPart) for p in parts)
    return ChatResponse(
        id=str(body.get("responseId", "")),
        model=str(body.get("modelVersion", "")),
        parts=parts,
        stop_reason=stop_from_gemini(
            candidate.get("finishReason") or "STOP", has_tool_calls=has_calls
        ),
        usage=parse_usage(body.get("usageMetadata")),
    )


def emit_parts(parts: list[Part]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in parts:
        if isinstance(p, TextPart):
            out.append({"text": p.text})
        elif isinstance(p, ThinkingPart) and p.text:
            out.append({"text": p.text, "thought": True})
        elif isinstance(p, ToolCallPart):
            try:
                args = json.loads(p.arguments) if p.arguments.strip() else {}
            except ValueError:
                args = {"arguments": p.arguments}
            out.append({"functionCall": {"name": p.name, "args": args, "id": p.id}})
    return out


def emit_generate_response(resp: ChatResponse, model: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "candidates": [
            {
                "content": {"role": "model", "parts": emit_parts(resp.parts)},
                "finishReason": STOP_TO_GEMINI.get(resp.stop_reason or "end_turn", "STOP"),
                "index": 0,
            }
        ],
        "modelVersion": model,
        "responseId": resp.id,
    }
    if resp.usage is not None:
        out["usageMetadata"] = emit_usage(resp.usage)
    return out


__all__ = [
    "emit_generate_response",
    "emit_usage",
    "parse_generate_response",
    "parse_parts",
    "parse_usage",
    "stop_from_gemini",
]
