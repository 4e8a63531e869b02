"""The gateway cache's lean Redis connection (persistence/resp.py) against real redis-servers:
values of every size, pipelined concurrent calls, nil and error replies, login and database
selection, a frozen server (deadline, then a new connection), a killed and restarted one, and
replies for calls that were cancelled."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Iterator

import pytest
import redis

from redis_support import ThrowawayRedis, wait_for_ping
from relay_context.persistence.resp import (
    RespAddress,
    RespConnection,
    RespReplyError,
    pack_command,
)

SHARED = "redis://127.0.0.1:6379/0"


def connection(url: str = SHARED, timeout: float = 2.0) -> RespConnection:
    address = RespAddress.from_url(url)
    assert address is not None
    return RespConnection(address, connect_timeout=timeout, socket_timeout=timeout)


@pytest.fixture
def prefix() -> Iterator[str]:
    prefix = f"relay-test-resp-{secrets.token_hex(4)}:"
    yield prefix
    client = redis.Redis.from_url(SHARED)
    for key in client.scan_iter(prefix + "*"):
        client.delete(key)


def test_urls() -> None:
    assert RespAddress.from_url("redis://127.0.0.1:6379/0") == RespAddress("127.0.0.1", 6379)
    assert RespAddress.from_url("rediss://u%40x:p%3Aw@cache.internal/3") == RespAddress(
        "cache.internal", 6379, 3, "u@x", "p:w", True
    )
    assert RespAddress.from_url("redis://:secret@h:7000?db=2") == RespAddress(
        "h", 7000, 2, None, "secret"
    )
    assert RespAddress.from_url("unix:///run/redis.sock") is None
    assert RespAddress.from_url("redis://h:notaport/0") is None
    assert pack_command(b"GET", b"k") == b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"


async def test_values_of_every_size_round_trip(prefix: str) -> None:
    conn = connection()
    reference = redis.Redis.from_url(SHARED)
    try:
        for size in (0, 1, 2, 100, 4095, 65_537, 3 * 1024 * 1024):
            value = secrets.token_bytes(size)
            value = value.replace(b"\r\n", b"\n\r") if size < 3 else value  # CRLF inside too
            await conn.set(f"{prefix}{size}", value, px=60_000)
            assert await conn.get(f"{prefix}{size}") == value
            assert reference.get(f"{prefix}{size}") == value  # what redis-py reads
        assert 0 < reference.pttl(f"{prefix}100") <= 60_000
        assert await conn.get(f"{prefix}missing") is None
        reference.set(f"{prefix}text", "é\r\n$-1\r\n")
        assert await conn.get(f"{prefix}text") == "é\r\n$-1\r\n".encode()
    finally:
        await conn.close()


async def test_concurrent_calls_are_pipelined_and_answered_in_order(prefix: str) -> None:
    conn = connection()
    try:
        await asyncio.gather(
            *(conn.set(f"{prefix}{i}", b"v%d" % i * i, px=60_000) for i in range(200))
        )
        got = await asyncio.gather(*(conn.get(f"{prefix}{i % 200}") for i in range(1000)))
        assert got == [b"v%d" % (i % 200) * (i % 200) for i in range(1000)]
    finally:
        await conn.close()


async def test_error_replies_raise_and_the_connection_stays_usable(prefix: str) -> None:
    conn = connection()
    redis.Redis.from_url(SHARED).rpush(f"{prefix}list", b"x")
    try:
        with pytest.raises(RespReplyError, match="WRONGTYPE"):
            await conn.get(f"{prefix}list")
        with pytest.raises(ValueError, match="px"):
            await conn.set(f"{prefix}k", b"v", px=0)
        await conn.set(f"{prefix}k", b"v", px=60_000)
        assert await conn.get(f"{prefix}k") == b"v"
    finally:
        await conn.close()


async def test_a_cancelled_call_does_not_shift_the_replies(prefix: str) -> None:
    conn = connection()
    try:
        await conn.set(f"{prefix}a", b"A", px=60_000)
        await conn.set(f"{prefix}b", b"B", px=60_000)
        first = asyncio.ensure_future(conn.get(f"{prefix}a"))
        await asyncio.sleep(0)  # sent, not yet answered
        first.cancel()
        assert await conn.get(f"{prefix}b") == b"B"  # not A: the cancelled reply was dropped
    finally:
        await conn.close()


@pytest.fixture
def throwaway() -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis()
    yield server
    server.stop()


async def test_login_and_database(throwaway: ThrowawayRedis) -> None:
    plain = redis.Redis(port=throwaway.port)
    plain.config_set("requirepass", "s3cret")
    admin = redis.Redis(port=throwaway.port, password="s3cret")
    admin.execute_command("ACL", "SETUSER", "relay", "on", ">pw:1", "~*", "+@all")
    conn = connection(f"redis://:s3cret@127.0.0.1:{throwaway.port}/5")
    user = connection(f"redis://relay:pw%3A1@127.0.0.1:{throwaway.port}/0")
    wrong = connection(f"redis://:nope@127.0.0.1:{throwaway.port}/0")
    try:
        await conn.set("k", b"in db 5", px=60_000)
        assert redis.Redis(port=throwaway.port, password="s3cret", db=5).get("k") == b"in db 5"
        assert admin.get("k") is None  # not in db 0
        assert await user.get("k") is None
        await user.set("k", b"db 0", px=60_000)
        assert admin.get("k") == b"db 0"
        with pytest.raises(RespReplyError, match=r"WRONGPASS|invalid"):
            await wrong.get("k")
    finally:
        for c in (conn, user, wrong):
            await c.close()


async def test_a_frozen_server_costs_the_deadline_then_a_new_connection(
    throwaway: ThrowawayRedis,
) -> None:
    conn = connection(throwaway.url, timeout=0.3)
    try:
        await conn.set("k", b"v", px=60_000)
        throwaway.freeze()
        started = time.monotonic()
        results = await asyncio.gather(conn.get("k"), conn.get("k"), return_exceptions=True)
        elapsed = time.monotonic() - started
        assert all(isinstance(r, (TimeoutError, ConnectionError)) for r in results), results
        assert elapsed < 1.5  # the socket timeout, not a hang
        throwaway.thaw()
        assert await conn.get("k") == b"v"  # a new connection: no reply of the old one
    finally:
        throwaway.thaw()
        await conn.close()


async def test_a_killed_server_fails_fast_and_a_restarted_one_is_used_again(
    throwaway: ThrowawayRedis,
) -> None:
    conn = connection(throwaway.url, timeout=1.0)
    try:
        await conn.set("k", b"v", px=60_000)
        throwaway.stop()
        with pytest.raises(ConnectionError):
            await conn.get("k")
        with pytest.raises(ConnectionRefusedError):  # nothing listens
            await conn.get("k")
        throwaway.start()
        await asyncio.to_thread(wait_for_ping, throwaway.port, "redis-server")
        assert await conn.get("k") is None  # a new, empty server
        await conn.set("k", b"again", px=60_000)
        assert await conn.get("k") == b"again"
    finally:
        await conn.close()


async def test_a_stream_that_is_not_resp_closes_the_connection() -> None:
    """A server that answers with something else (here: an HTTP server on the port)."""
    server = await asyncio.start_server(_http_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    conn = connection(f"redis://127.0.0.1:{port}/0", timeout=1.0)
    try:
        with pytest.raises(ConnectionError, match=r"malformed reply: reply type 'H'"):
            await conn.get("k")
    finally:
        await conn.close()
        server.close()
        await server.wait_closed()


async def _http_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(100)
    writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    await writer.drain()
    await asyncio.sleep(0.5)
    writer.close()
