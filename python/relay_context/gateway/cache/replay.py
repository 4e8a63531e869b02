"""A cached answer as the client asked for it this time, in its own protocol.

Same mode: a whole answer's body as stored; a streamed answer's SSE events as stored, one for
one, with every field (tool-call deltas, reasoning or thinking, usage with its cached-token
details). Only OpenAI's final usage chunk follows the request: it is sent when this client asked
for ``stream_options.include_usage`` and left out when not.

Other mode: a streamed entry for a whole request is decoded to the neutral events and gathered
into one response; a whole entry for a streamed request is cut into the neutral events and
encoded as that protocol's stream.
"""

from __future__ import annotations

import json
from typing import Any

from relay_context.gateway import wire_formats as wire
from relay_context.gateway.cache.entry import CachedAnswer
from relay_context.gateway.providers.anthropic.messages_stream import (
    AnthropicStreamDecoder,
    AnthropicStreamEncoder,
)
from relay_context.gateway.providers.gemini.generate_stream import (
    GeminiStreamDecoder,
    GeminiStreamEncoder,
)
from relay_context.gateway.providers.openai.chat_stream import (
    OpenAIStreamDecoder,
    OpenAIStreamEncoder,
)
from relay_context.gateway.schema import (
    BlockStart,
    BlockStop,
    ChatResponse,
    MessageDelta,
    MessageStart,
    MessageStop,
    Part,
    SignatureDelta,
    StreamEvent,
    TextDelta,
    TextPart,
    ThinkingDelta,
    ThinkingPart,
    ToolArgumentsDelta,
    ToolCallPart,
)


def _parse(block: bytes) -> tuple[str | None, bytes]:
    """One stored SSE event's name and data."""
    name: str | None = None
    data: list[bytes] = []
    for line in block.rstrip(b"\n").split(b"\n"):
        if line.startswith(b"data:"):
            data.append(line[5:].removeprefix(b" "))
        elif line.startswith(b"event:"):
            name = line[6:].strip().decode("utf-8", "replace")
    return name, b"\n".join(data)


def is_openai_usage_chunk(event: bytes) -> bool:
    """OpenAI's last chunk before ``[DONE]``: no choices, only the usage."""
    if b'"usage"' not in event:
        return False
    _, data = _parse(event)
    if data == b"[DONE]":
        return False
    chunk = json.loads(data)
    return isinstance(chunk, dict) and not chunk.get("choices") and bool(chunk.get("usage"))


def stream_events(answer: CachedAnswer, *, include_usage: bool) -> list[bytes]:
    """The SSE events to send for a streamed request."""
    if answer.kind == "stream":
        if answer.family == "openai" and not include_usage:
            return [e for e in answer.events if not is_openai_usage_chunk(e)]
        return answer.events
    response = wire.parse_response(answer.family, json.loads(answer.body))
    encoder: OpenAIStreamEncoder | AnthropicStreamEncoder | GeminiStreamEncoder
    if answer.family == "openai":
        encoder = OpenAIStreamEncoder(answer.model, include_usage=include_usage)
    elif answer.family == "anthropic":
        encoder = AnthropicStreamEncoder(answer.model, prompt_tokens=answer.usage.input_tokens)
    else:
        encoder = GeminiStreamEncoder(answer.model)
    out = [encoder.encode(e) for e in response_events(response)]
    return [e for e in out if e]


def whole_body(answer: CachedAnswer) -> bytes:
    """The JSON body to send for a whole request."""
    if answer.kind == "whole":
        return answer.body
    response = gather(decode_events(answer))
    if response.usage is None:
        response.usage = answer.usage
    return wire.dumps(wire.emit_response(answer.family, response, answer.model))


def decode_events(answer: CachedAnswer) -> list[StreamEvent]:
    """A stored stream's neutral events."""
    events: list[StreamEvent] = []
    sse = [_parse(e) for e in answer.events]
    if answer.family == "anthropic":
        anthropic = AnthropicStreamDecoder()
        for name, data in sse:
            events += anthropic.feed(name, json.loads(data))
        return events
    decoder: OpenAIStreamDecoder | GeminiStreamDecoder = (
        OpenAIStreamDecoder() if answer.family == "openai" else GeminiStreamDecoder()
    )
    for _, data in sse:
        if data == b"[DONE]":
            break
        chunk: Any = json.loads(data)
        events += decoder.feed(chunk)
    return events + decoder.finish()


def gather(events: list[StreamEvent]) -> ChatResponse:
    """Neutral stream events as the one response they add up to."""
    response = ChatResponse(id="", model="", parts=[], stop_reason=None, usage=None)
    blocks: dict[int, Part] = {}
    order: list[int] = []
    for e in events:
        if isinstance(e, MessageStart):
            response.id, response.model = e.id, e.model
            response.usage = e.usage or response.usage
        elif isinstance(e, BlockStart):
            part: Part
            if e.kind == "tool_use":
                part = ToolCallPart(e.tool_call_id or "", e.tool_name or "", "")
            elif e.kind == "thinking":
                part = ThinkingPart("")
            elif e.kind == "redacted_thinking":
                part = ThinkingPart("", redacted_data=e.data)
            else:
                part = TextPart("")
            blocks[e.index] = part
            order.append(e.index)
        elif isinstance(e, TextDelta | ThinkingDelta):
            block = blocks.get(e.index)
            if isinstance(block, TextPart | ThinkingPart):
                block.text += e.text
        elif isinstance(e, SignatureDelta) and isinstance(blocks.get(e.index), ThinkingPart):
            thinking = blocks[e.index]
            assert isinstance(thinking, ThinkingPart)
            thinking.signature = (thinking.signature or "") + e.signature
        elif isinstance(e, ToolArgumentsDelta) and isinstance(blocks.get(e.index), ToolCallPart):
            call = blocks[e.index]
            assert isinstance(call, ToolCallPart)
            call.arguments += e.partial_json
        elif isinstance(e, MessageDelta):
            response.stop_reason = e.stop_reason
            response.stop_sequence = e.stop_sequence
            response.usage = e.usage or response.usage
    response.parts = [blocks[i] for i in order]
    return response


def response_events(response: ChatResponse) -> list[StreamEvent]:
    """A whole response as the stream events that would have carried it."""
    events: list[StreamEvent] = [MessageStart(response.id, response.model, response.usage)]
    for index, part in enumerate(response.parts):
        if isinstance(part, ToolCallPart):
            events.append(BlockStart(index, "tool_use", part.id, part.name))
            if part.arguments:
                events.append(ToolArgumentsDelta(index, part.arguments))
        elif isinstance(part, ThinkingPart) and part.redacted_data is not None:
            events.append(BlockStart(index, "redacted_thinking", data=part.redacted_data))
        elif isinstance(part, ThinkingPart):
            events.append(BlockStart(index, "thinking"))
            if part.text:
                events.append(ThinkingDelta(index, part.text))
            if part.signature:
                events.append(SignatureDelta(index, part.signature))
        elif isinstance(part, TextPart):
            events.append(BlockStart(index, "text"))
            if part.text:
                events.append(TextDelta(index, part.text))
        else:
            continue
        events.append(BlockStop(index))
    events.append(MessageDelta(response.stop_reason, response.usage, response.stop_sequence))
    events.append(MessageStop())
    return events


__all__ = ["decode_events", "gather", "response_events", "stream_events", "whole_body"]
