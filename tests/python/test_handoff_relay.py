"""``HandoffRelay`` on each back-end: payloads round-trip, are content-addressed and reference
counted, expire, and channels number and retain their events."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from engine_support import FakeClock
from handoff_support import open_relay
from relay_context.errors import (
    InvalidArgumentError,
    InvalidChannelError,
    PayloadNotFoundError,
    PayloadTooLargeError,
    SlowConsumerError,
)


async def _chunks(data: bytes, size: int) -> Any:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_push_pull_round_trip_in_chunks(
    store_config: dict[str, Any], tmp_path: Path, clock: FakeClock
) -> None:
    data = os.urandom(300_000) + b"text " * 200_000
    async with open_relay(store_config, tmp_path, clock, chunk_bytes=64 * 1024) as relay:
        info, event = await relay.push(
            _chunks(data, 10_000), content_type="application/octet-stream", metadata={"a": [1]}
        )
        assert event is None
        assert info.size == len(data)
        assert info.sha256 == hashlib.sha256(data).hexdigest()
        assert len(info.id) >= 32  # 24 random bytes, base64url
        got_info, body = await relay.read_all(info.id)
        assert body == data
        assert got_info.metadata == {"a": [1]}
        stats = await relay.stats()
        assert stats.stored_bytes < stats.blob_bytes  # compressed
        assert stats.payloads == 1


async def test_same_bytes_are_stored_once_and_reference_counted(
    store_config: dict[str, Any], tmp_path: Path, clock: FakeClock
) -> None:
    data = b"the same review, pushed by two agents " * 1000
    async with open_relay(store_config, tmp_path, clock) as relay:
        first, _ = await relay.push(data, metadata={"who": "a"}, ttl_seconds=60)
        second, _ = await relay.push(data, metadata={"who": "b"}, ttl_seconds=3600)
        assert first.id != second.id
        assert first.stored_new_blob
        assert not second.stored_new_blob
        stats = await relay.stats()
        assert (stats.payloads, stats.blobs) == (2, 1)
        assert stats.dedup_saved_bytes == len(data)
        # Each keeps its own metadata and TTL.
        assert (await relay.info(first.id)).metadata == {"who": "a"}
        assert (await relay.info(second.id)).metadata == {"who": "b"}
        await relay.delete(first.id, owner=None, any_owner=True)
        assert (await relay.read_all(second.id))[1] == data
        assert (await relay.stats()).blobs == 1
        await relay.delete(second.id, owner=None, any_owner=True)
        stats = await relay.stats()
        assert (stats.payloads, stats.blobs, stats.stored_bytes) == (0, 0, 0)
        if relay.blob_storage == "files":
            assert not list((tmp_path / "handoff" / "blobs").rglob("*.zst"))
        with pytest.raises(PayloadNotFoundError):
            await relay.info(second.id)


async def test_expired_payloads_answer_missing_and_are_swept(
    store_config: dict[str, Any], tmp_path: Path, clock: FakeClock
) -> None:
    async with open_relay(store_config, tmp_path, clock) as relay:
        short, _ = await relay.push(b"short-lived", ttl_seconds=10)
        long, _ = await relay.push(b"long-lived", ttl_seconds=1000)
        clock.advance(11)
        with pytest.raises(PayloadNotFoundError):
            await relay.info(short.id)
        with pytest.raises(PayloadNotFoundError):
            await relay.pull(short.id)
        assert (await relay.stats()).blobs == 2  # still there until the sweep
        assert await relay.sweep() == 1
        stats = await relay.stats()
        assert (stats.payloads, stats.blobs) == (1, 1)
        assert (await relay.read_all(long.id))[1] == b"long-lived"


async def test_limits_are_refused(
    store_config: dict[str, Any], tmp_path: Path, clock: FakeClock
) -> None:
    async with open_relay(store_config, tmp_path, clock, max_payload_bytes=1000) as relay:
        with pytest.raises(PayloadTooLargeError):
            await relay.push(_chunks(b"x" * 1500, 100))
        assert not list((tmp_path / "handoff" / "spool").glob("*"))  # nothing left behind
        with pytest.raises(InvalidChannelError):
            await relay.push(b"x", channel="no spaces allowed")
        with pytest.raises(InvalidArgumentError):
            await relay.push(b"x", ttl_seconds=0)
        # A longer TTL than the maximum is cut to it.
        long, _ = await relay.push(b"x", ttl_seconds=10**9)
        assert long.expires_at_us - long.created_at_us == relay.settings.max_ttl_seconds * 10**6
        with pytest.raises(PayloadNotFoundError):
            await relay.info("not-an-id")
        with pytest.raises(PayloadNotFoundError):
            await relay.info("A" * 32)


async def test_channel_events_are_numbered_and_resumable(
    store_config: dict[str, Any], tmp_path: Path, clock: FakeClock
) -> None:
    async with open_relay(store_config, tmp_path, clock, channel_history_events=5) as relay:
        async with relay.subscribe("jobs") as live:
            pushed = [(await relay.push(b"p%d" % i, channel="jobs"))[1] for i in range(3)]
            signal = await relay.publish("jobs", {"done": True})
            got = [await asyncio.wait_for(anext(live), 5) for _ in range(4)]
        assert [e.seq for e in got] == [1, 2, 3, 4]
        assert [e.payload_id for e in got[:3]] == [e.payload_id for e in pushed if e]
        assert got[3].message == {"done": True}
        assert signal.seq == 4
        # A subscriber that comes back with after=2 gets 3 and 4 from the history.
        async with relay.subscribe("jobs", after=2) as resumed:
            again = [await asyncio.wait_for(anext(resumed), 5) for _ in range(2)]
        assert [e.seq for e in again] == [3, 4]
        # Only the last channel_history_events are kept.
        for i in range(6):
            await relay.publish("jobs", i)
        async with relay.subscribe("jobs", after=0) as old:
            kept = [await asyncio.wait_for(anext(old), 5) for _ in range(5)]
        assert [e.seq for e in kept] == [6, 7, 8, 9, 10]


async def test_a_slow_subscriber_is_cut(
    store_config: dict[str, Any], tmp_path: Path, clock: FakeClock
) -> None:
    async with open_relay(store_config, tmp_path, clock, subscriber_queue_events=3) as relay:
        async with relay.subscribe("firehose") as slow:
            for i in range(5):
                await relay.publish("firehose", i)
            for _ in range(3):
                await asyncio.wait_for(anext(slow), 5)
            with pytest.raises(SlowConsumerError):
                await asyncio.wait_for(anext(slow), 5)
        assert relay.fanout.subscriber_count == 0


async def test_a_repetitive_payload_streams_out_in_bounded_pieces(
    tmp_path: Path, clock: FakeClock
) -> None:
    """20 MB of zeros compress to a few KB; pulled, they still come out near chunk_bytes at a
    time (the decompressor's input pieces adapt), never as one 20 MB piece."""
    config = {"backend": "sqlite", "path": str(tmp_path / "relay.db")}
    size = 20 * 1024 * 1024
    async with open_relay(config, tmp_path, clock, chunk_bytes=256 * 1024) as relay:
        info, _ = await relay.push(_chunks(bytes(size), 1024 * 1024))
        assert (await relay.stats()).stored_bytes < 10_000
        _, stream = await relay.pull(info.id)
        pieces = [len(piece) async for piece in stream]
    assert sum(pieces) == size
    assert max(pieces) <= 8 * 256 * 1024


async def test_an_event_whose_notification_was_lost_arrives_at_the_next_tick(
    store_config: dict[str, Any], tmp_path: Path, clock: FakeClock
) -> None:
    async with open_relay(store_config, tmp_path, clock) as relay, relay.subscribe("lossy") as sub:
        # Committed but never fanned out, as when a Redis message is dropped.
        async with relay.database.write() as tx:
            await relay.channels.append(tx, "lossy", now_us=clock(), message="lost")
        sub.tick()
        event = await asyncio.wait_for(sub.next_or_tick(), 5)
        assert event is not None
        assert (event.seq, event.message) == (1, "lost")
        sub.tick()
        assert await asyncio.wait_for(sub.next_or_tick(), 5) is None  # nothing else missed
