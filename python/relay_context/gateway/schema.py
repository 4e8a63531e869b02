"""The neutral request, response and stream-event schema every provider translates to and from.

Providers keep their own wire format (``providers/openai``, ``providers/anthropic``); a request
that goes to an upstream of another format is parsed into these types and emitted in the other
format. A request to an upstream of its own format is forwarded as it came (its body is only
edited where Relay changes something), so these types are not on that path's hot loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

#: Why the model stopped, in neutral terms (Anthropic's names; OpenAI's map onto them).
StopReason = Literal["end_turn", "max_tokens", "tool_use", "stop_sequence", "refusal"]
Role = Literal["user", "assistant"]


@dataclass(slots=True)
class TextPart:
    text: str


@dataclass(slots=True)
class ImagePart:
    """An image: a URL (``https://...`` or a ``data:`` URL) or base64 data with its media type."""

    url: str | None = None
    data: str | None = None
    media_type: str | None = None


@dataclass(slots=True)
class ToolCallPart:
    id: str
    name: str
    #: The arguments as JSON text, exactly as the model produced them.
    arguments: str


@dataclass(slots=True)
class ToolResultPart:
    tool_call_id: str
    content: list[TextPart | ImagePart]
    is_error: bool = False


@dataclass(slots=True)
class ThinkingPart:
    text: str
    signature: str | None = None
    #: Anthropic's ``redacted_thinking``: opaque data the model needs back.
    redacted_data: str | None = None


Part = TextPart | ImagePart | ToolCallPart | ToolResultPart | ThinkingPart


@dataclass(slots=True)
class Message:
    role: Role
    parts: list[Part]
    #: Position of the message in the client's own ``messages`` list (context fitting keeps or
    #: drops the client's messages by it, so a forwarded body is not re-encoded needlessly).
    source_index: int = -1


@dataclass(slots=True)
class Tool:
    name: str
    description: str | None
    #: JSON Schema of the arguments.
    parameters: dict[str, Any]


@dataclass(slots=True)
class ToolChoice:
    mode: Literal["auto", "none", "required", "tool"]
    name: str | None = None
    parallel: bool | None = None


@dataclass(slots=True)
class ChatRequest:
    model: str
    messages: list[Message]
    system: list[TextPart] = field(default_factory=list)
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    #: The client asked for usage on its stream (OpenAI ``stream_options.include_usage``).
    stream_usage: bool = False
    tools: list[Tool] = field(default_factory=list)
    tool_choice: ToolChoice | None = None
    #: Extended thinking, as Anthropic's ``thinking`` object (budget_tokens); from OpenAI's
    #: ``reasoning_effort`` when translated.
    thinking: dict[str, Any] | None = None
    user: str | None = None
    #: OpenAI ``response_format`` (passed on where the target has an equivalent).
    response_format: dict[str, Any] | None = None


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    #: Input tokens read from the provider's prompt cache (included in ``input_tokens``).
    cached_input_tokens: int = 0
    #: Input tokens written to the provider's prompt cache (Anthropic).
    cache_write_tokens: int = 0


@dataclass(slots=True)
class ChatResponse:
    id: str
    model: str
    parts: list[Part]
    stop_reason: StopReason | None
    usage: Usage | None
    stop_sequence: str | None = None


# --- stream events ---------------------------------------------------------------------------
BlockKind = Literal["text", "thinking", "tool_use", "redacted_thinking"]


@dataclass(slots=True)
class MessageStart:
    id: str
    model: str
    usage: Usage | None = None


@dataclass(slots=True)
class BlockStart:
    index: int
    kind: BlockKind
    tool_call_id: str | None = None
    tool_name: str | None = None
    #: ``redacted_thinking`` blocks carry their data at the start.
    data: str | None = None


@dataclass(slots=True)
class TextDelta:
    index: int
    text: str


@dataclass(slots=True)
class ThinkingDelta:
    index: int
    text: str


@dataclass(slots=True)
class SignatureDelta:
    index: int
    signature: str


@dataclass(slots=True)
class ToolArgumentsDelta:
    index: int
    partial_json: str


@dataclass(slots=True)
class BlockStop:
    index: int


@dataclass(slots=True)
class MessageDelta:
    stop_reason: StopReason | None
    usage: Usage | None
    stop_sequence: str | None = None


@dataclass(slots=True)
class MessageStop:
    pass


StreamEvent = (
    MessageStart
    | BlockStart
    | TextDelta
    | ThinkingDelta
    | SignatureDelta
    | ToolArgumentsDelta
    | BlockStop
    | MessageDelta
    | MessageStop
)

__all__ = [
    "BlockKind",
    "BlockStart",
    "BlockStop",
    "ChatRequest",
    "ChatResponse",
    "ImagePart",
    "Message",
    "MessageDelta",
    "MessageStart",
    "MessageStop",
    "Part",
    "Role",
    "SignatureDelta",
    "StopReason",
    "StreamEvent",
    "TextDelta",
    "TextPart",
    "ThinkingDelta",
    "ThinkingPart",
    "Tool",
    "ToolArgumentsDelta",
    "ToolCallPart",
    "ToolChoice",
    "ToolResultPart",
    "Usage",
]
