"""Gemini's other stream form: ``streamGenerateContent`` without ``alt=sse`` answers one JSON
array whose elements arrive as they are generated (``[{...}\\n,\\r\\n{...}\\n]``, as Google's
API sends it). The gateway builds every Gemini stream as Server-Sent Events; this turns such a
stream into the array form, element by element, an error event included (Gemini's ``{"error":
...}`` object as the last element)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

from relay_context.gateway.sse_reader import read_event_batches

MEDIA_TYPE = "application/json"


def wants_json_array(query: Mapping[str, str]) -> bool:
    """Whether a ``streamGenerateContent`` call asked for the array form (no ``alt=sse``)."""
    return query.get("alt") != "sse"


async def as_json_array(sse: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The events of ``sse`` (each one JSON object in its ``data``) as one streamed array."""
    yield b"["
    first = True
    async for batch in read_event_batches(sse):
        out = bytearray()
        for event in batch:
            if not event.data:
                continue
            out += event.data if first else b"\n,\r\n" + event.data
            first = False
        if out:
            yield bytes(out)
    yield b"\n]"


__all__ = ["MEDIA_TYPE", "as_json_array", "wants_json_array"]
