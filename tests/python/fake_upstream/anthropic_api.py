"""Anthropic-shaped answers: messages (streamed as Anthropic frames them, thinking blocks and
parallel tool_use included) and count_tokens."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from .replies import Full, Stream, sse, tool_arguments, tool_names
from .scenario import Scenario
from .words import estimate_tokens, reply_words

_STATUS_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def error_body(status: int, message: str) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {"type": _STATUS_TYPES.get(status, "api_error"), "message": message},
    }


THINKING = "Let me think about this step by step."
SIGNATURE = "EqQBCkYIARgCIkDfakeSignature=="


def _stop(s: Scenario) -> str:
    if s.stop:
        return s.stop
    return "tool_use" if s.tools else "end_turn"


def messages(body: dict[str, Any], raw: bytes, s: Scenario, seq: int) -> Full | Stream:
    model = str(body.get("model", ""))
    prompt = estimate_tokens(raw)
    words = reply_words(s.words, s.text)
    names = tool_names(body)
    blocks: list[dict[str, Any]] = []
    if s.thinking:
        blocks.append({"type": "thinking", "thinking": THINKING, "signature": SIGNATURE})
    if words:
        blocks.append({"type": "text", "text": "".join(words)})
    for i in range(s.tools):
        blocks.append(
            {
                "type": "tool_use",
                "id": f"toolu_{seq}_{i}",
                "name": names[i % len(names)],
                "input": json.loads(tool_arguments(i)),
            }
        )
    output = len(words) + 10 * s.tools + (8 if s.thinking else 0)
    # Anthropic's input_tokens are the ones neither read from nor written to the cache.
    fresh = max(1, prompt - s.cached - s.cache_write)
    usage = {
        "input_tokens": fresh,
        "cache_creation_input_tokens": s.cache_write,
        "cache_read_input_tokens": s.cached,
        "output_tokens": output,
    }
    message = {
        "id": f"msg_fake{seq}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": _stop(s),
        "stop_sequence": None,
        "usage": usage,
    }
    if not body.get("stream"):
        return Full(message)

    def events() -> Iterator[bytes]:
        start = {
            **message,
            "content": [],
            "stop_reason": None,
            "usage": {**usage, "output_tokens": 1},
        }
        yield sse({"type": "message_start", "message": start}, "message_start")
        yield sse({"type": "ping"}, "ping")
        for index, block in enumerate(blocks):
            kind = block["type"]
            if kind == "thinking":
                opening: dict[str, Any] = {"type": "thinking", "thinking": "", "signature": ""}
            elif kind == "text":
                opening = {"type": "text", "text": ""}
            else:
                opening = {
                    "type": "tool_use",
                    "id": block["id"],
                    "name": block["name"],
                    "input": {},
                }
            yield sse(
                {"type": "content_block_start", "index": index, "content_block": opening},
                "content_block_start",
            )

            def delta(d: dict[str, Any], index: int = index) -> bytes:
                return sse(
                    {"type": "content_block_delta", "index": index, "delta": d},
                    "content_block_delta",
                )

            if kind == "thinking":
                for piece in THINKING.split(" "):
                    yield delta({"type": "thinking_delta", "thinking": piece + " "})
                yield delta({"type": "signature_delta", "signature": SIGNATURE})
            elif kind == "text":
                for w in words:
                    yield delta({"type": "text_delta", "text": w})
            else:
                args = json.dumps(block["input"])
                for i in range(0, len(args), 12):
                    yield delta({"type": "input_json_delta", "partial_json": args[i : i + 12]})
            yield sse({"type": "content_block_stop", "index": index}, "content_block_stop")
        final_usage = {"output_tokens": output}
        if not s.no_usage:
            final_usage.update(
                {
                    "input_tokens": fresh,
                    "cache_creation_input_tokens": s.cache_write,
                    "cache_read_input_tokens": s.cached,
                }
            )
        yield sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": _stop(s), "stop_sequence": None},
                "usage": final_usage,
            },
            "message_delta",
        )
        yield sse({"type": "message_stop"}, "message_stop")

    return Stream(events())


def count_tokens(body: dict[str, Any], raw: bytes, s: Scenario, seq: int) -> Full:
    return Full({"input_tokens": estimate_tokens(raw)})
