"""Gateway errors in each provider's own shape, in one place, so the official SDKs raise their
typed exceptions:

* OpenAI: ``{"error": {"message", "type", "param", "code"}}``; in a stream, one ``data:`` event
  with that body (the SDK raises ``APIError`` on it).
* Anthropic: ``{"type": "error", "error": {"type", "message"}}``; in a stream, ``event: error``.
* Gemini: ``{"error": {"code", "message", "status"}}``; in a stream, one ``data:`` event.
"""

from __future__ import annotations

import json
import math
from typing import Any

from relay_context.gateway.errors import ErrorKind, GatewayError
from relay_context.gateway.wire_formats import WireFormat

_GEMINI_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

_OPENAI_TYPES: dict[ErrorKind, str] = {
    "invalid_request": "invalid_request_error",
    "authentication": "authentication_error",
    "permission": "permission_error",
    "not_found": "invalid_request_error",
    "request_too_large": "invalid_request_error",
    "rate_limit": "rate_limit_exceeded",
    "api_error": "server_error",
    "overloaded": "service_unavailable",
    "timeout": "timeout",
}
_ANTHROPIC_TYPES: dict[ErrorKind, str] = {
    "invalid_request": "invalid_request_error",
    "authentication": "authentication_error",
    "permission": "permission_error",
    "not_found": "not_found_error",
    "request_too_large": "request_too_large",
    "rate_limit": "rate_limit_error",
    "api_error": "api_error",
    "overloaded": "overloaded_error",
    "timeout": "timeout_error",
}


def error_body(fmt: WireFormat, error: GatewayError) -> dict[str, Any]:
    if fmt == "gemini":
        return {
            "error": {
                "code": error.status,
                "message": error.message,
                "status": _GEMINI_STATUSES.get(error.status, "UNKNOWN"),
            }
        }
    if fmt == "anthropic":
        return {
            "type": "error",
            "error": {"type": _ANTHROPIC_TYPES[error.kind], "message": error.message},
        }
    return {
        "error": {
            "message": error.message,
            "type": _OPENAI_TYPES[error.kind],
            "param": error.param,
            "code": error.code,
        }
    }


def error_bytes(fmt: WireFormat, error: GatewayError) -> bytes:
    return json.dumps(error_body(fmt, error), separators=(",", ":")).encode()


def error_headers(error: GatewayError) -> dict[str, str]:
    headers = dict(error.headers)
    if error.retry_after is not None:
        headers["retry-after"] = str(max(1, math.ceil(error.retry_after)))
    if error.status == 401:
        headers.setdefault("www-authenticate", "Bearer")
    return headers


def stream_error_event(fmt: WireFormat, error: GatewayError) -> bytes:
    """The event that ends a stream that failed after it began."""
    data = error_bytes(fmt, error)
    if fmt == "anthropic":
        return b"event: error\ndata: " + data + b"\n\n"
    return b"data: " + data + b"\n\n"


__all__ = ["WireFormat", "error_body", "error_bytes", "error_headers", "stream_error_event"]
