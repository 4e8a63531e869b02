"""The context routes on the real PostgreSQL and Redis: two ``relay serve`` processes share the
sessions (PostgreSQL), the window cache, the live stream (Redis pub/sub) and the rate limits.
A missing server fails these tests (the fixtures never skip)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
import redis

from context_service_support import CONTEXT, bearer, metric_samples, post_message, sse_events
from engine_support import unique_name
from service_support import Server, assert_error, real_backends, run_server, service_env

ADMIN = bearer("root", "admin")
ALICE = bearer("alice", "user")
BOB = bearer("bob", "user")


@pytest.fixture(scope="module")
def backends(pg_dsn: str, redis_server: str) -> Iterator[dict[str, str]]:
    with real_backends(pg_dsn, redis_server, "relay_ctx") as settings:
        yield settings


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory, backends: dict[str, str]
) -> Iterator[tuple[Server, Server]]:
    data = tmp_path_factory.mktemp("ctx-backends")
    env = service_env(data / "state", rate_limit_requests="1000", **backends)
    with run_server(env, data / "a") as first, run_server(env, data / "b") as second:
        yield first, second


def test_messages_written_on_one_process_are_read_on_the_other(
    servers: tuple[Server, Server], pg_dsn: str, backends: dict[str, str]
) -> None:
    first, second = servers
    post_message(first.client, ALICE, "shared", "You are terse.", role="system")
    for i in range(4):
        made = post_message(second.client if i % 2 else first.client, ALICE, "shared", f"q{i}?")
        assert made.status_code == 201
        assert made.json()["seq"] == i + 2
    window = second.client.get(f"{CONTEXT}/shared", headers=ALICE).json()
    assert [m["content"] for m in window["messages"]][1:] == ["q0?", "q1?", "q2?", "q3?"]
    assert first.client.get(f"{CONTEXT}/shared/stats", headers=ALICE).json()["owner"] == "alice"
    assert_error(first.client.get(f"{CONTEXT}/shared", headers=BOB), 404, "session_not_found")

    async def rows() -> list[Any]:
        connection = await asyncpg.connect(pg_dsn)
        try:
            return list(
                await connection.fetch(
                    f'SELECT id, owner FROM "{backends["database_schema"]}".relay_sessions'
                )
            )
        finally:
            await connection.close()

    assert ("shared", "alice") in {(r["id"], r["owner"]) for r in asyncio.run(rows())}


def test_windows_are_cached_in_redis_for_every_process(
    servers: tuple[Server, Server], backends: dict[str, str], redis_server: str
) -> None:
    first, second = servers
    for i in range(6):
        post_message(first.client, ADMIN, "cached", f"Tell me about subject {i}: " + "x" * i)
    params = {"budget": 60}
    built = first.client.get(f"{CONTEXT}/cached", headers=ADMIN, params=params).json()
    client = redis.Redis.from_url(redis_server)
    try:
        keys = list(client.scan_iter(match=backends["redis_key_prefix"] + "*", count=1000))
    finally:
        client.close()
    assert any(b"cached" in k for k in keys), keys
    # The other process finds the window in Redis.
    again = second.client.get(f"{CONTEXT}/cached", headers=ADMIN, params=params).json()
    assert again == built
    samples = metric_samples(second.client.get("/metrics").text)
    assert samples["relay_context_cache_hits_total"] >= 1
    assert samples["relay_context_tokens_used"] == built["tokens_used"]
    # A write on the first process makes the cached window stale for both.
    post_message(first.client, ADMIN, "cached", "and one more")
    fresh = second.client.get(f"{CONTEXT}/cached", headers=ADMIN, params=params).json()
    assert fresh["kept_ids"][-1] == 7


def test_a_stream_on_one_process_sees_messages_added_on_the_other(
    servers: tuple[Server, Server],
) -> None:
    first, second = servers
    post_message(first.client, ALICE, "live", "hello")
    with second.client.stream(
        "GET", f"{CONTEXT}/live/stream", headers={**ALICE, "Last-Event-ID": "1"}
    ) as response:
        assert response.status_code == 200
        events = sse_events(response.iter_lines())
        assert next(events) == {"retry": "2000"}
        post_message(first.client, ALICE, "live", "from the other process")
        message = next(e for e in events if e.get("event") == "message")
        data = json.loads(message["data"])
        assert (message["id"], data["content"]) == ("2", "from the other process")


def test_rate_limits_are_shared_through_redis(
    tmp_path_factory: pytest.TempPathFactory, backends: dict[str, str]
) -> None:
    data = tmp_path_factory.mktemp("ctx-limits")
    env = service_env(data / "state", rate_limit_requests="3", **backends)
    me = bearer(unique_name("limited"), "admin")
    with run_server(env, data / "a") as first, run_server(env, data / "b") as second:
        answers = [
            post_message(first.client, me, "limited-shared", "one"),
            second.client.get(f"{CONTEXT}/limited-shared", headers=me),
            first.client.get(f"{CONTEXT}/limited-shared/stats", headers=me),
            second.client.delete(f"{CONTEXT}/limited-shared", headers=me),
        ]
    assert [a.status_code for a in answers[:3]] == [201, 200, 200]
    assert_error(answers[3], 429, "rate_limit_exceeded")
