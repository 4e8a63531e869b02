"""The connection layer under the app: uvicorn's options and its httptools protocol (the C
parser: several times cheaper per request than h11's pure Python, which matters on the gateway's
hot path) with the limits uvicorn does not have.

uvicorn closes a keep-alive connection that stays idle after a response (``timeout_keep_alive``)
but has no deadline for a request's head: a connection that sends nothing, or half a request line
and then stalls (slowloris), is held for ever. :class:`RelayHttpToolsProtocol` adds

* a header-read deadline (``header_read_timeout_seconds``) from the moment a connection opens, or
  from the first byte of a later request on a kept-alive connection, to the end of the request's
  head; a connection that misses it is closed;
* a cap on open connections (``max_connections``): one more is answered 503 and closed at once,
  before it can hold a file descriptor for long;
* a cap on the size of a head while it arrives (``HEADER_BUFFER_FACTOR`` x ``max_header_bytes``:
  httptools itself has none), answered 431;
* the one JSON error shape for requests the parser refuses (uvicorn answers those in plain
  text): 400.

The body-read deadline (``body_read_timeout_seconds``) is enforced in the ASGI layer
(:mod:`relay_context.service.middleware`), where the app waits for the body; heads larger than
``max_header_bytes`` are answered 431 there too, so the connection's cap is larger
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

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from relay_context.config.settings import Settings
from relay_context.service.errors import error_content
from relay_context.service.middleware import API_SECURITY_HEADERS

log = logging.getLogger(__name__)

#: The connection takes heads up to this many times ``max_header_bytes``: heads between the two
#: reach the app, which answers them 431 in the usual way; only larger ones are refused by the
#: connection (also with the JSON shape, but without the app's headers).
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
        "http": RelayHttpToolsProtocol,
        "timeout_keep_alive": settings.keep_alive_timeout_seconds,
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


class CorkedTransport:
    """A transport on which a response's head and what follows it in the same turn of the event
    loop leave in one ``send``.

    uvicorn writes a response's head and its body separately: two system calls, two loopback
    segments and two wake-ups of the client for every small answer (a cache hit is ~0.3 ms of
    work, so they are a sizeable share of it). After :meth:`cork` (the protocol calls it when a
    request's head is in), the next write schedules a flush for the end of its turn
    (``call_soon``) and later writes of that turn join it. Other writes — a stream's chunks,
    made in turns of their own — go to the socket at once: deferred, a chunk multicast to 100
    coalesced streams would wait for all 100 readers' turns before the first one left.
    Everything but writing is the real transport's.
    """

    __slots__ = ("_corked", "_loop", "_pending", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._corked = False

    def cork(self) -> None:
        """Holds the next write (a response's head) and what its turn writes after it, to leave
        together at the end of that turn."""
        self._corked = True

    def write(self, data: bytes) -> None:
        if not self._corked:  # (nothing is pending then: the flush uncorks)
            self._transport.write(data)
            return
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)

    def _flush(self) -> None:
        self._corked = False
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(len(d) for d in self._pending)

    def write_eof(self) -> None:
        self._flush()
        self._transport.write_eof()

    def close(self) -> None:
        self._flush()  # what was written before close is sent, as with the real transport
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class RelayHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header-read deadline, a cap on the head's size, a
    connection cap and JSON answers to unparseable requests (see the module's docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = connection_limits()
        self._head_timer: asyncio.TimerHandle | None = None
        self._lingering = False
        #: Between requests, or while a head is arriving (not yet complete).
        self._in_head = True
        #: Bytes received since the current head began (bounded by ``max_head_bytes``).
        self._head_seen = 0
        self._head_too_large = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # Every request cycle of the connection writes through it (uvicorn hands cycles
        # ``self.transport``).
        self.transport = CorkedTransport(transport, self.loop)  # type: ignore[assignment]
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
        if self._in_head:
            self._head_seen += len(data)
            if self._head_timer is None:  # the first byte of a request on a kept-alive connection
                self._arm_head_timer()
        super().data_received(data)
        if self._in_head and self._head_seen > self.limits.max_head_bytes and not self._lingering:
            self._head_too_large = True
            self.send_400_response("request head too large")

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_head_timer()
        # The answer's head and what is written with it leave in one send.
        self.transport.cork()  # type: ignore[attr-defined]
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # What follows on this connection is the next request's head.
        self._in_head = True
        self._head_seen = 0

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        if self._lingering:
            return
        if self._head_too_large:
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
        if self._in_head and not self.transport.is_closing():
            # No request is being served, so there is nobody to answer: close, as nginx does.
            self.transport.close()


__all__ = [
    "HEADER_BUFFER_FACTOR",
    "LINGER_SECONDS",
    "ConnectionLimits",
    "CorkedTransport",
    "RelayHttpToolsProtocol",
    "configure_connection_limits",
    "uvicorn_options",
]
