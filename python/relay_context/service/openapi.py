"""What the OpenAPI document says beyond what FastAPI infers: the one error shape on every error
status a route can answer, Server-Sent Events as ``text/event-stream``, the links between
operations (creating a session or a key leads to the routes of its id), and the schemas of
session ids and roles.

The statuses: every authenticated route may answer 401 (credentials), 403 (role), 429 (rate
limit), 400 (a body that cannot be parsed), 413 (a body over ``max_request_bytes``) and 422
(validation, in the one shape rather than FastAPI's ``HTTPValidationError``); a route with an id
in its path also 404.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from relay_context.core.encodings import SHIPPED_ENCODINGS
from relay_context.core.model_encodings import model_name_pattern
from relay_context.engine.models import (
    NAME_MAX_LENGTH,
    SESSION_ID_MAX_LENGTH,
    SESSION_ID_PATTERN,
    MessageRole,
)


class ErrorDetail(BaseModel):
    #: ``session_not_found``, ``validation_error``, ``rate_limit_exceeded``, ...
    type: str
    message: str
    #: The field errors of a 422 (``loc``, ``msg``, ``type``); absent otherwise.
    details: list[dict[str, Any]] | None = None
    request_id: str


class ErrorResponse(BaseModel):
    """Every error answer of the service."""

    error: ErrorDetail


_DESCRIPTIONS = {
    400: "The body cannot be parsed",
    401: "Missing, malformed, unknown, revoked, expired or forged credentials",
    403: "The principal's role may not do this (or a USER's session quota is used up)",
    404: "No such resource (or one the principal may not see)",
    408: "The body did not arrive in time",
    409: "The budget cannot hold what the session must keep (infeasible_budget)",
    413: "The body is larger than max_request_bytes (or a message than max_message_bytes)",
    422: "A parameter or the body is invalid",
    429: "Rate limit exceeded; Retry-After says when to retry",
    431: "The request headers are larger than max_header_bytes",
    503: "A back-end is unavailable",
}

_RATE_LIMIT_HEADERS = {
    "X-RateLimit-Limit": {"description": "Requests per window", "schema": {"type": "integer"}},
    "X-RateLimit-Remaining": {
        "description": "Requests left in the window",
        "schema": {"type": "integer"},
    },
    "X-RateLimit-Reset": {
        "description": "Unix time (s) at which the whole quota is back",
        "schema": {"type": "integer"},
    },
}


_ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}


def error_responses(*statuses: int, stream: bool = False) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for ``statuses``, each with the one error shape. ``stream``: for
    routes whose response class is not JSON (FastAPI would give a ``model`` entry the route's
    media type); the schema is then referred to by name (other routes register it)."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"description": _DESCRIPTIONS[status]}
        if stream:
            entry["content"] = _ERROR_CONTENT
        else:
            entry["model"] = ErrorResponse
        if status == 429:
            entry["headers"] = {
                **_RATE_LIMIT_HEADERS,
                "Retry-After": {"description": "Seconds", "schema": {"type": "integer"}},
            }
        out[status] = entry
    return out


#: Every route that authenticates.
AUTHENTICATED = error_responses(400, 401, 403, 413, 422, 429)
#: ... and has an id in its path.
WITH_ID = error_responses(404)
#: The same for a route answering Server-Sent Events.
STREAM_AUTHENTICATED = error_responses(400, 401, 403, 413, 422, 429, stream=True)
STREAM_WITH_ID = error_responses(404, stream=True)


def event_stream_responses(event: str, description: str) -> dict[int | str, dict[str, Any]]:
    """The 200 of a Server-Sent Events route whose events are all ``event``, with a numeric
    ``id`` and JSON ``data``. (Before OpenAPI 3.2 and its ``itemSchema``, the ``schema`` of
    ``text/event-stream`` describes one event.)"""
    schema = {
        "type": "object",
        "required": ["event", "data"],
        "properties": {
            "event": {"const": event},
            "id": {"type": "string", "pattern": "^[0-9]+$"},
            "data": {"type": "string", "contentMediaType": "application/json"},
            "retry": {"type": "integer", "minimum": 0},
        },
    }
    return {200: {"description": description, "content": {"text/event-stream": {"schema": schema}}}}


def document_live_limits(spec: dict[str, Any], max_window_tokens: int) -> dict[str, Any]:
    """Writes the limits in force (reloadable settings) into the document: the largest
    ``budget`` of ``GET /api/v1/context/{session_id}``."""
    operation = spec.get("paths", {}).get("/api/v1/context/{session_id}", {}).get("get", {})
    for parameter in operation.get("parameters", []):
        if parameter.get("name") == "budget":
            schema = parameter.setdefault("schema", {})
            target = next(
                (s for s in schema.get("anyOf", []) if s.get("type") == "integer"), schema
            )
            target["maximum"] = max_window_tokens
    return spec


#: Schema of a session id (what ``validate_session_id`` accepts).
SESSION_ID_SCHEMA: dict[str, Any] = {
    "pattern": SESSION_ID_PATTERN,
    "minLength": 1,
    "maxLength": SESSION_ID_MAX_LENGTH,
}
#: Schema of a message role.
ROLE_SCHEMA: dict[str, Any] = {"enum": [r.value for r in MessageRole]}
#: A ``model`` parameter: exactly the model names the tokenizer's map resolves (exact names,
#: prefixes, provider-qualified), and the encoding names; anything else is ``unknown_model``.
MODEL_SCHEMA: dict[str, Any] = {"type": "string", "pattern": model_name_pattern(SHIPPED_ENCODINGS)}
#: A tool name, a tool-call id, a message name: what ``validate_name`` accepts.
NAME_SCHEMA: dict[str, Any] = {"minLength": 1, "maxLength": NAME_MAX_LENGTH}
_NAME = {"type": "string", **NAME_SCHEMA}
#: One of an assistant message's ``tool_calls``, as ``ToolCall.from_openai`` reads it (other
#: properties are ignored, so they are allowed).
TOOL_CALL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "function"],
    "properties": {
        "id": _NAME,
        "type": _NAME,
        "function": {
            "type": "object",
            "required": ["name"],
            "properties": {"name": _NAME, "arguments": {"type": "string"}},
        },
    },
}
_TEXT = {"type": "string", "minLength": 1}
_NO_TOOL_CALLS = {"anyOf": [{"type": "null"}, {"type": "array", "maxItems": 0}]}
_NO_TOOL_CALL_ID = {"type": "null"}
#: What the engine requires of a message by role (``_check_message_fields``), as JSON Schema:
#: system and user messages have content; an assistant message has content or tool calls; a
#: tool message has content and the ``tool_call_id`` it answers; only tool messages carry a
#: ``tool_call_id`` and only assistant messages ``tool_calls``.
MESSAGE_RULES: dict[str, Any] = {
    "anyOf": [
        {
            "properties": {
                "role": {"enum": ["system", "user"]},
                "content": _TEXT,
                "tool_call_id": _NO_TOOL_CALL_ID,
                "tool_calls": _NO_TOOL_CALLS,
            },
            "required": ["content"],
        },
        {
            "properties": {
                "role": {"const": "assistant"},
                "content": _TEXT,
                "tool_call_id": _NO_TOOL_CALL_ID,
            },
            "required": ["content"],
        },
        {
            "properties": {
                "role": {"const": "assistant"},
                "tool_calls": {"type": "array", "minItems": 1},
                "tool_call_id": _NO_TOOL_CALL_ID,
            },
            "required": ["tool_calls"],
        },
        {
            "properties": {
                "role": {"const": "tool"},
                "content": _TEXT,
                "tool_call_id": _NAME,
                "tool_calls": _NO_TOOL_CALLS,
            },
            "required": ["content", "tool_call_id"],
        },
    ]
}


def links_to(operations: dict[str, str], parameter: str, expression: str) -> dict[str, Any]:
    """OpenAPI ``links``: each ``name -> operationId`` gets ``parameter`` from ``expression``
    (e.g. ``$response.body#/session_id``); schemathesis's stateful phase follows them."""
    return {
        name: {"operationId": operation_id, "parameters": {parameter: expression}}
        for name, operation_id in operations.items()
    }


__all__ = [
    "AUTHENTICATED",
    "MESSAGE_RULES",
    "MODEL_SCHEMA",
    "NAME_SCHEMA",
    "ROLE_SCHEMA",
    "SESSION_ID_SCHEMA",
    "STREAM_AUTHENTICATED",
    "STREAM_WITH_ID",
    "TOOL_CALL_SCHEMA",
    "WITH_ID",
    "ErrorDetail",
    "ErrorResponse",
    "document_live_limits",
    "error_responses",
    "event_stream_responses",
    "links_to",
]
