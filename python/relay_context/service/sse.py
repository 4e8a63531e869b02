"""Server-Sent Events: framing, heartbeats and the streaming response, shared by every stream
the service serves (a session's messages, the dashboard, and the gateway's streamed answers).

A stream ends when its events end, when the client goes away (checked at each idle heartbeat),
or at once when the server is asked to stop (``ServiceState.shutting_down``): uvicorn waits for
open connections before its shutdown, and an SSE stream never finishes by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from fastapi import Request
from fastapi.responses import StreamingResponse

if TYPE_CHECKING:
    from relay_context.service.state import ServiceState

#: Sent first on a resumable stream: how long a client waits before reconnecting (ms).
SSE_RETRY_MILLISECONDS = 2000
#: No proxy buffering (nginx) and no caching of a live stream.
SSE_HEADERS = {"X-Accel-Buffering": "no", "Cache-Control": "no-store"}
HEARTBEAT = b": heartbeat\n\n"


def sse_event(data: str, *, event: str | None = None, event_id: int | str | None = None) -> bytes:
    """One event. ``data`` must be one line (JSON without raw newlines, as ``json.dumps``
    writes it); ``event_id`` is what a reconnecting client sends back as ``Last-Event-ID``."""
    head = ""
    if event_id is not None:
        head += f"id: {event_id}\n"
    if event is not None:
        head += f"event: {event}\n"
    return f"{head}data: {data}\n\n".encode()


def sse_retry(milliseconds: int = SSE_RETRY_MILLISECONDS) -> bytes:
    return f"retry: {milliseconds}\n\n".encode()


async def with_heartbeats(
    events: AsyncIterator[bytes],
    *,
    interval: float,
    stopping: asyncio.Event,
    is_disconnected: Callable[[], Awaitable[bool]],
    first: bytes = b"",
) -> AsyncIterator[bytes]:
    """``events`` as they come, with a comment line after each idle ``interval`` seconds; ends
    when ``events`` end, the client disconnects, or ``stopping`` is set. ``events`` is closed
    whatever ends the stream."""
    stop: asyncio.Future[Any] = asyncio.ensure_future(stopping.wait())
    pending: asyncio.Future[Any] | None = None
    try:
        if first:
            yield first
        while not stopping.is_set():
            if pending is None:
                pending = asyncio.ensure_future(anext(events))
            done, _ = await asyncio.wait(
                {pending, stop}, timeout=interval, return_when=asyncio.FIRST_COMPLETED
            )
            if stop in done:
                break
            if pending in done:
                try:
                    chunk = pending.result()
                except StopAsyncIteration:
                    break
                finally:
                    pending = None
                yield chunk
            else:
                if await is_disconnected():
                    break
                yield HEARTBEAT
    finally:
        stop.cancel()
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration, Exception):
                await pending
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()


class EventStreamResponse(StreamingResponse):
    """A ``text/event-stream`` response; as a route's ``response_class`` it makes the OpenAPI
    document list that media type (and not JSON) for the route's answer."""

    media_type = "text/event-stream"


def event_stream(
    request: Request, state: ServiceState, events: AsyncIterator[bytes], *, first: bytes = b""
) -> EventStreamResponse:
    """The ``text/event-stream`` response of ``events``, heartbeats every
    ``sse_heartbeat_seconds``, ended by the client or the server's shutdown."""
    return EventStreamResponse(
        with_heartbeats(
            events,
            interval=state.settings.sse_heartbeat_seconds,
            stopping=state.shutting_down,
            is_disconnected=request.is_disconnected,
            first=first,
        ),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
    )


__all__ = [
    "HEARTBEAT",
    "SSE_HEADERS",
    "SSE_RETRY_MILLISECONDS",
    "EventStreamResponse",
    "event_stream",
    "sse_event",
    "sse_retry",
    "with_heartbeats",
]
