"""Anthropic Messages stream events <-> neutral stream events.

The encoder keeps the protocol's invariants whatever its input: one ``content_block_start``
and exactly one ``content_block_stop`` per block (a duplicate stop is a bug peers shipped),
``message_delta`` before ``message_stop``, and ``tool_use`` as the stop reason when tools were
called.
"""

from __future__ import annotations

import json
from typing import Any

from relay_context.gateway.errors import UpstreamError
from relay_context.gateway.providers.anthropic.messages_response import (
    emit_usage,
    parse_stop,
    parse_usage,
)
from relay_context.gateway.schema import (
    BlockStart,
    BlockStop,
    MessageDelta,
    MessageStart,
    MessageStop,
    SignatureDelta,
    StopReason,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolArgumentsDelta,
    Usage,
)


class AnthropicStreamDecoder:
    """``feed(event_name, data)`` for each SSE event of an Anthropic stream."""

    def __init__(self) -> None:
        self._usage: Usage | None = None
        self._done = False

    def feed(self, event: str | None, data: dict[str, Any]) -> list[StreamEvent]:
        kind = data.get("type") or event
        if kind == "message_start":
            message = data.get("message") or {}
            self._usage = parse_usage(message.get("usage"))
            return [
                MessageStart(str(message.get("id", "")), str(message.get("model", "")), self._usage)
            ]
        if kind == "content_block_start":
            index = int(data.get("index", 0))
            block = data.get("content_block") or {}
            btype = block.get("type")
            if btype == "tool_use":
                return [BlockStart(index, "tool_use", str(block.get("id")), str(block.get("name")))]
            if btype == "thinking":
                return [BlockStart(index, "thinking")]
            if btype == "redacted_thinking":
                return [BlockStart(index, "redacted_thinking", data=str(block.get("data", "")))]
            out: list[StreamEvent] = [BlockStart(index, "text")]
            if block.get("text"):
                out.append(TextDelta(index, str(block["text"])))
            return out
        if kind == "content_block_delta":
            index = int(data.get("index", 0))
            delta = data.get("delta") or {}
            dtype = delta.get("type")
            if dtype == "text_delta":
                return [TextDelta(index, str(delta.get("text", "")))]
            if dtype == "input_json_delta":
                return [ToolArgumentsDelta(index, str(delta.get("partial_json", "")))]
            if dtype == "thinking_delta":
                return [ThinkingDelta(index, str(delta.get("thinking", "")))]
            if dtype == "signature_delta":
                return [SignatureDelta(index, str(delta.get("signature", "")))]
            return []
        if kind == "content_block_stop":
            return [BlockStop(int(data.get("index", 0)))]
        if kind == "message_delta":
            delta = data.get("delta") or {}
            self._usage = parse_usage(data.get("usage"), self._usage)
            return [
                MessageDelta(
                    parse_stop(delta.get("stop_reason")), self._usage, delta.get("stop_sequence")
                )
            ]
        if kind == "message_stop":
            self._done = True
            return [MessageStop()]
        if kind == "error":
            err = data.get("error") or {}
            status = 529 if err.get("type") == "overloaded_error" else 500
            raise UpstreamError(
                str(err.get("message", "upstream stream error")),
                status=status,
                provider="anthropic",
                upstream_type=err.get("type"),
            )
        return []  # ping and future event types

    @property
    def done(self) -> bool:
        return self._done


def _event(name: str, data: dict[str, Any]) -> bytes:
    return (
        b"event: "
        + name.encode()
        + b"\ndata: "
        + json.dumps(data, separators=(",", ":")).encode()
        + b"\n\n"
    )


class AnthropicStreamEncoder:
    """Neutral events as Anthropic SSE events."""

    def __init__(self, model: str, *, prompt_tokens: int = 0) -> None:
        self.model = model
        self.prompt_tokens = prompt_tokens
        self._open: set[int] = set()
        self._closed: set[int] = set()
        self._has_tools = False
        self._stopped = False
        self._delta_sent = False
        self.usage: Usage | None = None
        self.stop_reason: StopReason | None = None

    def encode(self, event: StreamEvent) -> bytes:
        if isinstance(event, MessageStart):
            usage = event.usage or Usage(input_tokens=self.prompt_tokens)
            ident = event.id if event.id.startswith("msg_") else f"msg_{event.id or 'relay'}"
            message: dict[str, Any] = {
                "id": ident,
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {**emit_usage(usage), "output_tokens": usage.output_tokens or 1},
            }
            return _event("message_start", {"type": "message_start", "message": message}) + _event(
                "ping", {"type": "ping"}
            )
        if isinstance(event, BlockStart):
            if event.index in self._open or event.index in self._closed:
                return b""
            self._open.add(event.index)
            block: dict[str, Any]
            if event.kind == "tool_use":
                self._has_tools = True
                block = {
                    "type": "tool_use",
                    "id": event.tool_call_id,
                    "name": event.tool_name,
                    "input": {},
                }
            elif event.kind == "thinking":
                block = {"type": "thinking", "thinking": "", "signature": ""}
            elif event.kind == "redacted_thinking":
                block = {"type": "redacted_thinking", "data": event.data or ""}
            else:
                block = {"type": "text", "text": ""}
            return _event(
                "content_block_start",
                {"type": "content_block_start", "index": event.index, "content_block": block},
            )
        if isinstance(event, TextDelta | ThinkingDelta | SignatureDelta | ToolArgumentsDelta):
            if event.index not in self._open:
                return b""
            if isinstance(event, TextDelta):
                delta: dict[str, Any] = {"type": "text_delta", "text": event.text}
            elif isinstance(event, ThinkingDelta):
                delta = {"type": "thinking_delta", "thinking": event.text}
            elif isinstance(event, SignatureDelta):
                delta = {"type": "signature_delta", "signature": event.signature}
            else:
                delta = {"type": "input_json_delta", "partial_json": event.partial_json}
            return _event(
                "content_block_delta",
                {"type": "content_block_delta", "index": event.index, "delta": delta},
            )
        if isinstance(event, BlockStop):
            if event.index not in self._open:
                return b""  # never a second content_block_stop for one block
            self._open.discard(event.index)
            self._closed.add(event.index)
            return _event(
                "content_block_stop", {"type": "content_block_stop", "index": event.index}
            )
        if isinstance(event, MessageDelta):
            out = self._close_all()
            stop = event.stop_reason or "end_turn"
            if self._has_tools and stop == "end_turn":
                stop = "tool_use"
            self.stop_reason = stop
            if event.usage is not None:
                self.usage = event.usage
            usage = self.usage or Usage(input_tokens=self.prompt_tokens)
            self._delta_sent = True
            return out + _event(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": stop, "stop_sequence": event.stop_sequence},
                    "usage": emit_usage(usage),
                },
            )
        if isinstance(event, MessageStop):
            if self._stopped:
                return b""
            self._stopped = True
            out = self._close_all()
            if not self._delta_sent:
                out += self.encode(MessageDelta("end_turn", None))
            return out + _event("message_stop", {"type": "message_stop"})
        return b""

    def _close_all(self) -> bytes:
        out = b""
        for index in sorted(self._open):
            out += self.encode(BlockStop(index))
        return out


__all__ = ["AnthropicStreamDecoder", "AnthropicStreamEncoder"]
