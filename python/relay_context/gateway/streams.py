"""The client's side of a streamed answer, from an open upstream response.

Same format: the upstream's events are forwarded byte for byte; only the usage is read on the
way (and OpenAI's usage chunk, which the gateway asks for, is dropped when the client did not).
Other format: events are decoded to the neutral schema and encoded in the client's format.
A failure after the stream began ends it with the protocol's error event, and so does a
``budget`` that the answer would cross. ``on_end`` receives
the usage (``None`` if the upstream gave none) and the error, once, however the stream ends.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from typing import Any

from relay_context.gateway.budgets import StreamBudget
from relay_context.gateway.error_shapes import stream_error_event
from relay_context.gateway.errors import (
    BudgetExceededError,
    GatewayError,
    UpstreamError,
    UpstreamUnavailableError,
)
from relay_context.gateway.providers.anthropic import messages_response as anthropic_response
from relay_context.gateway.providers.anthropic.messages_stream import (
    AnthropicStreamDecoder,
    AnthropicStreamEncoder,
)
from relay_context.gateway.providers.gemini import generate_response as gemini_response
from relay_context.gateway.providers.gemini.generate_stream import (
    GeminiStreamDecoder,
    GeminiStreamEncoder,
)
from relay_context.gateway.providers.openai import chat_response as openai_response
from relay_context.gateway.providers.openai.chat_stream import (
    OpenAIStreamDecoder,
    OpenAIStreamEncoder,
)
from relay_context.gateway.schema import (
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    ToolArgumentsDelta,
    Usage,
)
from relay_context.gateway.sse_reader import SseEvent
from relay_context.gateway.upstream_client import ANSWER_READ_ERRORS, UpstreamAnswer
from relay_context.gateway.wire_formats import WireFormat

StreamEnd = Callable[[Usage | None, GatewayError | None], None]
_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')


def _cut(provider: str, exc: Exception) -> UpstreamUnavailableError:
    return UpstreamUnavailableError(
        f"upstream {provider} stream failed: {type(exc).__name__}", provider=provider
    )


def _openai_texts(chunk: Any) -> list[str]:
    """The answer's text in one OpenAI chunk (content, reasoning, tool arguments)."""
    out: list[str] = []
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    for choice in choices or []:
        delta = choice.get("delta") or {}
        for key in ("content", "reasoning_content"):
            if isinstance(delta.get(key), str):
                out.append(delta[key])
        for call in delta.get("tool_calls") or []:
            args = (call.get("function") or {}).get("arguments")
            if isinstance(args, str):
                out.append(args)
    return out


def _anthropic_text(data: Any) -> str:
    delta = data.get("delta") if isinstance(data, dict) else None
    if not isinstance(delta, dict):
        return ""
    for key in ("text", "partial_json", "thinking"):
        if isinstance(delta.get(key), str):
            return str(delta[key])
    return ""


class _Inspector:
    """Reads one format's events on their way through: usage, budget, what to drop."""

    def __init__(self, budget: StreamBudget | None) -> None:
        self.budget = budget
        self.usage: Usage | None = None
        self.error: GatewayError | None = None

    def spend(self, texts: list[str]) -> None:
        """Counts answer text against the budget; ``BudgetExceededError`` ends the stream."""
        if self.budget is not None and not all([self.budget.add(t) for t in texts]):
            raise self.budget.error()

    def __call__(self, event: SseEvent) -> bool:
        """Whether to forward ``event``."""
        raise NotImplementedError


class _OpenAIInspector(_Inspector):
    def __init__(self, budget: StreamBudget | None, strip_usage_chunk: bool) -> None:
        super().__init__(budget)
        self.strip_usage_chunk = strip_usage_chunk

    def __call__(self, event: SseEvent) -> bool:
        if self.budget is not None and event.data != b"[DONE]":
            self.spend(_openai_texts(json.loads(event.data)))
        if _USAGE_OBJECT.search(event.data):
            chunk = json.loads(event.data)
            self.usage = openai_response.parse_usage(chunk.get("usage")) or self.usage
            if self.strip_usage_chunk and not chunk.get("choices"):
                return False
        return True


class _AnthropicInspector(_Inspector):
    def __init__(self, budget: StreamBudget | None, provider: str) -> None:
        super().__init__(budget)
        self.provider = provider

    def __call__(self, event: SseEvent) -> bool:
        if self.budget is not None and event.event == "content_block_delta":
            self.spend([_anthropic_text(json.loads(event.data))])
        if event.event in ("message_start", "message_delta"):
            data = json.loads(event.data)
            raw = (
                (data.get("message") or {}).get("usage")
                if event.event == "message_start"
                else data.get("usage")
            )
            self.usage = anthropic_response.parse_usage(raw, self.usage)
        elif event.event == "error":
            self.error = UpstreamError("upstream stream error", status=500, provider=self.provider)
        return True


class _GeminiInspector(_Inspector):
    def __call__(self, event: SseEvent) -> bool:
        if self.budget is None and b"usageMetadata" not in event.data:
            return True
        chunk = json.loads(event.data)
        if isinstance(chunk, dict):
            self.usage = gemini_response.parse_usage(chunk.get("usageMetadata")) or self.usage
            self.spend(_gemini_texts(chunk))
        return True


async def _forward(
    response: UpstreamAnswer,
    fmt: WireFormat,
    provider: str,
    inspector: _Inspector,
    on_end: StreamEnd,
) -> AsyncIterator[bytes]:
    """The upstream's events byte for byte, each network read's events in one write."""
    error: GatewayError | None = None
    try:
        async for batch in response.event_batches():
            out: list[bytes] = []
            try:
                for event in batch:
                    if inspector(event):
                        out.append(event.raw)
            except BudgetExceededError as exc:
                error = exc
                out.append(stream_error_event(fmt, exc))
                yield b"".join(out)
                return
            if out:
                yield b"".join(out)
    except ANSWER_READ_ERRORS as exc:
        error = _cut(provider, exc)
        yield stream_error_event(fmt, error)
    finally:
        await response.aclose()
        on_end(inspector.usage, error or inspector.error)


def forward_openai(
    response: UpstreamAnswer,
    *,
    provider: str,
    strip_usage_chunk: bool,
    on_end: StreamEnd,
    budget: StreamBudget | None = None,
) -> AsyncIterator[bytes]:
    inspector = _OpenAIInspector(budget, strip_usage_chunk)
    return _forward(response, "openai", provider, inspector, on_end)


def forward_anthropic(
    response: UpstreamAnswer,
    *,
    provider: str,
    on_end: StreamEnd,
    budget: StreamBudget | None = None,
) -> AsyncIterator[bytes]:
    inspector = _AnthropicInspector(budget, provider)
    return _forward(response, "anthropic", provider, inspector, on_end)


def forward_gemini(
    response: UpstreamAnswer,
    *,
    provider: str,
    on_end: StreamEnd,
    budget: StreamBudget | None = None,
) -> AsyncIterator[bytes]:
    return _forward(response, "gemini", provider, _GeminiInspector(budget), on_end)


def _gemini_texts(chunk: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for candidate in chunk.get("candidates") or []:
        for part in ((candidate or {}).get("content") or {}).get("parts") or []:
            if isinstance(part, dict):
                if isinstance(part.get("text"), str):
                    out.append(part["text"])
                elif isinstance(part.get("functionCall"), dict):
                    out.append(json.dumps(part["functionCall"].get("args") or {}))
    return out


async def translate(
    response: UpstreamAnswer,
    *,
    provider: str,
    upstream_format: WireFormat,
    client_format: WireFormat,
    model: str,
    prompt_tokens: int,
    include_usage: bool,
    on_end: StreamEnd,
    budget: StreamBudget | None = None,
) -> AsyncIterator[bytes]:
    """An upstream stream of one format as the client's format."""
    encoder: OpenAIStreamEncoder | AnthropicStreamEncoder | GeminiStreamEncoder
    if client_format == "openai":
        encoder = OpenAIStreamEncoder(model, include_usage=include_usage)
    elif client_format == "anthropic":
        encoder = AnthropicStreamEncoder(model, prompt_tokens=prompt_tokens)
    else:
        encoder = GeminiStreamEncoder(model)
    # OpenAI's and Gemini's decoders take parsed chunks and end at finish(); Anthropic's
    # takes the event name too and ends with message_stop.
    chunk_decoder: OpenAIStreamDecoder | GeminiStreamDecoder | None = (
        OpenAIStreamDecoder()
        if upstream_format == "openai"
        else GeminiStreamDecoder()
        if upstream_format == "gemini"
        else None
    )
    anthropic_decoder = AnthropicStreamDecoder() if upstream_format == "anthropic" else None
    error: GatewayError | None = None

    def encode(events: list[StreamEvent]) -> bytes:
        return b"".join(encoder.encode(e) for e in events)

    def decode(event: SseEvent) -> list[StreamEvent]:
        if chunk_decoder is not None:
            if event.data == b"[DONE]":
                return chunk_decoder.finish()
            chunk: Any = json.loads(event.data)
            if isinstance(chunk, dict) and "error" in chunk:
                raise UpstreamError(
                    str((chunk["error"] or {}).get("message", "upstream stream error")),
                    status=500,
                    provider=provider,
                )
            return chunk_decoder.feed(chunk)
        assert anthropic_decoder is not None
        return anthropic_decoder.feed(event.event, json.loads(event.data))

    try:
        async for batch in response.event_batches():
            events: list[StreamEvent] = []
            for event in batch:
                events += decode(event)
            if budget is not None and not all(
                [budget.add(e.text) for e in events if isinstance(e, TextDelta | ThinkingDelta)]
                + [budget.add(e.partial_json) for e in events if isinstance(e, ToolArgumentsDelta)]
            ):
                error = budget.error()
                yield stream_error_event(client_format, error)
                return
            out = encode(events)
            if out:
                yield out
        if chunk_decoder is not None:
            out = encode(chunk_decoder.finish())
            if out:
                yield out
    except UpstreamError as exc:
        error = exc
        yield stream_error_event(client_format, exc)
    except ANSWER_READ_ERRORS as exc:
        error = _cut(provider, exc)
        yield stream_error_event(client_format, error)
    finally:
        await response.aclose()
        on_end(encoder.usage, error)


__all__ = ["StreamEnd", "forward_anthropic", "forward_gemini", "forward_openai", "translate"]
