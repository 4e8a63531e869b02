"""``coalescing.Flight`` and its waiters' ``FlightAnswer``: one shared upstream answer read by
many, without a copy or a parse per waiter (the HTTP side is in test_gateway_coalescing.py)."""

from __future__ import annotations

import asyncio

import pytest

from relay_context.gateway.coalescing import Flight, FlightAnswer, Head, StreamCutError
from relay_context.gateway.sse_reader import SseEvent, SseSplitter
from relay_context.gateway.upstream_client import ANSWER_READ_ERRORS


def _flight(stream: bool = True, max_bytes: int = 1 << 20) -> Flight:
    flight = Flight("k", stream=stream, max_bytes=max_bytes)
    flight.answer_head(
        Head(
            200,
            (("Content-Type", "text/event-stream"), ("Content-Length", "9"), ("X-Up", "1")),
            "dep",
        )
    )
    return flight


async def _read_all(answer: FlightAnswer) -> list[bytes]:
    return [chunk async for chunk in answer.aiter_raw()]


async def test_every_waiter_reads_the_same_chunk_objects_live() -> None:
    flight = _flight()
    answers = [await flight.response(flight.join()) for _ in range(3)]
    assert flight.waiters == 3
    assert answers[0].status_code == 200
    # Headers by any case; the hop headers of the upstream's body are gone.
    assert answers[0].headers["x-up"] == "1"
    assert answers[0].headers.get("X-UP") == "1"
    assert "content-length" not in answers[0].headers
    readers = [asyncio.create_task(_read_all(a)) for a in answers]
    chunks = [b"data: 1\n\n", b"data: 2\n\n"]
    for chunk in chunks:
        await flight.append(chunk)
        await asyncio.sleep(0)
    flight.finish()
    results = await asyncio.gather(*readers)
    for got in results:
        assert got == chunks
        assert all(a is b for a, b in zip(got, chunks, strict=True))
    assert flight.waiters == 0  # each answer left the flight when its body ended


async def test_a_cut_shared_call_raises_a_read_error_for_every_waiter() -> None:
    flight = _flight()
    answers = [await flight.response(flight.join()) for _ in range(2)]
    await flight.append(b"data: 1\n\n")
    flight.finish(cut="upstream stream failed: ReadError")
    for answer in answers:
        body = answer.aiter_raw()
        assert await anext(body) == b"data: 1\n\n"
        with pytest.raises(StreamCutError, match="upstream stream failed") as caught:
            await anext(body)
        assert isinstance(caught.value, ANSWER_READ_ERRORS)  # what the stream renderers catch
    assert flight.waiters == 0


async def test_a_whole_answer_is_read_before_response_returns() -> None:
    flight = _flight(stream=False)
    reader = flight.join()
    waiting = asyncio.create_task(flight.response(reader))
    await asyncio.sleep(0)
    await flight.append(b'{"id":')
    await flight.append(b'"x"}')
    flight.finish()
    answer = await waiting
    assert answer.content == b'{"id":"x"}'
    assert await answer.aread() == b'{"id":"x"}'


async def test_closing_an_answer_leaves_the_flight_and_an_unread_body_is_an_error() -> None:
    flight = _flight()
    abandoned: list[Flight] = []
    flight.on_abandoned = abandoned.append
    answer = await flight.response(flight.join())
    with pytest.raises(RuntimeError, match="not been read"):
        _ = answer.content
    await answer.aclose()
    await answer.aclose()  # twice is harmless
    assert flight.waiters == 0
    assert abandoned == [flight]
    assert await _read_all(answer) == []


def test_the_splitter_finds_events_across_chunks_and_crlf_split_between_them() -> None:
    splitter = SseSplitter()
    assert splitter.feed(b"event: a\r") == []
    assert splitter.feed(b"\ndata: 1\r\n\r") == []
    first, second = splitter.feed(b"\n: a comment\n\ndata: 2\n\ndata: {")
    assert (first.event, first.data, first.raw) == ("a", b"1", b"event: a\ndata: 1\n\n")
    assert (second.event, second.data) == (None, b"2")
    assert [e.data for e in splitter.feed(b'"x": 1}\n\n\n\n')] == [b'{"x": 1}']
    assert splitter.feed(b"data: tail") == []
    [tail] = splitter.finish()
    assert tail.data == b"tail"
    assert splitter.finish() == []


async def test_waiters_get_the_flights_events_split_once() -> None:
    flight = _flight()
    answers = [await flight.response(flight.join()) for _ in range(2)]

    async def events(answer: FlightAnswer) -> list[list[SseEvent]]:
        return [batch async for batch in answer.event_batches()]

    readers = [asyncio.create_task(events(a)) for a in answers]
    for chunk in (b"data: 1\n\ndata: 2\n\ndata: 3", b"\n\n", b": ping\n\n", b"data: [DONE]"):
        await flight.append(chunk)
        await asyncio.sleep(0)
    flight.finish()
    first, second = await asyncio.gather(*readers)
    assert [[e.data for e in batch] for batch in first] == [[b"1", b"2"], [b"3"], [b"[DONE]"]]
    # The same event objects for both waiters: split once, by the flight.
    assert all(
        a is b for x, y in zip(first, second, strict=True) for a, b in zip(x, y, strict=True)
    )
    assert flight.waiters == 0
