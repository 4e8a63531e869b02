"""OpenAI Chat Completions stream chunks <-> neutral stream events.

The decoder turns chunks into well-formed block sequences (each block started once and stopped
once, tool-call ids kept per index even when calls run in parallel), holds the stop reason until
the usage chunk has come, and says ``tool_use`` when tools were called. The encoder frames
neutral events as OpenAI chunks (``data: {...}`` then ``data: [DONE]``).
"""

from __future__ import annotations

import json
import time
from typing import Any

from relay_context.gateway.providers.openai.chat_response import (
    STOP_TO_OPENAI,
    emit_usage,
    parse_usage,
    stop_from_openai,
)
from relay_context.gateway.schema import (
    BlockStart,
    BlockStop,
    MessageDelta,
    MessageStart,
    MessageStop,
    StopReason,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolArgumentsDelta,
    Usage,
)


class OpenAIStreamDecoder:
    """Feeds parsed chunks (``feed``), then ``finish`` at ``[DONE]`` or end of stream."""

    def __init__(self) -> None:
        self._started = False
        self._next_index = 0
        self._open: int | None = None
        self._open_kind: str | None = None
        #: OpenAI tool-call index -> neutral block index (calls streamed live).
        self._tool_blocks: dict[int, int] = {}
        self._open_tool: int | None = None
        #: Calls that began while another one was streaming: OpenAI may interleave argument
        #: deltas by index, which a sequential protocol (Anthropic's blocks) cannot carry, so
        #: each is held (id, name, argument pieces) and sent whole once the live one closes.
        self._held_tools: dict[int, tuple[str, str, list[str]]] = {}
        self._finish: str | None = None
        self._usage: Usage | None = None
        self._finished = False

    def _close(self, out: list[StreamEvent]) -> None:
        if self._open is not None:
            out.append(BlockStop(self._open))
            self._open = None
            self._open_kind = None
            self._open_tool = None
        held, self._held_tools = self._held_tools, {}
        for position, (call_id, name, pieces) in held.items():
            block = self._open_block(out, "tool_use", tool_call_id=call_id, tool_name=name)
            self._tool_blocks[position] = block
            if pieces:
                out.append(ToolArgumentsDelta(block, "".join(pieces)))
            out.append(BlockStop(block))
            self._open = None
            self._open_kind = None

    def _open_block(self, out: list[StreamEvent], kind: str, **extra: Any) -> int:
        self._close(out)
        index = self._next_index
        self._next_index += 1
        out.append(BlockStart(index, kind, **extra))  # type: ignore[arg-type]
        self._open = index
        self._open_kind = kind
        return index

    def feed(self, chunk: dict[str, Any]) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        if not self._started:
            self._started = True
            out.append(MessageStart(str(chunk.get("id", "")), str(chunk.get("model", ""))))
        usage = parse_usage(chunk.get("usage"))
        if usage is not None:
            self._usage = usage
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                if self._open_kind != "thinking":
                    self._open_block(out, "thinking")
                assert self._open is not None
                out.append(ThinkingDelta(self._open, reasoning))
            content = delta.get("content")
            if isinstance(content, str) and content:
                if self._open_kind != "text":
                    self._open_block(out, "text")
                assert self._open is not None
                out.append(TextDelta(self._open, content))
            for call in delta.get("tool_calls") or []:
                self._tool_call_delta(out, call)
            finish = choice.get("finish_reason")
            if finish:
                self._finish = finish
                self._close(out)
        return out

    def _tool_call_delta(self, out: list[StreamEvent], call: dict[str, Any]) -> None:
        position = int(call.get("index", 0))
        fn = call.get("function") or {}
        args = fn.get("arguments")
        piece = args if isinstance(args, str) else ""
        held = self._held_tools.get(position)
        if held is not None:
            held[2].append(piece)
            return
        block = self._tool_blocks.get(position)
        if block is None:
            call_id = str(call.get("id") or f"call_{position}")
            name = str(fn.get("name") or "")
            if self._open_tool is not None:  # another call is streaming: hold this one
                self._held_tools[position] = (call_id, name, [piece])
                return
            block = self._open_block(out, "tool_use", tool_call_id=call_id, tool_name=name)
            self._tool_blocks[position] = block
            self._open_tool = position
        if piece and self._open == block:
            out.append(ToolArgumentsDelta(block, piece))

    def finish(self) -> list[StreamEvent]:
        if self._finished:
            return []
        self._finished = True
        out: list[StreamEvent] = []
        if not self._started:
            out.append(MessageStart("", ""))
        self._close(out)
        stop = stop_from_openai(self._finish or "stop", has_tool_calls=bool(self._tool_blocks))
        out.append(MessageDelta(stop, self._usage))
        out.append(MessageStop())
        return out


class OpenAIStreamEncoder:
    """Neutral events as OpenAI ``chat.completion.chunk`` SSE events."""

    def __init__(
        self, model: str, *, include_usage: bool, fallback_usage: Usage | None = None
    ) -> None:
        self.model = model
        self.include_usage = include_usage
        self.id = "chatcmpl-relay"
        self.created = int(time.time())
        self._tool_positions: dict[int, int] = {}
        self._has_tools = False
        self._fallback_usage = fallback_usage
        self.usage: Usage | None = None
        self.stop_reason: StopReason | None = None

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        body: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if self.include_usage:
            body["usage"] = None
        return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"

    def encode(self, event: StreamEvent) -> bytes:
        if isinstance(event, MessageStart):
            if event.id:
                self.id = event.id if event.id.startswith("chatcmpl") else f"chatcmpl-{event.id}"
            return self._chunk({"role": "assistant", "content": ""})
        if isinstance(event, TextDelta):
            return self._chunk({"content": event.text})
        if isinstance(event, ThinkingDelta):
            return self._chunk({"reasoning_content": event.text})
        if isinstance(event, BlockStart) and event.kind == "tool_use":
            position = len(self._tool_positions)
            self._tool_positions[event.index] = position
            self._has_tools = True
            return self._chunk(
                {
                    "tool_calls": [
                        {
                            "index": position,
                            "id": event.tool_call_id,
                            "type": "function",
                            "function": {"name": event.tool_name, "arguments": ""},
                        }
                    ]
                }
            )
        if isinstance(event, ToolArgumentsDelta):
            position = self._tool_positions.get(event.index, 0)
            return self._chunk(
                {"tool_calls": [{"index": position, "function": {"arguments": event.partial_json}}]}
            )
        if isinstance(event, MessageDelta):
            stop = event.stop_reason or "end_turn"
            if self._has_tools and stop == "end_turn":
                stop = "tool_use"
            self.stop_reason = stop
            if event.usage is not None:
                self.usage = event.usage
            return self._chunk({}, STOP_TO_OPENAI.get(stop, "stop"))
        if isinstance(event, MessageStop):
            tail = b""
            usage = self.usage or self._fallback_usage
            if self.include_usage and usage is not None:
                body = {
                    "id": self.id,
                    "object": "chat.completion.chunk",
                    "created": self.created,
                    "model": self.model,
                    "choices": [],
                    "usage": emit_usage(usage),
                }
                tail = b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"
            return tail + b"data: [DONE]\n\n"
        # BlockStart of text/thinking, BlockStop, SignatureDelta: nothing on OpenAI's wire.
        return b""


__all__ = ["OpenAIStreamDecoder", "OpenAIStreamEncoder"]
