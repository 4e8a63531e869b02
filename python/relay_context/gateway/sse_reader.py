"""Splits an upstream's Server-Sent Events byte stream into events, keeping each event's raw
bytes (a forwarded stream is re-sent byte for byte) next to its ``event`` name and ``data``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass


@dataclass(slots=True)
class SseEvent:
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


async def read_event_batches(chunks: AsyncIterator[bytes]) -> AsyncIterator[list[SseEvent]]:
    """The events of ``chunks``, as the complete events each network read brought (so that a
    forwarder writes them to its client in one send rather than one per event); comments and
    empty events are skipped, CRLF is normalised."""
    buffer = b""
    async for chunk in chunks:
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r\n", b"\n")
        buffer += chunk
        batch: list[SseEvent] = []
        while True:
            end = buffer.find(b"\n\n")
            if end < 0:
                break
            block, buffer = buffer[:end], buffer[end + 2 :]
            if block and not block.startswith(b":"):
                batch.append(_parse(block))
        if batch:
            yield batch
    tail = buffer.strip(b"\n")
    if tail and not tail.startswith(b":"):
        yield [_parse(tail)]


async def read_events(chunks: AsyncIterator[bytes]) -> AsyncIterator[SseEvent]:
    """The events of ``chunks`` one by one."""
    async for batch in read_event_batches(chunks):
        for event in batch:
            yield event


__all__ = ["SseEvent", "read_event_batches", "read_events"]
