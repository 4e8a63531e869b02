"""The connection layer under the app: uvicorn's options and its h11 protocol with the limits
uvicorn does not have.

uvicorn closes a keep-alive connection that stays idle after a response (``timeout_keep_alive``)
but has no deadline for a request's head: a connection that sends nothing, or half a request line
and then stalls (slowloris), is held for ever. :class:`RelayH11Protocol` adds

* a header-read deadline (``header_read_timeout_seconds``) from the moment a connection opens, or
  from the first byte of a later request on a kept-alive connection, to the end of the request's
  head; a connection that misses it is closed;
* a cap on open connections (``max_connections``): one more is answered 503 and closed at once,
  before it can hold a file descriptor for long;
* the one JSON error shape for requests h11 cannot parse (uvicorn answers those in plain text):
  431 for a head larger than the parser's buffer, 400 for anything else.

The body-read deadline (``body_read_timeout_seconds``) is enforced in the ASGI layer
(:mod:`relay_context.service.middleware`), where the app waits for the body; heads larger than
``max_header_bytes`` are answered 431 there too, so the parser's buffer is larger
(``HEADER_BUFFER_FACTOR``) and such requests still get the request id and the usual headers.

``relay serve`` passes :func:`uvicorn_options` to uvicorn; the app factory
(:func:`relay_context.main.serve_app`) calls :func:`configure_connection_limits` in every worker
process, since uvicorn builds one protocol object per connection and gives it no settings of ours.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from relay_context.config.settings import Settings
from relay_context.service.errors import error_content
from relay_context.service.middleware import API_SECURITY_HEADERS

log = logging.getLogger(__name__)

#: The parser buffers heads up to this many times ``max_header_bytes``: heads between the two
#: reach the app, which answers them 431 in the usual way; only larger ones are refused by the
#: parser (also with the JSON shape, but without the app's headers).
HEADER_BUFFER_FACTOR = 4
#: After answering outside a request cycle, how long the connection keeps reading (and dropping)
#: what the client still sends before it closes: closing with unread data makes the kernel send
#: a reset, which can destroy the answer before the client reads it (nginx's lingering close).
LINGER_SECONDS = 2.0


@dataclass(frozen=True)
class ConnectionLimits:
    header_read_timeout: float
    max_connections: int
    max_head_bytes: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            header_read_timeout=settings.header_read_timeout_seconds,
            max_connections=settings.max_connections,
            max_head_bytes=settings.max_header_bytes * HEADER_BUFFER_FACTOR,
        )


_limits: ConnectionLimits | None = None


def configure_connection_limits(settings: Settings) -> None:
    """Use ``settings``' limits for the connections this process accepts from now on."""
    global _limits
    _limits = ConnectionLimits.from_settings(settings)


def connection_limits() -> ConnectionLimits:
    global _limits
    if _limits is None:  # served without the factory: the environment's settings
        _limits = ConnectionLimits.from_settings(Settings())
    return _limits


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """What ``uvicorn.run`` / ``uvicorn.Config`` need for ``settings``' connection limits."""
    return {
        "http": RelayH11Protocol,
        "timeout_keep_alive": settings.keep_alive_timeout_seconds,
        "h11_max_incomplete_event_size": settings.max_header_bytes * HEADER_BUFFER_FACTOR,
        # Open streams end at the stop signal (service/state.py); this bounds any other wait.
        "timeout_graceful_shutdown": settings.shutdown_grace_seconds,
    }


def _raw_error(status: int, reason: str, kind: str, message: str) -> bytes:
    """A complete ``Connection: close`` response in the one error shape, for answers given
    outside any request cycle (the parser failed, or the connection is over the cap)."""
    body = json.dumps(error_content(kind, message, uuid.uuid4().hex)).encode()
    head = [
        f"HTTP/1.1 {status} {reason}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
        *(f"{k}: {v}" for k, v in API_SECURITY_HEADERS.items()),
    ]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class RelayH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header-read deadline, a connection cap and JSON answers
    to unparseable requests (see the module's docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = connection_limits()
        self._head_timer: asyncio.TimerHandle | None = None
        self._lingering = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            log.warning("connection refused: %d open connections", len(self.connections) - 1)
            self._answer_and_close(
                _raw_error(
                    503,
                    "Service Unavailable",
                    "service_unavailable",
                    f"too many open connections (max_connections={self.limits.max_connections})",
                )
            )
            return
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        if self._lingering:  # answered already: what comes now is dropped
            return
        super().data_received(data)
        self._follow_head()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        too_long = len(self.conn.trailing_data[0]) > self.limits.max_head_bytes
        if too_long:
            response = _raw_error(
                431,
                "Request Header Fields Too Large",
                "request_header_fields_too_large",
                f"request head larger than {self.limits.max_head_bytes} bytes",
            )
        else:
            response = _raw_error(400, "Bad Request", "bad_request", "invalid HTTP request")
        self._answer_and_close(response)

    def _answer_and_close(self, response: bytes) -> None:
        self._cancel_head_timer()
        self._lingering = True
        self.transport.write(response)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    # --- the header-read deadline ----------------------------------------------------------
    def _follow_head(self) -> None:
        """Arm the deadline while part of a request head is buffered, cancel it once the head
        is complete. An idle kept-alive connection is left to uvicorn's keep-alive timeout."""
        if self.transport.is_closing():
            self._cancel_head_timer()
        elif self.conn.their_state is h11.IDLE:
            if self._head_timer is None and self.conn.trailing_data[0]:
                self._arm_head_timer()
        else:
            self._cancel_head_timer()

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(
            self.limits.header_read_timeout, self._head_timed_out
        )

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            # No request is being served, so there is nobody to answer: close, as nginx does.
            self.transport.close()


__all__ = [
    "HEADER_BUFFER_FACTOR",
    "LINGER_SECONDS",
    "ConnectionLimits",
    "RelayH11Protocol",
    "configure_connection_limits",
    "uvicorn_options",
]
