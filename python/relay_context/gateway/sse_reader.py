"""Splits an upstream's Server-Sent Events byte stream into events, keeping each event's raw
bytes (a forwarded stream is re-sent byte for byte) next to its ``event`` name and ``data``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass(slots=True)
class SseEvent:
    """One event; never modified once made (a coalesced call's events are shared by every
    waiter of it)."""

    #: The event as received, with its terminating blank line (``\n\n``).
    raw: bytes
    event: str | None
    data: bytes


def _parse(block: bytes) -> SseEvent:
    event: str | None = None
    data: list[bytes] = []
    for line in block.split(b"\n"):
        if line.startswith(b"data:"):
            data.append(line[5:].removeprefix(b" "))
        elif line.startswith(b"event:"):
            event = line[6:].strip().decode("utf-8", "replace")
    return SseEvent(block + b"\n\n", event, b"\n".join(data))


class SseSplitter:
    """Splits a byte stream into events as its chunks arrive (its state: the partial event)."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """The events that ``chunk`` completes (comments and empty events skipped, CRLF
        normalised, also across chunks)."""
        buffer = self._buffer + chunk
        if b"\r" in buffer:
            buffer = buffer.replace(b"\r\n", b"\n")
        batch: list[SseEvent] = []
        start = 0
        while (end := buffer.find(b"\n\n", start)) >= 0:
            block = buffer[start:end]
            start = end + 2
            if block and not block.startswith(b":"):
                batch.append(_parse(block))
        self._buffer = buffer[start:]
        return batch

    def finish(self) -> list[SseEvent]:
        """The last event, if the stream ended without its blank line."""
        tail, self._buffer = self._buffer.strip(b"\n"), b""
        return [_parse(tail)] if tail and not tail.startswith(b":") else []


async def read_event_batches(chunks: AsyncIterator[bytes]) -> AsyncIterator[list[SseEvent]]:
    """The events of ``chunks``, as the complete events each network read brought (so that a
    forwarder writes them to its client in one send rather than one per event)."""
    splitter = SseSplitter()
    async for chunk in chunks:
        batch = splitter.feed(chunk)
        if batch:
            yield batch
    tail = splitter.finish()
    if tail:
        yield tail


async def read_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[SseEvent]:
    """The events of ``chunks`` one by one."""
    async for batch in read_event_batches(chunks):
        for event in batch:
            yield event


__all__ = ["SseEvent", "SseSplitter", "read_event_batches", "read_events"]
