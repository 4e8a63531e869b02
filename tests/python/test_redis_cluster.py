"""Relay on a Redis Cluster (issue 14): a 3-master cluster of throwaway ``redis-server``s, clients
given one node's URL and ``redis_cluster``. The Python side — the context window cache, message
notifications, the gateway's tokens-per-minute counters, exact cache and coalescing, the handoff
channels' fan-out — across keys that land on every node, then two ``relay serve`` processes on
PostgreSQL and the cluster sharing it all."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from engine_support import drop_pg_schema, unique_name
from fake_upstream import FakeUpstream, serve_in_thread
from gateway_support import UPSTREAM_KEY, jwt_for
from redis_support import ThrowawayRedisCluster
from relay_context.config.settings import Settings
from relay_context.gateway.token_rate import TokensPerMinute
from relay_context.handoff.fanout import Fanout
from relay_context.handoff.models import ChannelEvent
from relay_context.persistence.redis import hash_tag, redis_client, redis_client_for
from service_support import Server, run_server, service_env


def keys_per_node(cluster: ThrowawayRedisCluster, prefix: str) -> dict[int, int]:
    counts = {}
    for port in cluster.ports:
        node = redis.Redis(host="127.0.0.1", port=port)
        counts[port] = sum(1 for _ in node.scan_iter(match=prefix + "*", count=1000))
    return counts


# --- the clients ---------------------------------------------------------------------------


def test_hash_tags_put_a_keys_parts_on_one_slot(redis_cluster: ThrowawayRedisCluster) -> None:
    node = redis.Redis(host="127.0.0.1", port=redis_cluster.ports[0])
    parts = ["user-1", "a{b}c", "a%7Bb%7Dc", "}{", "{", "", "%", "ключ", "x" * 300]
    assert len({hash_tag(p) for p in parts}) == len(parts)  # one tag per part
    for part in parts:
        tag = hash_tag(part)
        assert tag.count("{") == 1
        assert tag.endswith("}")
        assert tag.index("}") == len(tag) - 1
        slots = {node.cluster("KEYSLOT", f"relay:gw:tpm:{tag}:{bucket}") for bucket in range(20)}
        assert len(slots) == 1, part
    # Different parts spread over the slots (and so over the nodes).
    slots = {node.cluster("KEYSLOT", f"p:{hash_tag(f'key-{i}')}:1") for i in range(200)}
    assert len(slots) > 150


def test_the_cluster_client_reaches_every_node_from_one_url(
    redis_cluster: ThrowawayRedisCluster,
) -> None:
    async def scenario() -> None:
        client = redis_client(redis_cluster.url, cluster=True, connect_timeout=1, socket_timeout=1)
        try:
            for i in range(60):
                await client.set(f"spread:{i}", i)
            assert [int(v) for v in [await client.get(f"spread:{i}") for i in range(60)]] == list(
                range(60)
            )
        finally:
            await client.aclose()

    asyncio.run(scenario())
    assert all(n > 0 for n in keys_per_node(redis_cluster, "spread:").values())


def test_tokens_per_minute_on_the_cluster(redis_cluster: ThrowawayRedisCluster) -> None:
    """Both buckets of a key are read with one MGET: without the hash tag a cluster refuses it
    (CROSSSLOT) for most keys."""

    async def scenario() -> None:
        client = redis_client(redis_cluster.url, cluster=True)
        other = redis_client(redis_cluster.url, cluster=True)  # a second replica
        try:
            now = [600.0 * 60]
            a = TokensPerMinute(100, client, "tpm-c:", clock=lambda: now[0])
            b = TokensPerMinute(100, other, "tpm-c:", clock=lambda: now[0])
            for i in range(30):
                assert (await a.check(f"key-{i}", 60))[0]
                allowed, wait, used = await b.check(f"key-{i}", 60)
                assert (allowed, used) == (False, 60), i  # the other replica saw the charge
                assert wait >= 1
                assert (await b.check(f"key-{i}", 40))[0]
            now[0] += 60  # next bucket: the previous one still weighs in fully at its start
            assert (await a.check("key-0", 1))[2] == 100
        finally:
            await client.aclose()
            await other.aclose()

    asyncio.run(scenario())
    assert all(n > 0 for n in keys_per_node(redis_cluster, "tpm-c:").values())


def test_message_notifications_and_channels_cross_the_cluster(
    redis_cluster: ThrowawayRedisCluster,
) -> None:
    """PUBLISH on one node reaches a subscriber on another: the engine's message bus and the
    handoff fan-out of two "processes" (two clients, each subscribed on a random node)."""

    async def scenario() -> None:
        first = redis_client(redis_cluster.url, cluster=True)
        second = redis_client(redis_cluster.url, cluster=True)
        await first.ping()
        await second.ping()
        sender = Fanout(queue_events=100, redis=first, prefix="fan-c:")
        receivers = [Fanout(queue_events=100, redis=second, prefix="fan-c:") for _ in range(6)]
        try:
            for fanout in [sender, *receivers]:
                await fanout.open()
            subscribers = [r.add("ch") for r in receivers]
            # In publication order: one channel's messages all leave from one node.
            for seq in range(1, 31):
                await sender.publish(ChannelEvent(channel="ch", seq=seq, ts=0, message=seq))
            for subscriber in subscribers:
                got = [await asyncio.wait_for(subscriber.queue.get(), 5) for _ in range(30)]
                assert [e.seq for e in got if e is not None] == list(range(1, 31))

            # The engine's bus: a listener's pubsub on the cluster wakes on another's publish.
            pubsub = second.pubsub()
            await pubsub.subscribe("bus-c:events:s1")
            await first.publish("bus-c:events:s1", "7")
            message = None
            for _ in range(50):
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.1)
                if message is not None:
                    break
            assert message is not None
            assert message["data"] == b"7"
            await pubsub.aclose()
        finally:
            for fanout in [sender, *receivers]:
                await fanout.close()
            await first.aclose()
            await second.aclose()

    asyncio.run(scenario())


def test_the_settings_client_is_a_cluster_client(
    redis_cluster: ThrowawayRedisCluster, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path, redis_url=redis_cluster.url, redis_cluster=True)  # type: ignore[call-arg]

    async def scenario() -> None:
        client = redis_client_for(settings)
        try:
            assert isinstance(client, redis.asyncio.RedisCluster)
            assert await client.ping()
        finally:
            await client.aclose()

    asyncio.run(scenario())


# --- two relay serve processes -------------------------------------------------------------


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[FakeUpstream, str]]:
    upstream = FakeUpstream(required_key=UPSTREAM_KEY)
    with serve_in_thread(upstream) as url:
        yield upstream, url


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory,
    redis_cluster: ThrowawayRedisCluster,
    pg_dsn: str,
    fake: tuple[FakeUpstream, str],
) -> Iterator[tuple[Server, Server]]:
    tmp = tmp_path_factory.mktemp("cluster-replicas")
    schema = unique_name("cluster")
    env = service_env(
        tmp / "data",
        DATABASE_URL=pg_dsn.replace("postgresql://", "postgresql+asyncpg://"),
        DATABASE_SCHEMA=schema,
        REDIS_URL=redis_cluster.url,
        REDIS_CLUSTER="true",
        REDIS_KEY_PREFIX="rc:",
        HANDOFF_AUTH="open",
        RATE_LIMIT_REQUESTS="100000",
        OPENAI_BASE_URL=fake[1] + "/v1",
        OPENAI_API_KEY=UPSTREAM_KEY,
        GATEWAY__CACHE__ENABLED="true",
    )
    try:
        with (
            run_server(env, tmp / "a") as a,
            run_server({**env, "DATA_DIR": str(tmp / "data-b")}, tmp / "b") as b,
        ):
            yield a, b
    finally:
        drop_pg_schema(pg_dsn, schema)


def chat(server: Server, content: str, token: str, *, stream: bool) -> httpx.Response:
    body: dict[str, Any] = {
        "model": "gpt-4o",
        "stream": stream,
        "messages": [{"role": "user", "content": content}],
    }
    headers = {"authorization": f"Bearer {token}"}
    with httpx.stream(
        "POST", server.url + "/v1/chat/completions", json=body, headers=headers, timeout=60
    ) as response:
        response.read()
        return response


def test_replicas_share_health_cache_and_coalescing(
    replicas: tuple[Server, Server], fake: tuple[FakeUpstream, str]
) -> None:
    a, b = replicas
    upstream = fake[0]
    for server in replicas:
        health = server.client.get("/health").json()
        assert health["checks"]["redis"]["status"] == "healthy", health
    token = jwt_for("cluster-user")

    # Exact cache: a miss on A is a hit on B (the entry lives on the cluster).
    for i in range(6):  # entries on several nodes
        first = chat(a, f"cluster cache {i} fake:words=5", token, stream=False)
        assert first.status_code == 200
        assert first.headers["x-relay-cache"] == "miss"
        again = chat(b, f"cluster cache {i} fake:words=5", token, stream=False)
        assert again.headers["x-relay-cache"] == "hit", i
        assert again.json()["choices"] == first.json()["choices"]

    # Coalescing: 20 identical streams split over both replicas make one upstream call.
    content = "cluster-coalesce fake:latency_ms=600 fake:chunk_delay_ms=20 fake:words=30"
    barrier = threading.Barrier(20)

    def ask(i: int) -> httpx.Response:
        barrier.wait()
        return chat((a, b)[i % 2], content, token, stream=True)

    with ThreadPoolExecutor(20) as pool:
        out = list(pool.map(ask, range(20)))
    assert sum(b"cluster-coalesce" in r.body for r in upstream.requests) == 1
    assert len({r.content for r in out}) == 1
    assert next(iter(out)).content.count(b"data: ") == 30 + 3
    assert [r.headers["x-relay-cache"] for r in out].count("coalesced") == 19


def test_replicas_share_context_and_channels(
    replicas: tuple[Server, Server], redis_cluster: ThrowawayRedisCluster
) -> None:
    from context_service_support import bearer
    from relay_context.handoff_client import HandoffClient

    a, b = replicas
    auth = bearer("cluster-ctx", "user")
    for i in range(20):
        session = f"cl-{i % 5}"
        posted = a.client.post(
            "/api/v1/context/messages",
            json={"session_id": session, "role": "user", "content": f"message {i}"},
            headers=auth,
        )
        assert posted.status_code in (200, 201), posted.text
    for i in range(5):
        window = b.client.get(f"/api/v1/context/cl-{i}", headers=auth)
        assert window.status_code == 200, window.text
        assert [m["content"] for m in window.json()["messages"]] == [
            f"message {j}" for j in range(i, 20, 5)
        ]
        again = b.client.get(f"/api/v1/context/cl-{i}", headers=auth)  # the cached window
        assert again.json()["messages"] == window.json()["messages"]

    on_a, on_b = HandoffClient(a.url), HandoffClient(b.url)
    with on_b.subscription("cluster-ch") as events:
        iterator = iter(events)
        on_a.publish("cluster-ch", "one")
        on_a.push("a payload", channel="cluster-ch")
        got = [next(iterator) for _ in range(2)]
    assert got[0].message == "one"
    assert got[1].seq == 2
    # Relay's keys really are spread over the cluster.
    assert all(n > 0 for n in keys_per_node(redis_cluster, "rc:").values())
