"""The one ASGI middleware every request passes: request id, header and body caps (431, 413),
the body-read deadline (408), security headers, rate-limit headers, metrics, the request span,
the access log, and the 500 of last resort.

Pure ASGI (not ``BaseHTTPMiddleware``) so that streamed responses (SSE) pass through untouched.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relay_context.gateway.error_shapes import error_bytes
from relay_context.gateway.errors import RequestBodyTooLargeError
from relay_context.gateway.wire_formats import WireFormat
from relay_context.service.errors import error_content, rate_limit_headers
from relay_context.service.telemetry import request_id_var

log = logging.getLogger("relay_context.service.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
#: Uploads of the handoff relay: their routes cap their bodies themselves, while reading them
#: (payloads are far larger than the API's other bodies, and stream to disk).
HANDOFF_UPLOAD_PATHS = ("/push", "/api/v1/handoff")

#: Sent with every response. The interactive docs load Swagger UI's script and style from a CDN,
#: so their pages get a looser Content-Security-Policy than the API's JSON.
SECURITY_HEADERS: Mapping[str, str] = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
    "cache-control": "no-store",
}
API_CSP = "default-src 'none'; frame-ancestors 'none'"
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "img-src 'self' data: https://fastapi.tiangolo.com; frame-ancestors 'none'"
)
#: The headers of an API (JSON) answer, for the connection layer's own answers.
API_SECURITY_HEADERS: Mapping[str, str] = {**SECURITY_HEADERS, "content-security-policy": API_CSP}
DOCS_PATHS = ("/docs", "/redoc")
HSTS = "max-age=31536000; includeSubDomains"


# Encoded once: the fixed headers of every response, API and docs flavours.
_SECURITY_HEADER_BYTES = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
_API_HEADERS = (*_SECURITY_HEADER_BYTES, (b"content-security-policy", API_CSP.encode()))
_DOCS_HEADERS = (*_SECURITY_HEADER_BYTES, (b"content-security-policy", DOCS_CSP.encode()))
_HSTS_HEADER = (b"strict-transport-security", HSTS.encode())


def gateway_format(path: str) -> WireFormat | None:
    """The API a gateway path speaks (its errors take that shape), ``None`` elsewhere."""
    if path.startswith("/v1beta/"):
        return "gemini"
    if path.startswith("/v1/messages"):
        return "anthropic"
    if path.startswith("/v1/"):
        return "openai"
    return None


class _BodyTooLargeError(Exception):  # internal signal, never leaves the middleware
    pass


class _BodyTimeoutError(Exception):  # internal signal, never leaves the middleware
    pass


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope["app"].state.relay
        state.refresh_settings()
        settings = state.settings
        started = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        incoming_id = headers.get("x-request-id", "")
        request_id = incoming_id if _REQUEST_ID.match(incoming_id) else uuid.uuid4().hex
        scope_state: dict[str, Any] = scope.setdefault("state", {})
        scope_state["request_id"] = request_id
        scope_state["received_at"] = started  # the gateway's x-relay-overhead-ms starts here
        token = request_id_var.set(request_id)
        method = scope["method"]
        path = scope["path"]
        wire = gateway_format(path)
        # LLM requests (long sessions, images) get the gateway's own, larger cap.
        cap = settings.gateway.max_body_bytes if wire is not None else settings.max_request_bytes
        if path.startswith(HANDOFF_UPLOAD_PATHS):
            cap = max(cap, settings.handoff.max_json_body_bytes, settings.handoff.max_payload_bytes)
        status_holder = {"status": 500, "started": False}
        too_large = False
        timed_out = False
        received = 0
        # A request without a body (no Content-Length, no Transfer-Encoding: a GET, an SSE
        # stream) has nothing to wait for: its reads (the disconnect) are never timed.
        declared_length = headers.get("content-length")
        body_done = "transfer-encoding" not in headers and declared_length in (None, "0")
        # The whole body must arrive within this long of the app's first read: a client that
        # trickles a byte now and then cannot hold a request (and its connection) open.
        body_timeout = settings.body_read_timeout_seconds
        # However long a whole body may take, a pause this long between two of its chunks ends
        # it: an upload may take minutes, a stalled (slowloris) one may not.
        stall_timeout = settings.body_read_timeout_seconds
        if path.startswith(HANDOFF_UPLOAD_PATHS):  # 25 MB take longer than a JSON message
            body_timeout = max(body_timeout, settings.handoff.body_read_timeout_seconds)
        body_deadline: float | None = None
        stalled = False

        extra_headers = list(_DOCS_HEADERS if path.startswith(DOCS_PATHS) else _API_HEADERS)
        if settings.environment.value == "production":
            extra_headers.append(_HSTS_HEADER)
        extra_headers.append((b"x-request-id", request_id.encode()))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                status_holder["started"] = True
                present = {k.lower() for k, _ in message.get("headers", [])}
                out = list(message.get("headers", []))
                out += [(k, v) for k, v in extra_headers if k not in present]
                info = scope_state.get("rate_limit")
                if info is not None and b"x-ratelimit-limit" not in present:
                    out += [
                        (k.lower().encode(), v.encode())
                        for k, v in rate_limit_headers(
                            info["limit"], info["remaining"], info["reset_at"]
                        ).items()
                    ]
                message = {**message, "headers": out}
            await send(message)

        async def send_error(status: int, kind: str, text: str) -> None:
            state.metrics.errors.labels(kind, str(status)).inc()
            body = json.dumps(error_content(kind, text, request_id)).encode()
            if wire is not None and status == 413:  # the gateway's clients read their own shape
                body = error_bytes(wire, RequestBodyTooLargeError(text))
            await send_with_headers(
                {
                    "type": "http.response.start",
                    "status": status,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})

        async def capped_receive() -> Message:
            nonlocal received, too_large, timed_out, body_done, body_deadline, stalled
            if body_done:  # after the body: waiting for the disconnect (SSE), no deadline
                return await receive()
            loop = asyncio.get_running_loop()
            if body_deadline is None:
                body_deadline = loop.time() + body_timeout
            left = body_deadline - loop.time()
            try:
                message = await asyncio.wait_for(receive(), max(0.0, min(left, stall_timeout)))
            except asyncio.TimeoutError:
                timed_out = True
                stalled = left > stall_timeout
                raise _BodyTimeoutError from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > cap:
                    too_large = True
                    raise _BodyTooLargeError
                body_done = not message.get("more_body", False)
            else:
                body_done = True
            return message

        async def guarded_send(message: Message) -> None:
            # After the body overflowed or stalled, the app's own (error) response is replaced
            # by the 413 or the 408.
            if too_large or timed_out:
                return
            await send_with_headers(message)

        span = state.tracer.start_span(f"HTTP {method}", kind=SpanKind.SERVER)
        span.set_attribute("http.request.method", method)
        span.set_attribute("url.path", path)
        span.set_attribute("relay.request_id", request_id)
        state.metrics.http_requests_in_flight.inc()
        try:
            head_bytes = sum(len(k) + len(v) + 4 for k, v in scope["headers"])
            if head_bytes > settings.max_header_bytes:
                await send_error(
                    431,
                    "request_header_fields_too_large",
                    f"request headers are {head_bytes} bytes; the limit (max_header_bytes) is "
                    f"{settings.max_header_bytes}",
                )
            elif (
                declared_length is not None
                and declared_length.isdigit()
                and int(declared_length) > cap
            ):
                too_large = True
            else:
                try:
                    # The request span is the parent of the spans the routes open.
                    with trace.use_span(span, end_on_exit=False):
                        await self.app(scope, capped_receive, guarded_send)
                except (_BodyTooLargeError, _BodyTimeoutError):
                    pass
                except Exception:
                    if too_large or timed_out:
                        pass
                    elif status_holder["started"]:
                        log.exception("error after the response started")
                        raise
                    else:
                        log.exception("unhandled error")
                        span.set_status(Status(StatusCode.ERROR))
                        await send_error(500, "internal_error", "internal server error")
            if too_large and not status_holder["started"]:
                await send_error(
                    413,
                    "request_too_large",
                    f"request body larger than the limit of {cap} bytes",
                )
            elif timed_out and not status_holder["started"]:
                extra_headers.append((b"connection", b"close"))  # the rest of the body is lost
                await send_error(
                    408,
                    "request_timeout",
                    f"no bytes of the request body arrived for {stall_timeout:g} s "
                    "(body_read_timeout_seconds)"
                    if stalled
                    else f"the request body did not arrive within {body_timeout:g} s "
                    "(body_read_timeout_seconds)",
                )
        finally:
            state.metrics.http_requests_in_flight.dec()
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "<unmatched>"
            status = str(status_holder["status"])
            state.metrics.http_request_duration.labels(method, template, status).observe(elapsed)
            state.metrics.http_requests.labels(method, template, status).inc()
            span.update_name(f"HTTP {method} {template}")
            span.set_attribute("http.route", template)
            span.set_attribute("http.response.status_code", int(status))
            if int(status) >= 500:
                span.set_status(Status(StatusCode.ERROR))
            principal = scope_state.get("principal")
            if principal is not None:
                span.set_attribute("relay.principal", principal.id)
            span.end()
            log.info(
                "%s %s %s",
                method,
                path,
                status,
                extra={
                    "method": method,
                    "path": path,
                    "route": template,
                    "status": int(status),
                    "duration_ms": round(elapsed * 1000, 3),
                    "principal": principal.id if principal is not None else None,
                },
            )
            request_id_var.reset(token)


__all__ = ["API_SECURITY_HEADERS", "SECURITY_HEADERS", "RequestContextMiddleware"]
