"""Each wire format's chat operations behind one interface, so the pipeline never branches on
the provider: parse and emit requests and responses, read usage, and say where and how an
upstream of that format is called."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from relay_context.gateway.errors import InvalidRequestError
from relay_context.gateway.providers.anthropic import endpoint as anthropic_endpoint
from relay_context.gateway.providers.anthropic import messages_request as anthropic_request
from relay_context.gateway.providers.anthropic import messages_response as anthropic_response
from relay_context.gateway.providers.gemini import endpoint as gemini_endpoint
from relay_context.gateway.providers.gemini import generate_request as gemini_request
from relay_context.gateway.providers.gemini import generate_response as gemini_response
from relay_context.gateway.providers.openai import chat_request as openai_request
from relay_context.gateway.providers.openai import chat_response as openai_response
from relay_context.gateway.providers.openai import endpoint as openai_endpoint
from relay_context.gateway.schema import ChatRequest, ChatResponse, Usage

WireFormat = Literal["openai", "anthropic", "gemini"]
#: ``max_tokens`` sent to an Anthropic upstream when the client gave none (Anthropic needs one).
DEFAULT_ANTHROPIC_MAX_TOKENS = 8192


@dataclass(frozen=True, slots=True)
class UpstreamTarget:
    path: str
    headers: dict[str, str]


def parse_request(fmt: WireFormat, body: dict[str, Any], model: str) -> ChatRequest:
    if fmt == "openai":
        return openai_request.parse_chat_request(body)
    if fmt == "anthropic":
        return anthropic_request.parse_messages_request(body)
    return gemini_request.parse_generate_request(body, model)


def messages_key(fmt: WireFormat) -> str:
    """Where the client's turns are in a body of ``fmt``."""
    return "contents" if fmt == "gemini" else "messages"


def emit_request(
    fmt: WireFormat,
    request: ChatRequest,
    upstream_model: str,
    *,
    max_output_tokens: int | None,
    n: int = 1,
) -> dict[str, Any]:
    if fmt == "openai":
        return openai_request.emit_chat_request(request, upstream_model)
    if n > 1:
        raise InvalidRequestError(f"n > 1 is not supported by {fmt} upstreams", param="n")
    if fmt == "anthropic":
        default = min(
            DEFAULT_ANTHROPIC_MAX_TOKENS, max_output_tokens or DEFAULT_ANTHROPIC_MAX_TOKENS
        )
        return anthropic_request.emit_messages_request(request, upstream_model, default)
    return gemini_request.emit_generate_request(request)


def parse_response(fmt: WireFormat, body: dict[str, Any]) -> ChatResponse:
    if fmt == "openai":
        return openai_response.parse_chat_response(body)
    if fmt == "anthropic":
        return anthropic_response.parse_messages_response(body)
    return gemini_response.parse_generate_response(body)


def emit_response(fmt: WireFormat, response: ChatResponse, model: str) -> dict[str, Any]:
    if fmt == "openai":
        return openai_response.emit_chat_response(response, model)
    if fmt == "anthropic":
        return anthropic_response.emit_messages_response(response, model)
    return gemini_response.emit_generate_response(response, model)


def parse_usage(fmt: WireFormat, body: dict[str, Any]) -> Usage | None:
    if fmt == "openai":
        return openai_response.parse_usage(body.get("usage"))
    if fmt == "anthropic":
        return anthropic_response.parse_usage(body.get("usage"))
    return gemini_response.parse_usage(body.get("usageMetadata"))


def chat_target(
    fmt: WireFormat,
    api_key: str | None,
    *,
    upstream_model: str,
    stream: bool,
    client_format: WireFormat,
    client_headers: Mapping[str, str],
    extra_headers: tuple[tuple[str, str], ...] = (),
) -> UpstreamTarget:
    """The path and headers of a chat call to an upstream of ``fmt``; Anthropic's feature
    headers (``anthropic-version``, ``anthropic-beta``) pass on from Anthropic clients."""
    if fmt == "openai":
        headers = openai_endpoint.auth_headers(api_key)
        path = openai_endpoint.CHAT_PATH
    elif fmt == "anthropic":
        forwarded = client_headers if client_format == "anthropic" else None
        headers = anthropic_endpoint.auth_headers(api_key, forwarded)
        path = anthropic_endpoint.MESSAGES_PATH
    else:
        headers = gemini_endpoint.auth_headers(api_key)
        path = gemini_endpoint.generate_path(upstream_model, stream=stream)
    headers.update(extra_headers)
    return UpstreamTarget(path, headers)


def dumps(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


__all__ = [
    "UpstreamTarget",
    "WireFormat",
    "chat_target",
    "dumps",
    "emit_request",
    "emit_response",
    "messages_key",
    "parse_request",
    "parse_response",
    "parse_usage",
]
