"""In-flight coalescing: concurrent identical requests (one key) share one upstream call.

The first request of a key leads: its upstream call runs in a task of its own, not in the
request, so the leader's client going away does not end it while others wait. The upstream's
answer (status, headers, then the body chunk by chunk, as the upstream sent it) goes into a
:class:`Flight`; every waiter, the leader's client included, reads the flight through a
:class:`FlightAnswer` of its own (:meth:`Flight.response`: the surface of an upstream answer,
the same chunk objects for every waiter), from its first chunk, then live, at the upstream's
speed. Each waiter renders that response in its own protocol as if it came from the
upstream (same format forwarded, other formats translated, its own usage chunk stripped or kept,
its own budget), so an answer or an error reaches everyone in the shape of the API they called.

A flight is bounded: past ``max_bytes`` it takes no new joiners (they start a call of their own),
drops the chunks every waiter has read, and its producer waits for the slowest waiter rather
than buffer more. The call is cancelled when its last waiter leaves (a *keeper* reader, such as
the Redis coalescer's mirror of the answer for other processes, is not a waiter: what it does
when the waiters are gone is its owner's ``on_abandoned``). The key is opaque here (the gateway
derives it from the request and the caller's scope).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from relay_context.gateway.errors import GatewayError, UpstreamUnavailableError
from relay_context.gateway.http_client import AnswerBody, ConnectionCutError, ResponseHeaders
from relay_context.gateway.sse_reader import SseEvent, SseSplitter
from relay_context.gateway.upstream_client import ANSWER_READ_ERRORS, UpstreamAnswer

log = logging.getLogger(__name__)

#: Response headers that do not describe the replayed body (it is stored decoded).
_HOP_HEADERS = frozenset({"content-length", "content-encoding", "transfer-encoding", "connection"})


@dataclass(frozen=True, slots=True)
class Head:
    """What the upstream answered before its body: status, headers, the deployment's key."""

    status: int
    headers: tuple[tuple[str, str], ...]
    deployment: str


#: Starts the upstream call: the response (its body unread when streamed) and the key of the
#: deployment that answered; raises ``GatewayError`` for an error answered before any body.
Start = Callable[[], Awaitable[tuple[UpstreamAnswer, str]]]


class StreamCutError(ConnectionCutError):
    """The shared upstream stream failed after it began (what each waiter's reader sees, as it
    would a cut connection, so that each ends its stream with its protocol's error event)."""


class Flight:
    """One shared upstream answer and its waiters' positions in it."""

    def __init__(self, key: str, *, stream: bool, max_bytes: int) -> None:
        self.key = key
        self.stream = stream
        self.max_bytes = max_bytes
        #: False once full: new identical requests then start a call of their own.
        self.joinable = True
        self.head: Head | None = None
        self._answer_headers = ResponseHeaders({})
        #: An error answered before the body (every waiter answers it in its own shape).
        self.error: GatewayError | None = None
        #: Why the body ended early (``None``: it has not, or it ended well).
        self.cut: str | None = None
        self.done = False
        #: Whether this process makes the call (else it reads another process's answer).
        self.called_here = False
        self.chunks: list[bytes] = []
        #: A streamed answer's events, split once as each chunk arrived (``batches[i]``: the
        #: events ``chunks[i]`` completed), so that no waiter parses them again. They hold
        #: about twice the chunks' bytes (each event's raw bytes and its data), which
        #: ``max_bytes`` does not count: it bounds the chunks.
        self.batches: list[list[SseEvent]] = []
        #: The last event if the stream ended without its blank line.
        self.tail_batch: list[SseEvent] = []
        self._splitter = SseSplitter() if stream else None
        #: Index in the whole answer of ``chunks[0]`` (chunks before it were dropped).
        self.base = 0
        self.buffered = 0
        self.total_bytes = 0
        self._positions: dict[int, int] = {}
        #: Readers that read for someone elsewhere (not counted as waiters).
        self._keepers: set[int] = set()
        self._ids = itertools.count()
        self._changed = asyncio.Event()
        self._drained = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        #: Called when the flight is left with no waiter and is not done (each time it happens:
        #: the local coalescer cancels the call; the Redis one asks other processes first).
        self.on_abandoned: Callable[[Flight], None] | None = None

    # --- the producer's side -------------------------------------------------------------------

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def answer_head(self, head: Head) -> None:
        self.head = head
        # What every waiter's answer has as headers (one read-only mapping for all of them).
        self._answer_headers = ResponseHeaders(
            {k.lower(): v for k, v in head.headers if k.lower() not in _HOP_HEADERS}
        )
        self._wake()

    def fail(self, error: GatewayError) -> None:
        """The call failed before any body: every waiter gets ``error``."""
        self.error = error
        self.done = True
        self.joinable = False
        self._wake()

    async def append(self, chunk: bytes) -> None:
        """Adds a body chunk; when the flight is full, waits until the slowest waiter has read
        enough of it (so a flight never holds much more than ``max_bytes``)."""
        if not chunk:
            return
        self.chunks.append(chunk)
        self.batches.append(self._splitter.feed(chunk) if self._splitter is not None else [])
        self.buffered += len(chunk)
        self.total_bytes += len(chunk)
        if self.buffered > self.max_bytes:
            self.joinable = False
        self._wake()
        while not self.joinable and self._positions:
            self._trim()
            if self.buffered <= self.max_bytes:
                return
            self._drained.clear()
            await self._drained.wait()

    def _trim(self) -> None:
        slowest = min(self._positions.values())
        drop = slowest - self.base
        if drop > 0:
            self.buffered -= sum(len(c) for c in self.chunks[:drop])
            del self.chunks[:drop]
            del self.batches[:drop]
            self.base = slowest

    def finish(self, cut: str | None = None) -> None:
        """The body is complete (``cut``: it ended early, for that reason)."""
        self.cut = cut
        if self._splitter is not None and cut is None:
            self.tail_batch = self._splitter.finish()
        self.done = True
        self.joinable = False
        self._wake()

    # --- the waiters' side ---------------------------------------------------------------------

    @property
    def waiters(self) -> int:
        """The readers that are clients waiting here (keepers not counted)."""
        return len(self._positions) - len(self._keepers)

    @property
    def keepers(self) -> int:
        return len(self._keepers)

    def join(self, *, keeper: bool = False) -> int:
        """A new reader, positioned at the answer's first chunk: a waiter, or a ``keeper``
        (which reads for others elsewhere, and does not keep the call alive by itself)."""
        reader = next(self._ids)
        self._positions[reader] = 0
        if keeper:
            self._keepers.add(reader)
        return reader

    def leave(self, reader: int) -> None:
        if self._positions.pop(reader, None) is None:
            return
        self._keepers.discard(reader)
        self._drained.set()
        if not self.waiters and not self.done and self.on_abandoned is not None:
            self.on_abandoned(self)

    async def wait_head(self) -> Head:
        """The upstream's head once it answered; raises the call's error if it failed."""
        while self.head is None:
            if self.error is not None:
                raise self.error
            if self.done:
                raise UpstreamUnavailableError(
                    "the shared upstream call ended without an answer", provider="-"
                )
            await self._changed.wait()
        return self.head

    async def read(self, reader: int) -> bytes | None:
        """The waiter's next chunk, ``None`` at the end; raises :class:`StreamCutError`."""
        index = await self._next(reader)
        return None if index is None else self.chunks[index]

    async def read_batch(self, reader: int) -> list[SseEvent] | None:
        """The events of the waiter's next chunk (of a streamed answer), ``None`` at the end;
        raises :class:`StreamCutError`."""
        index = await self._next(reader)
        return None if index is None else self.batches[index]

    async def _next(self, reader: int) -> int | None:
        """Moves the reader on by one chunk: that chunk's index in ``chunks``, ``None`` at the
        end (valid until the producer next runs: it may drop chunks read by everyone)."""
        while True:
            position = self._positions[reader]
            index = position - self.base
            if index < len(self.chunks):
                self._positions[reader] = position + 1
                if not self.joinable:
                    self._drained.set()
                return index
            if self.done:
                if self.cut is not None:
                    raise StreamCutError(self.cut)
                return None
            await self._changed.wait()

    async def response(self, reader: int) -> FlightAnswer:
        """The waiter's own view of the answer, read from this flight (read whole before it
        returns for a call that is not streamed)."""
        try:
            head = await self.wait_head()
            response = FlightAnswer(self, reader, head.status, self._answer_headers)
            if not self.stream:
                await response.aread()
        except BaseException:
            self.leave(reader)
            raise
        return response


class FlightAnswer(AnswerBody):
    """One waiter's view of a shared answer, with the surface of an upstream's
    (:class:`~relay_context.gateway.upstream_client.UpstreamAnswer`): its body is the flight's
    chunks, the same objects for every waiter, read at this waiter's own pace."""

    def __init__(self, flight: Flight, reader: int, status: int, headers: ResponseHeaders) -> None:
        self.status_code = status
        self.headers = headers
        self._flight: Flight | None = flight
        self._reader = reader
        self._content: bytes | None = None

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body chunk by chunk; raises :class:`StreamCutError` if the shared call broke."""
        flight = self._flight
        if flight is None:
            return
        try:
            while (chunk := await flight.read(self._reader)) is not None:
                yield chunk
        finally:
            await self.aclose()

    async def event_batches(self) -> AsyncIterator[list[SseEvent]]:
        """The body's events as the flight split them, once for every waiter."""
        flight = self._flight
        if flight is None:
            return
        try:
            while (batch := await flight.read_batch(self._reader)) is not None:
                if batch:
                    yield batch
            if flight.tail_batch:
                yield flight.tail_batch
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        flight, self._flight = self._flight, None
        if flight is not None:
            flight.leave(self._reader)


@dataclass(frozen=True, slots=True)
class Joined:
    """One waiter's place in a shared call."""

    response: UpstreamAnswer
    #: The key of the deployment that answered.
    deployment: str
    #: Whether this request started the call (a follower's answer is ``coalesced``).
    leader: bool


class Coalescer(Protocol):
    async def join(self, key: str, *, stream: bool, start: Start) -> Joined: ...

    async def close(self) -> None: ...


async def pump(flight: Flight, response: UpstreamAnswer) -> None:
    """Copies an upstream response's body into ``flight`` and closes the response."""
    try:
        if flight.stream:
            async for chunk in response.aiter_raw():
                await flight.append(chunk)
        else:
            await flight.append(response.content)
        flight.finish()
    except ANSWER_READ_ERRORS as exc:
        flight.finish(cut=f"upstream stream failed: {type(exc).__name__}")
    finally:
        await response.aclose()


async def lead(flight: Flight, start: Start) -> None:
    """Makes the upstream call of ``flight`` and fills it."""
    flight.called_here = True
    try:
        response, deployment = await start()
    except GatewayError as err:
        flight.fail(err)
        return
    except asyncio.CancelledError:
        flight.fail(UpstreamUnavailableError("the shared call was cancelled", provider="-"))
        raise
    except Exception as exc:
        log.exception("shared upstream call failed")
        flight.fail(UpstreamUnavailableError(f"upstream call failed: {exc}", provider="-"))
        return
    flight.answer_head(Head(response.status_code, tuple(response.headers.items()), deployment))
    try:
        await pump(flight, response)
    finally:
        if not flight.done:  # cancelled: nobody waits any more
            flight.finish(cut="the shared call was cancelled")


class LocalCoalescer:
    """Coalescing within one process."""

    def __init__(self, max_bytes: Callable[[], int]) -> None:
        self._max_bytes = max_bytes
        self.flights: dict[str, Flight] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def open_flight(self, key: str, stream: bool) -> Flight:
        flight = Flight(key, stream=stream, max_bytes=self._max_bytes())
        flight.on_abandoned = self._abandoned
        self.flights[key] = flight
        return flight

    def joinable(self, key: str) -> Flight | None:
        flight = self.flights.get(key)
        if flight is None or not flight.joinable:
            return None
        return flight

    def run(self, flight: Flight, work: Awaitable[None]) -> None:
        """Runs the flight's producer in a task of its own; the flight is forgotten when done."""

        async def produce() -> None:
            try:
                await work
            finally:
                if self.flights.get(flight.key) is flight:
                    del self.flights[flight.key]

        task = asyncio.get_running_loop().create_task(produce())
        flight.task = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _abandoned(self, flight: Flight) -> None:
        self.abandon(flight)

    def abandon(self, flight: Flight) -> None:
        """Forgets ``flight`` (new requests start a call of their own) and cancels its call."""
        if self.flights.get(flight.key) is flight:
            del self.flights[flight.key]
        if flight.task is not None:
            flight.task.cancel()

    async def join(self, key: str, *, stream: bool, start: Start) -> Joined:
        flight = self.joinable(key)
        leader = flight is None
        if flight is None:
            flight = self.open_flight(key, stream)
            self.run(flight, lead(flight, start))
        reader = flight.join()
        response = await flight.response(reader)
        assert flight.head is not None
        return Joined(response, flight.head.deployment, leader)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


__all__ = [
    "Coalescer",
    "Flight",
    "FlightAnswer",
    "Head",
    "Joined",
    "LocalCoalescer",
    "Start",
    "StreamCutError",
    "lead",
    "pump",
]
