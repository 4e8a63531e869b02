"""Gemini ``streamGenerateContent?alt=sse`` chunks <-> neutral stream events.

Gemini streams whole parts (a function call arrives complete in one chunk); the decoder turns
each into a block, the encoder buffers a tool call's arguments until its block stops."""

from __future__ import annotations

import json
from typing import Any

from relay_context.gateway.providers.gemini.generate_response import (
    STOP_TO_GEMINI,
    emit_usage,
    parse_usage,
    stop_from_gemini,
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


class GeminiStreamDecoder:
    def __init__(self) -> None:
        self._started = False
        self._index = 0
        self._open: int | None = None
        self._open_kind: str | None = None
        self._calls = 0
        self._finish: str | None = None
        self._usage: Usage | None = None

    def _close(self, out: list[StreamEvent]) -> None:
        if self._open is not None:
            out.append(BlockStop(self._open))
            self._open = None
            self._open_kind = None

    def _start(self, out: list[StreamEvent], kind: str, **extra: Any) -> int:
        self._close(out)
        index = self._index
        self._index += 1
        out.append(BlockStart(index, kind, **extra))  # type: ignore[arg-type]
        self._open, self._open_kind = index, kind
        return index

    def feed(self, chunk: dict[str, Any]) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        if not self._started:
            self._started = True
            out.append(
                MessageStart(str(chunk.get("responseId", "")), str(chunk.get("modelVersion", "")))
            )
        self._usage = parse_usage(chunk.get("usageMetadata")) or self._usage
        candidates = chunk.get("candidates") or []
        candidate = candidates[0] if candidates and isinstance(candidates[0], dict) else {}
        for p in (candidate.get("content") or {}).get("parts") or []:
            if not isinstance(p, dict):
                continue
            if "text" in p:
                kind = "thinking" if p.get("thought") else "text"
                if self._open_kind != kind:
                    self._start(out, kind)
                assert self._open is not None
                text = str(p["text"])
                out.append(
                    ThinkingDelta(self._open, text)
                    if kind == "thinking"
                    else TextDelta(self._open, text)
                )
            elif "functionCall" in p:
                call = p["functionCall"] or {}
                self._calls += 1
                name = str(call.get("name"))
                index = self._start(
                    out,
                    "tool_use",
                    tool_call_id=str(call.get("id") or f"call_{name}_{self._calls}"),
                    tool_name=name,
                )
                out.append(
                    ToolArgumentsDelta(
                        index, json.dumps(call.get("args") or {}, separators=(",", ":"))
                    )
                )
                self._close(out)
        if candidate.get("finishReason"):
            self._finish = str(candidate["finishReason"])
        return out

    def finish(self) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        if not self._started:
            out.append(MessageStart("", ""))
        self._close(out)
        stop = stop_from_gemini(self._finish or "STOP", has_tool_calls=self._calls > 0)
        out += [MessageDelta(stop, self._usage), MessageStop()]
        return out


class GeminiStreamEncoder:
    """Neutral events as Gemini SSE chunks (``data: {GenerateContentResponse}``)."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = ""
        self._tools: dict[int, list[str]] = {}
        self._names: dict[int, tuple[str, str]] = {}
        self.usage: Usage | None = None
        self.stop_reason: StopReason | None = None

    def _chunk(self, parts: list[dict[str, Any]], **extra: Any) -> bytes:
        candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
        candidate.update(extra.pop("candidate", {}))
        body: dict[str, Any] = {
            "candidates": [candidate],
            "modelVersion": self.model,
            "responseId": self.id,
        }
        body.update(extra)
        return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\r\n\r\n"

    def encode(self, event: StreamEvent) -> bytes:
        if isinstance(event, MessageStart):
            self.id = event.id
            return b""
        if isinstance(event, TextDelta):
            return self._chunk([{"text": event.text}]) if event.text else b""
        if isinstance(event, ThinkingDelta):
            return self._chunk([{"text": event.text, "thought": True}]) if event.text else b""
        if isinstance(event, BlockStart) and event.kind == "tool_use":
            self._tools[event.index] = []
            self._names[event.index] = (event.tool_name or "", event.tool_call_id or "")
            return b""
        if isinstance(event, ToolArgumentsDelta):
            if event.index in self._tools:
                self._tools[event.index].append(event.partial_json)
            return b""
        if isinstance(event, BlockStop) and event.index in self._tools:
            raw = "".join(self._tools.pop(event.index))
            name, call_id = self._names.pop(event.index)
            try:
                args = json.loads(raw) if raw.strip() else {}
            except ValueError:
                args = {"arguments": raw}
            return self._chunk([{"functionCall": {"name": name, "args": args, "id": call_id}}])
        if isinstance(event, MessageDelta):
            self.stop_reason = event.stop_reason
            if event.usage is not None:
                self.usage = event.usage
            extra: dict[str, Any] = {
                "candidate": {
                    "finishReason": STOP_TO_GEMINI.get(event.stop_reason or "end_turn", "STOP")
                }
            }
            if self.usage is not None:
                extra["usageMetadata"] = emit_usage(self.usage)
            return self._chunk([{"text": ""}], **extra)
        return b""


__all__ = ["GeminiStreamDecoder", "GeminiStreamEncoder"]
