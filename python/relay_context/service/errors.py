"""Errors to HTTP, once: every error response has the shape

    {"error": {"type": "...", "message": "...", "details": ..., "request_id": "..."}}

``details`` appears only when there is something to add (the field errors of a 422). Relay's
typed errors (:mod:`relay_context.errors`) map to status codes through :data:`STATUS_BY_ERROR`
(the most specific class in an exception's MRO wins); Starlette's 404/405, FastAPI's validation
errors, the body cap's 413 and unexpected exceptions (500, no internals leaked) use the same shape.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from relay_context import errors as e

log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[BaseException], int] = {
    e.AuthenticationError: 401,
    e.QuotaExceededError: 402,
    e.PermissionDeniedError: 403,
    e.SessionLimitExceededError: 403,
    e.SessionNotFoundError: 404,
    e.ApiKeyNotFoundError: 404,
    e.PayloadNotFoundError: 404,
    e.PayloadIdTakenError: 409,
    e.SessionExistsError: 409,
    # The budget is well-formed, but the session's pinned messages (system prompt, pinned
    # metadata, the latest user turn) do not fit in it: a conflict with the resource's state.
    e.InfeasibleBudgetError: 409,
    e.RequestTooLargeError: 413,
    e.MessageTooLargeError: 413,
    e.PayloadTooLargeError: 413,
    e.InvalidArgumentError: 422,
    e.InputTypeError: 422,
    e.TokenizerError: 422,
    e.RateLimitExceededError: 429,
    e.BackendUnavailableError: 503,
    e.RelayError: 500,
}

_HTTP_TYPES = {
    400: "bad_request",
    401: "authentication",
    402: "quota_exceeded",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limit_exceeded",
    431: "request_header_fields_too_large",
    500: "internal_error",
    503: "service_unavailable",
}


def status_for(exc: BaseException) -> int:
    for cls in type(exc).__mro__:
        status = STATUS_BY_ERROR.get(cls)
        if status is not None:
            return status
    return 500


def error_type(exc: BaseException) -> str:
    """``SessionNotFoundError`` -> ``session_not_found``."""
    name = type(exc).__name__.removesuffix("Error") or type(exc).__name__
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def error_content(kind: str, message: str, request_id: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": kind, "message": message}
    if details is not None:
        body["details"] = details
    body["request_id"] = request_id
    return {"error": body}


def request_id_of(request: Request) -> str:
    return str(getattr(request.state, "request_id", "-"))


def count_error(request: Request, kind: str, status: int) -> None:
    state = getattr(request.app.state, "relay", None)
    if state is not None:
        state.metrics.errors.labels(kind, str(status)).inc()


def error_response(
    request: Request,
    status: int,
    kind: str,
    message: str,
    *,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    count_error(request, kind, status)
    return JSONResponse(
        jsonable_encoder(error_content(kind, message, request_id_of(request), details)),
        status_code=status,
        headers=dict(headers or {}),
    )


def rate_limit_headers(limit: int, remaining: int, reset_at: float) -> dict[str, str]:
    """``X-RateLimit-Reset`` is the Unix time (seconds) at which the whole quota is back."""
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(max(0, remaining)),
        "X-RateLimit-Reset": str(math.ceil(reset_at)),
    }


async def relay_error_handler(request: Request, exc: Exception) -> JSONResponse:
    status = status_for(exc)
    headers: dict[str, str] = {}
    message = str(exc)
    if isinstance(exc, e.AuthenticationError):
        headers["WWW-Authenticate"] = "Bearer"
    elif isinstance(exc, e.RateLimitExceededError):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        headers.update(rate_limit_headers(exc.limit, 0, exc.reset_at))
    if status >= 500:
        if status == 500:
            log.error("internal error", exc_info=exc)
            message = "internal server error"
        else:
            log.warning("backend unavailable: %s", exc)
    # An error that carries structured facts (a quota's limit and usage) shows them.
    details = getattr(exc, "details", None) if status < 500 else None
    return error_response(
        request, status, error_type(exc), message, details=details, headers=headers
    )


async def http_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    kind = _HTTP_TYPES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else kind.replace("_", " ")
    if exc.status_code == 404 and message == "Not Found":
        message = f"no route {request.method} {request.url.path}"
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405:
        message = f"method {request.method} is not allowed on {request.url.path}"
        headers["Allow"] = ", ".join(allowed_methods(request))
    return error_response(request, exc.status_code, kind, message, headers=headers)


def _leaf_routes(routes: list[Any]) -> list[Any]:
    """The app's routes, those of included routers too (newer FastAPI keeps an included router
    as one entry, ``original_router``; older ones, and Starlette, list each route)."""
    out: list[Any] = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            out += _leaf_routes(list(inner.routes))
        else:
            out.append(route)
    return out


def allowed_methods(request: Request) -> list[str]:
    """The methods of the path, for a 405's ``Allow``. Starlette's 405 names only the first
    route that matched the path (``GET /context/{id}`` hid ``DELETE``). As in OpenAPI, a
    concrete path (``/context/messages``) wins over the templates it also matches
    (``/context/{session_id}``)."""
    path = request.scope.get("path", "")
    concrete: set[str] = set()
    templated: set[str] = set()
    for route in _leaf_routes(list(request.app.routes)):
        regex = getattr(route, "path_regex", None)
        methods = getattr(route, "methods", None)
        if regex is None or not methods or regex.match(path) is None:
            continue
        (templated if getattr(route, "param_convertors", None) else concrete).update(methods)
    return sorted(concrete or templated)


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        {
            "loc": list(err.get("loc", ())),
            "msg": err.get("msg", ""),
            "type": err.get("type", ""),
        }
        for err in exc.errors()
    ]
    first = details[0] if details else None
    message = (
        f"invalid request: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
        if first
        else "invalid request"
    )
    return error_response(request, 422, "validation_error", message, details=details)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(e.RelayError, relay_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(RequestValidationError, validation_error_handler)


__all__ = [
    "STATUS_BY_ERROR",
    "error_content",
    "error_response",
    "error_type",
    "install_error_handlers",
    "rate_limit_headers",
    "status_for",
]
