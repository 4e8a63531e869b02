"""A streamed answer on its way to the client, kept event by event for the cache.

The events are stored only when the stream ran to its end without an error: a client that
disconnects closes the generator at a ``yield`` (nothing after the loop runs), and an upstream
failure or a budget cut is reported by ``failed`` — an interrupted stream is never stored.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from relay_context.gateway.cache.replay import is_openai_usage_chunk


def split_events(chunk: bytes) -> list[bytes]:
    """A write's SSE events, each with its blank line."""
    out: list[bytes] = []
    start = 0
    while True:
        end = chunk.find(b"\n\n", start)
        if end < 0:
            break
        out.append(chunk[start : end + 2])
        start = end + 2
    if start < len(chunk):
        out.append(chunk[start:])
    return out


async def record_stream(
    chunks: AsyncIterator[bytes],
    *,
    hide_openai_usage: bool,
    failed: Callable[[], bool],
    on_complete: Callable[[list[bytes]], None],
) -> AsyncIterator[bytes]:
    """``chunks`` as the client should get them (OpenAI's usage chunk left out when
    ``hide_openai_usage``: it is recorded, since another client may ask for it), recorded."""
    events: list[bytes] = []
    async for chunk in chunks:
        these = split_events(chunk)
        events += these
        if hide_openai_usage:
            shown = [e for e in these if not is_openai_usage_chunk(e)]
            if len(shown) != len(these):
                chunk = b"".join(shown)
        if chunk:
            yield chunk
    if not failed():
        on_complete(events)


__all__ = ["record_stream", "split_events"]
