"""OpenAI-shaped answers: chat completions (streamed as OpenAI frames them), embeddings,
responses, models."""

from __future__ import annotations

import base64
import struct
import time
from collections.abc import Iterator
from typing import Any

from .replies import Full, Stream, sse, tool_arguments, tool_names
from .scenario import Scenario
from .words import estimate_tokens, reply_words

_STATUS_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_denied",
    404: "invalid_request_error",
    429: "rate_limit_exceeded",
}


def error_body(status: int, message: str) -> dict[str, Any]:
    kind = _STATUS_TYPES.get(status, "server_error")
    code = "rate_limit_exceeded" if status == 429 else None
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _usage(prompt: int, completion: int, cached: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _finish(s: Scenario) -> str:
    if s.stop == "max_tokens":
        return "length"
    if s.stop:
        return s.stop
    return "tool_calls" if s.tools else "stop"


def chat(body: dict[str, Any], raw: bytes, s: Scenario, seq: int) -> Full | Stream:
    model = str(body.get("model", ""))
    prompt = estimate_tokens(raw)
    words = reply_words(s.words, s.text)
    names = tool_names(body)
    calls = [
        {
            "id": f"call_{seq}_{i}",
            "type": "function",
            "function": {"name": names[i % len(names)], "arguments": tool_arguments(i)},
        }
        for i in range(s.tools)
    ]
    completion = len(words) + 10 * s.tools
    created = int(time.time())
    ident = f"chatcmpl-fake{seq}"
    if not body.get("stream"):
        n = int(body.get("n") or 1)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(words) if words else None,
            "refusal": None,
            "annotations": [],
        }
        if calls:
            message["tool_calls"] = calls
        out: dict[str, Any] = {
            "id": ident,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [
                {"index": i, "message": message, "logprobs": None, "finish_reason": _finish(s)}
                for i in range(n)
            ],
            "system_fingerprint": "fp_fake",
            "service_tier": "default",
        }
        if not s.no_usage:
            out["usage"] = _usage(prompt, completion * n, s.cached)
        return Full(out)
    include_usage = bool((body.get("stream_options") or {}).get("include_usage")) and not s.no_usage

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        c: dict[str, Any] = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            c["usage"] = None
        return sse(c)

    def interleaved_tool_chunks() -> Iterator[bytes]:
        for i, call in enumerate(calls):
            head = {"index": i, "id": call["id"], "type": "function"}
            head["function"] = {"name": call["function"]["name"], "arguments": ""}
            yield chunk({"tool_calls": [head]})
        pieces = [
            [a[k : k + 12] for k in range(0, len(a), 12)]
            for a in (c["function"]["arguments"] for c in calls)
        ]
        for step in range(max(map(len, pieces), default=0)):
            for i, own in enumerate(pieces):
                if step < len(own):
                    delta = {"index": i, "function": {"arguments": own[step]}}
                    yield chunk({"tool_calls": [delta]})

    def events() -> Iterator[bytes]:
        yield chunk({"role": "assistant", "content": "", "refusal": None})
        for w in words:
            yield chunk({"content": w})
        if s.interleave_tools:
            yield from interleaved_tool_chunks()
            calls_left: list[Any] = []
        else:
            calls_left = calls
        for i, call in enumerate(calls_left):
            fn = call["function"]
            yield chunk(
                {
                    "tool_calls": [
                        {
                            "index": i,
                            "id": call["id"],
                            "type": "function",
                            "function": {"name": fn["name"], "arguments": ""},
                        }
                    ]
                }
            )
            args = fn["arguments"]
            for start in range(0, len(args), 12):
                piece = args[start : start + 12]
                yield chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]})
        yield chunk({}, _finish(s))
        if include_usage:
            yield sse(
                {
                    "id": ident,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "system_fingerprint": "fp_fake",
                    "choices": [],
                    "usage": _usage(prompt, completion, s.cached),
                }
            )
        yield sse("[DONE]")

    return Stream(events())


def embeddings(body: dict[str, Any], raw: bytes, s: Scenario, seq: int) -> Full:
    inputs = body.get("input")
    items = inputs if isinstance(inputs, list) else [inputs]
    dims = int(body.get("dimensions") or 8)
    data = []
    for i, _ in enumerate(items):
        vector = [((i + 1) * (j + 1) % 7) / 7.0 for j in range(dims)]
        if body.get("encoding_format") == "base64":
            packed = struct.pack(f"<{dims}f", *vector)
            embedding: Any = base64.b64encode(packed).decode()
        else:
            embedding = vector
        data.append({"object": "embedding", "index": i, "embedding": embedding})
    prompt = estimate_tokens(raw)
    return Full(
        {
            "object": "list",
            "data": data,
            "model": body.get("model"),
            "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
        }
    )


def responses(body: dict[str, Any], raw: bytes, s: Scenario, seq: int) -> Full | Stream:
    model = str(body.get("model", ""))
    words = reply_words(s.words, s.text)
    text = "".join(words)
    prompt = estimate_tokens(raw)
    usage = {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": s.cached},
        "output_tokens": len(words),
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + len(words),
    }
    item = {
        "type": "message",
        "id": f"msg_fake{seq}",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }
    response: dict[str, Any] = {
        "id": f"resp_fake{seq}",
        "object": "response",
        "created_at": int(time.time()),
        "status": "completed",
        "model": model,
        "output": [item],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage,
    }
    if not body.get("stream"):
        return Full(response)

    def events() -> Iterator[bytes]:
        n = 0

        def ev(kind: str, **data: Any) -> bytes:
            nonlocal n
            n += 1
            return sse({"type": kind, "sequence_number": n, **data}, event=kind)

        started = {**response, "status": "in_progress", "output": [], "usage": None}
        yield ev("response.created", response=started)
        yield ev(
            "response.output_item.added",
            output_index=0,
            item={**item, "status": "in_progress", "content": []},
        )
        part = {"type": "output_text", "text": "", "annotations": []}
        yield ev(
            "response.content_part.added",
            item_id=item["id"],
            output_index=0,
            content_index=0,
            part=part,
        )
        for w in words:
            yield ev(
                "response.output_text.delta",
                item_id=item["id"],
                output_index=0,
                content_index=0,
                delta=w,
            )
        yield ev(
            "response.output_text.done",
            item_id=item["id"],
            output_index=0,
            content_index=0,
            text=text,
        )
        yield ev(
            "response.content_part.done",
            item_id=item["id"],
            output_index=0,
            content_index=0,
            part={**part, "text": text},
        )
        yield ev("response.output_item.done", output_index=0, item=item)
        yield ev("response.completed", response=response)

    return Stream(events())


def models() -> Full:
    return Full(
        {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": 0, "owned_by": "fake"}
                for name in ("gpt-4o", "gpt-4o-mini", "text-embedding-3-small")
            ],
        }
    )
