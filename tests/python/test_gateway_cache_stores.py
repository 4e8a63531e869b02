"""The exact cache's stores: the in-process LRU's byte bound, SQLite on disk sealed with
AES-256-GCM (a copied file is unreadable without the key; keys rotate), and Redis shared by
replicas, killed mid-run and frozen, with requests answered at once per the outage policy."""

from __future__ import annotations

import asyncio
import base64
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
import redis
from prometheus_client import CollectorRegistry

from gateway_support import GatewayRig, running_gateway
from redis_support import ThrowawayRedis
from relay_context.config.gateway_cache import CacheConfig
from relay_context.gateway.cache.entry import CachedAnswer, decode_answer, encode_answer
from relay_context.gateway.cache.exact_cache import ExactCache
from relay_context.gateway.cache.metrics import CacheMetrics
from relay_context.gateway.cache.sealing import Sealer
from relay_context.gateway.cache.store import MemoryStore
from relay_context.gateway.schema import Usage
from relay_context.security.auth import Principal, UserRole


def aes_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def answer(text: str = "hello") -> CachedAnswer:
    return CachedAnswer(
        family="openai",
        kind="whole",
        model="gpt-4o",
        upstream_model="gpt-4o",
        provider="openai",
        deployment="openai/gpt-4o",
        usage=Usage(3, 4, 1, 0),
        cost_usd=0.001,
        expires_at=time.time() + 60,
        body=text.encode(),
    )


async def test_memory_store_is_an_lru_bounded_by_bytes() -> None:
    store = MemoryStore(max_bytes=1000)
    for n in range(10):
        await store.put(f"k{n}", b"x" * 300, 60)
    assert store.bytes <= 1000
    assert len(store) == 3
    assert await store.get("k0") is None
    assert await store.get("k7") is not None  # now the most recent
    await store.put("k10", b"y" * 300, 60)
    assert await store.get("k7") is not None
    assert await store.get("k8") is None  # the least recent went
    await store.put("big", b"z" * 2000, 60)  # larger than the whole store: not kept
    assert await store.get("big") is None
    await store.put("short", b"s", 0.01)
    await asyncio.sleep(0.02)
    assert await store.get("short") is None


def test_sealer_binds_the_entry_id_and_rotates_keys() -> None:
    old, new = os.urandom(32), os.urandom(32)
    sealed = Sealer([old], max_entry_bytes=1 << 20).seal("id-1", b"secret answer " * 50)
    assert b"secret" not in sealed
    rotated = Sealer([new, old], max_entry_bytes=1 << 20)
    assert rotated.open("id-1", sealed) == b"secret answer " * 50  # old entries still open
    assert rotated.open("id-2", sealed) is None  # moved to another id: refused
    assert Sealer([new], max_entry_bytes=1 << 20).open("id-1", sealed) is None
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    assert rotated.open("id-1", tampered) is None
    resealed = rotated.seal("id-1", b"x")
    assert Sealer([old], max_entry_bytes=1 << 20).open("id-1", resealed) is None  # newest seals


def test_entry_round_trip_and_damage() -> None:
    a = answer()
    a.kind, a.events, a.body = "stream", [b"data: 1\n\n", b"data: [DONE]\n\n"], b""
    back = decode_answer(encode_answer(a))
    assert back == a
    assert decode_answer(b"garbage") is None
    assert decode_answer(encode_answer(a)[:-3]) is None


def test_persist_needs_a_key() -> None:
    with pytest.raises(ValueError, match="encryption_keys"):
        CacheConfig(enabled=True, persist=True)
    with pytest.raises(ValueError, match="32"):
        CacheConfig(encryption_keys=[base64.b64encode(b"short").decode()])


@pytest.fixture
def persisted(tmp_path: Path) -> Iterator[tuple[GatewayRig, Path, str]]:
    key = aes_key()
    path = tmp_path / "cache.sqlite3"
    cache = {
        "enabled": True,
        "persist": True,
        "path": str(path),
        "encryption_keys": [key],
        "scope": "global",
    }
    with running_gateway(tmp_path / "a", cache=cache) as rig:
        yield rig, path, key


def test_sqlite_file_reveals_nothing_without_the_key(
    persisted: tuple[GatewayRig, Path, str], tmp_path: Path
) -> None:
    rig, path, key = persisted
    prompt = f"the launch code is {time.monotonic_ns()}"
    client = anthropic.Anthropic(base_url=rig.url, api_key=rig.key, max_retries=0)
    params: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": prompt + " fake:text=Zanzibar"}],
    }
    first = client.messages.with_raw_response.create(**params)
    assert first.headers["x-relay-cache"] == "miss"
    text = first.parse().content[0].text
    assert "Zanzibar" in text
    for _ in range(100):
        second = client.messages.with_raw_response.create(**params)
        if second.headers["x-relay-cache"] == "hit":
            break
        time.sleep(0.02)
    assert second.headers["x-relay-cache"] == "hit"
    assert second.parse().model_dump() == first.parse().model_dump()
    # A copy of the file (and its WAL): neither the prompt nor the answer is in it.
    raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    assert b"Zanzibar" not in raw
    assert b"launch code" not in raw
    copy = tmp_path / "copy.sqlite3"
    source = sqlite3.connect(path)
    target = sqlite3.connect(copy)
    source.backup(target)
    source.close()
    rows = target.execute("SELECT id, value FROM relay_gateway_cache").fetchall()
    target.close()
    assert len(rows) == 1
    entry_id, sealed = rows[0]
    assert entry_id == first.headers["x-relay-cache-key"]
    assert Sealer([os.urandom(32)], max_entry_bytes=1 << 22).open(entry_id, sealed) is None
    opened = Sealer([base64.b64decode(key)], max_entry_bytes=1 << 22).open(entry_id, sealed)
    assert opened is not None
    decoded = decode_answer(opened)
    assert decoded is not None
    assert b"Zanzibar" in decoded.body


def test_sqlite_entries_survive_a_restart_with_rotated_keys(tmp_path: Path) -> None:
    old, new = aes_key(), aes_key()
    path = tmp_path / "cache.sqlite3"
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "persist me"}]}

    def cache(keys: list[str]) -> dict[str, Any]:
        return {
            "enabled": True,
            "persist": True,
            "path": str(path),
            "encryption_keys": keys,
            "scope": "global",
        }

    with running_gateway(tmp_path / "a", cache=cache([old])) as rig:
        assert rig.post("/v1/chat/completions", body).headers["x-relay-cache"] == "miss"
        time.sleep(0.1)
    with running_gateway(tmp_path / "b", cache=cache([new, old])) as rig:
        calls = len(rig.upstream.requests)
        again = rig.post("/v1/chat/completions", body)
        assert again.headers["x-relay-cache"] == "hit"  # sealed with the old key, opened
        assert len(rig.upstream.requests) == calls
    with running_gateway(tmp_path / "c", cache=cache([aes_key()])) as rig:
        # Without the key that sealed it, the entry is no entry.
        assert rig.post("/v1/chat/completions", body).headers["x-relay-cache"] == "miss"


@pytest.fixture
def throwaway() -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis()
    try:
        yield server
    finally:
        server.stop()


def test_redis_store_shared_then_killed_mid_run(throwaway: ThrowawayRedis, tmp_path: Path) -> None:
    prefix = f"relay-test-cache-{os.getpid()}-{time.monotonic_ns()}:"
    cache = {
        "enabled": True,
        "scope": "global",
        "redis_connect_timeout_seconds": 0.2,
        "redis_socket_timeout_seconds": 0.2,
        "redis_retry_seconds": 0.5,
    }
    settings = {"redis_url": throwaway.url, "redis_key_prefix": prefix}
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "shared"}]}
    with (
        running_gateway(tmp_path / "a", cache=cache, relay_settings=settings) as a,
        running_gateway(tmp_path / "b", cache=cache, relay_settings=settings) as b,
    ):
        first = a.post("/v1/chat/completions", body)
        assert first.headers["x-relay-cache"] == "miss"
        stored = redis.Redis.from_url(throwaway.url)
        for _ in range(100):
            if stored.exists(f"{prefix}gw:cache:{first.headers['x-relay-cache-key']}"):
                break
            time.sleep(0.02)
        # The other replica answers from the entry replica A stored.
        client = openai.OpenAI(base_url=b.v1, api_key=b.key, max_retries=0)
        hit = client.chat.completions.with_raw_response.create(**body)
        assert hit.headers["x-relay-cache"] == "hit"
        assert len(b.upstream.requests) == 0
        assert (
            hit.parse().choices[0].message.content
            == first.json()["choices"][0]["message"]["content"]
        )
        throwaway.stop()  # Redis dies mid-run
        answers = [b.post("/v1/chat/completions", body) for _ in range(5)]
        assert [r.status_code for r in answers] == [200] * 5
        assert {r.headers["x-relay-cache"] for r in answers} == {"bypass"}
        assert len(b.upstream.requests) == 5
        metrics = httpx.get(b.url + "/metrics").text
        assert 'relay_cache_store_errors_total{store="redis"}' in metrics
        throwaway.start()  # back (empty): after the retry pause the cache is used again
        time.sleep(0.6)
        assert b.post("/v1/chat/completions", body).headers["x-relay-cache"] == "miss"
        for _ in range(100):
            if b.post("/v1/chat/completions", body).headers["x-relay-cache"] == "hit":
                break
            time.sleep(0.02)
        else:
            pytest.fail("the cache did not come back with Redis")


def test_frozen_redis_costs_at_most_its_timeouts_then_memory_fallback(
    throwaway: ThrowawayRedis,
) -> None:
    """A Redis that accepts connections and never answers (SIGSTOP): the lookup gives up after
    its socket timeout; with ``redis_outage: memory`` the in-process store takes over."""
    config = CacheConfig(
        enabled=True,
        redis_connect_timeout_seconds=0.1,
        redis_socket_timeout_seconds=0.1,
        redis_outage="memory",
        redis_retry_seconds=60,
    )
    cache = ExactCache(
        config,
        metrics=CacheMetrics(CollectorRegistry()),
        redis_url=throwaway.url,
        redis_key_prefix=f"relay-test-{time.monotonic_ns()}:",
    )
    principal = Principal("alice", UserRole.USER, "api_key", key_id="k1")

    def ticket() -> Any:
        return cache.ticket(
            principal=principal,
            family="openai",
            model="gpt-4o",
            upstream_model="openai/gpt-4o",
            body={"messages": [{"role": "user", "content": "frozen"}]},
            headers={},
        )

    async def run() -> None:
        assert cache.store is not None
        assert cache.store.name == "redis"
        t = ticket()
        assert await cache.lookup(t) is None
        throwaway.freeze()
        started = time.monotonic()
        t = ticket()
        assert await cache.lookup(t) is None
        assert time.monotonic() - started < 2.0  # bounded by the timeouts, not hung
        t = ticket()
        assert await cache.save(t, answer("from memory"))  # in the fallback store
        found = await cache.lookup(ticket())
        assert found is not None
        assert found.body == b"from memory"
        throwaway.thaw()
        await cache.close()

    asyncio.run(run())
