"""Gemini-shaped answers: generateContent and streamGenerateContent (``alt=sse``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from .replies import Full, Stream, tool_arguments
from .scenario import Scenario
from .words import estimate_tokens, reply_words

_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
}


def error_body(status: int, message: str) -> dict[str, Any]:
    return {
        "error": {"code": status, "message": message, "status": _STATUSES.get(status, "INTERNAL")}
    }


def _names(body: dict[str, Any]) -> list[str]:
    names = [
        str(fn.get("name"))
        for tool in body.get("tools") or []
        for fn in (tool or {}).get("functionDeclarations") or []
    ]
    return names or ["get_weather"]


def generate(
    body: dict[str, Any], raw: bytes, s: Scenario, seq: int, model: str, stream: bool
) -> Full | Stream:
    words = reply_words(s.words, s.text)
    names = _names(body)
    calls = [
        {"functionCall": {"name": names[i % len(names)], "args": json.loads(tool_arguments(i))}}
        for i in range(s.tools)
    ]
    usage = {
        "promptTokenCount": estimate_tokens(raw),
        "candidatesTokenCount": len(words) + 10 * s.tools,
        "totalTokenCount": estimate_tokens(raw) + len(words) + 10 * s.tools,
        "cachedContentTokenCount": s.cached,
    }
    finish = "MAX_TOKENS" if s.stop == "max_tokens" else "STOP"
    thought = [{"text": "Thinking it over.", "thought": True}] if s.thinking else []

    def response(parts: list[dict[str, Any]], last: bool) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        out: dict[str, Any] = {
            "candidates": [candidate],
            "modelVersion": model,
            "responseId": f"fake{seq}",
        }
        if last:
            candidate["finishReason"] = finish
            if not s.no_usage:
                out["usageMetadata"] = usage
        return out

    if not stream:
        text = [{"text": "".join(words)}] if words else []
        return Full(response([*thought, *text, *calls], True))

    def events() -> Iterator[bytes]:
        for part in thought:
            yield b"data: " + json.dumps(response([part], False)).encode() + b"\r\n\r\n"
        for w in words:
            yield b"data: " + json.dumps(response([{"text": w}], False)).encode() + b"\r\n\r\n"
        yield b"data: " + json.dumps(response(calls or [{"text": ""}], True)).encode() + b"\r\n\r\n"

    return Stream(events())
