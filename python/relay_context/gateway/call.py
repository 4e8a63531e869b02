"""What the HTTP layer hands the gateway (:class:`GatewayCall`) and gets back
(:class:`GatewayReply`): raw bytes both ways, so that the routes stay thin and the body is parsed
once, by the gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

Endpoint = Literal[
    "chat_completions",
    "messages",
    "count_tokens",
    "embeddings",
    "responses",
    "models",
    "gemini_generate",
    "gemini_stream",
]


@dataclass(frozen=True, slots=True)
class GatewayCall:
    endpoint: Endpoint
    body: bytes
    #: Request headers, names in lower case (a Starlette ``Headers`` is fine).
    headers: Mapping[str, str]
    request_id: str
    #: ``time.perf_counter()`` when the request arrived (for ``x-relay-overhead-ms``).
    received_at: float
    #: The model named in the path (Gemini's ``/v1beta/models/{model}:generateContent``).
    path_model: str | None = None
    #: The query string's parameters (Gemini clients may send ``?key=...``).
    query: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class GatewayReply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    #: Set for a streamed answer (``text/event-stream``); ``body`` is then unused.
    stream: AsyncIterator[bytes] | None = None
    media_type: str = "application/json"


__all__ = ["Endpoint", "GatewayCall", "GatewayReply"]
