"""The Redis limiter on a real 3-master Redis Cluster of throwaway ``redis-server``s
(``redis_cluster`` fixture): limits hold exactly for keys on every node from a client given one
node's URL, across limiter instances and processes, in batches spread over the nodes, while a
slot migrates (ASK, then MOVED), and a killed node degrades only its keys until it is back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from redis_support import ThrowawayRedisCluster
from relay_context.security.rate_limiter import (
    RateLimiter,
    SlidingWindowRateLimiter,
    TokenBucketRateLimiter,
)

# Keys that need the escaping of the hash tag: braces and '%' inside user keys, and "".
AWKWARD_KEYS = ["a}b", "{x}", "}{", "%7D", "tenant{1}:user", ""]
ALGORITHM_TAGS = {"sliding_log": "log", "sliding_counter": "ctr", "token_bucket": "tb"}


@pytest.fixture
def prefix() -> str:
    return f"relay:test:cl:{uuid.uuid4().hex[:12]}:"


def redis_name(prefix: str, key: str, algorithm: str = "sliding_log") -> str:
    """The Redis key the limiter stores ``key`` under (docs/ratelimit.md, "Key layout")."""
    tag = key.replace("%", "%25").replace("{", "%7B").replace("}", "%7D") if key else "%"
    return f"{prefix}{ALGORITHM_TAGS[algorithm]}:{{{tag}}}"


def keys_per_node(
    cluster: ThrowawayRedisCluster, prefix: str, per_node: int, algorithm: str = "sliding_log"
) -> dict[int, list[str]]:
    """``per_node`` user keys whose Redis keys each node serves."""
    found: dict[int, list[str]] = {port: [] for port in cluster.ports}
    i = 0
    while any(len(keys) < per_node for keys in found.values()):
        key = f"user-{i}"
        i += 1
        port = cluster.node_of(redis_name(prefix, key, algorithm))
        if len(found[port]) < per_node:
            found[port].append(key)
    return found


def make_limiter(
    url: str, prefix: str, algorithm: str = "sliding_log", limit: int = 5, **kwargs: Any
) -> RateLimiter:
    if algorithm == "token_bucket":
        # A refill of one token per 1000 s: within a test the burst is the limit.
        return TokenBucketRateLimiter(
            url, requests_per_second=0.001, burst=limit, key_prefix=prefix, **kwargs
        )
    return SlidingWindowRateLimiter(
        url,
        requests=limit,
        window_seconds=600,
        algorithm=algorithm,  # type: ignore[arg-type]
        key_prefix=prefix,
        **kwargs,
    )


def node_client(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)


@pytest.mark.parametrize("algorithm", ["sliding_log", "sliding_counter", "token_bucket"])
def test_limits_hold_exactly_on_every_node_from_one_url(
    redis_cluster: ThrowawayRedisCluster, prefix: str, algorithm: str
) -> None:
    limiter = make_limiter(redis_cluster.url, prefix, algorithm, limit=5)
    spread = keys_per_node(redis_cluster, prefix, 2, algorithm)
    keys = [k for ks in spread.values() for k in ks] + AWKWARD_KEYS
    for key in keys:
        outcomes = [limiter.is_allowed_sync(key) for _ in range(8)]
        assert [allowed for allowed, _ in outcomes] == [True] * 5 + [False] * 3, key
        assert {info["source"] for _, info in outcomes} == {"redis"}
        assert [info["remaining"] for _, info in outcomes[:5]] == [4, 3, 2, 1, 0]
    # Each key's state lives on the node that serves its slot, under the documented name.
    for port, node_keys in spread.items():
        for key in node_keys:
            assert node_client(port).exists(redis_name(prefix, key, algorithm)) == 1
    for key in AWKWARD_KEYS:
        name = redis_name(prefix, key, algorithm)
        assert node_client(redis_cluster.node_of(name)).exists(name) == 1
    stats = limiter.cluster_stats()
    assert stats["cluster"] is True
    assert stats["nodes"] == 3
    assert stats["slot_refreshes"] >= 1
    # The map was learned once: afterwards commands went straight to the right node.
    assert stats["moved"] == 1
    assert limiter.redis_available is True


def test_awkward_keys_do_not_share_state(redis_cluster: ThrowawayRedisCluster, prefix: str) -> None:
    # "a}b" and "a%7Db" would collide under a naive escaping; each has its own quota.
    limiter = make_limiter(redis_cluster.url, prefix, limit=2)
    for key in ["a}b", "a%7Db", "a{b", "a%7Bb", "%", ""]:
        assert [limiter.is_allowed_sync(key)[0] for _ in range(3)] == [True, True, False], key


CHILD = """
import json, sys
from relay_context.security.rate_limiter import SlidingWindowRateLimiter
url, prefix, keys, rounds = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4])
limiter = SlidingWindowRateLimiter(url, requests=7, window_seconds=600, key_prefix=prefix)
admitted = {k: 0 for k in keys}
sources = set()
for _ in range(rounds):
    for key in keys:
        allowed, info = limiter.is_allowed_sync(key)
        admitted[key] += allowed
        sources.add(info["source"])
print(json.dumps({"admitted": admitted, "sources": sorted(sources)}))
"""


def test_instances_and_processes_share_the_limits(
    redis_cluster: ThrowawayRedisCluster, prefix: str
) -> None:
    spread = keys_per_node(redis_cluster, prefix, 2)
    keys = [k for ks in spread.values() for k in ks]
    # Each client knows a different node only; a child process runs a third limiter.
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CHILD,
            f"redis://127.0.0.1:{redis_cluster.ports[2]}/0",
            prefix,
            json.dumps(keys),
            "6",
        ],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    first = make_limiter(redis_cluster.url, prefix, limit=7)
    second = make_limiter(f"redis://127.0.0.1:{redis_cluster.ports[1]}/0", prefix, limit=7)
    admitted = dict.fromkeys(keys, 0)
    for _ in range(6):
        for key in keys:
            admitted[key] += first.is_allowed_sync(key)[0]
            admitted[key] += second.is_allowed_sync(key)[0]
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0
    report = json.loads(out)
    assert report["sources"] == ["redis"]
    for key in keys:
        # 18 requests per key from three clients: exactly the limit admitted in total.
        assert admitted[key] + report["admitted"][key] == 7, key
        name = redis_name(prefix, key)
        assert node_client(redis_cluster.node_of(name)).zcard(name) == 7


def test_batches_spread_over_nodes_match_single_calls(
    redis_cluster: ThrowawayRedisCluster, prefix: str
) -> None:
    spread = keys_per_node(redis_cluster, prefix, 3)
    keys = [k for ks in spread.values() for k in ks] + AWKWARD_KEYS
    batch = [k for _ in range(7) for k in keys]  # each key 7 times, interleaved
    limiter = make_limiter(redis_cluster.url, prefix, limit=4)
    first = limiter.is_allowed_batch_sync(batch)
    assert first.source == "redis"
    assert first.sources == []
    for i, key in enumerate(batch):
        assert first.allowed[i] == (batch[: i + 1].count(key) <= 4), (i, key)
    assert first.admitted == 4 * len(keys)
    # A fresh instance that has not learned the map yet: its first batch is redirected.
    again = make_limiter(f"redis://127.0.0.1:{redis_cluster.ports[1]}/0", prefix, limit=4)
    assert again.is_allowed_batch_sync(keys).admitted == 0
    assert again.cluster_stats()["moved"] >= 1
    # Single calls on a third prefix agree entry by entry with the batch.
    single = make_limiter(redis_cluster.url, prefix + "single:", limit=4)
    assert [single.is_allowed_sync(k)[0] for k in batch] == first.allowed


def node_id(port: int) -> str:
    return str(node_client(port).execute_command("CLUSTER MYID").decode())


def test_a_slot_migrated_mid_run_keeps_decisions_exact(
    redis_cluster: ThrowawayRedisCluster, prefix: str
) -> None:
    limiter = make_limiter(redis_cluster.url, prefix, limit=10)
    batcher = make_limiter(redis_cluster.url, prefix, limit=10)
    key = keys_per_node(redis_cluster, prefix, 1)[redis_cluster.ports[1]][0]
    zkey = redis_name(prefix, key)
    source_port = redis_cluster.node_of(zkey)
    target_port = next(p for p in redis_cluster.ports if p != source_port)
    src, dst = node_client(source_port), node_client(target_port)
    slot = int(src.execute_command("CLUSTER KEYSLOT", zkey))
    admitted = sum(limiter.is_allowed_sync(key)[0] for _ in range(3))
    before = limiter.cluster_stats()

    dst.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", node_id(source_port))
    src.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", node_id(target_port))
    # Migrating, keys still on the source: the source answers.
    admitted += sum(limiter.is_allowed_sync(key)[0] for _ in range(2))
    src.execute_command(
        "MIGRATE", "127.0.0.1", target_port, "", 0, 5000, "KEYS", zkey, zkey + ":seq"
    )
    assert dst.execute_command("ASKING")
    assert dst.zcard(zkey) == 5
    # Keys moved, slot not yet reassigned: the source answers ASK, the target decides.
    admitted += sum(limiter.is_allowed_sync(key)[0] for _ in range(2))
    admitted += batcher.is_allowed_batch_sync([key, key]).admitted
    mid = limiter.cluster_stats()
    assert mid["ask"] >= before["ask"] + 2
    assert mid["moved"] == before["moved"]  # ASK does not change the map

    for port in redis_cluster.ports:
        node_client(port).execute_command("CLUSTER SETSLOT", slot, "NODE", node_id(target_port))
    redis_cluster.wait_until_ok()
    # Reassigned: the old owner answers MOVED once, then the client goes to the new owner.
    outcomes = [limiter.is_allowed_sync(key) for _ in range(4)]
    admitted += sum(allowed for allowed, _ in outcomes)
    after = limiter.cluster_stats()
    assert after["moved"] == mid["moved"] + 1
    assert {info["source"] for _, info in outcomes} == {"redis"}
    # 3 + 2 + 2 + 2 + 4 = 13 requests, limit 10: exactly 10 admitted, all recorded on the target.
    assert admitted == 10
    assert [allowed for allowed, _ in outcomes] == [True, False, False, False]
    assert dst.zcard(zkey) == 10
    assert src.execute_command("CLUSTER COUNTKEYSINSLOT", slot) == 0


@pytest.fixture
def partial_coverage(redis_cluster: ThrowawayRedisCluster) -> Iterator[ThrowawayRedisCluster]:
    """The cluster keeps serving the slots of live nodes while one is down (Redis's default is
    to refuse every command, CLUSTERDOWN, once a node has been down for the node timeout)."""
    for port in redis_cluster.ports:
        node_client(port).config_set("cluster-require-full-coverage", "no")
    yield redis_cluster
    for port in redis_cluster.ports:
        if port not in redis_cluster.procs:
            redis_cluster.start_node(port)
    redis_cluster.wait_until_ok()


def test_a_killed_node_degrades_only_its_keys_and_recovers(
    partial_coverage: ThrowawayRedisCluster, prefix: str
) -> None:
    cluster = partial_coverage
    victim = cluster.ports[2]
    spread = keys_per_node(cluster, prefix, 1)
    victim_key = spread[victim][0]
    other_keys = [spread[p][0] for p in cluster.ports if p != victim]
    options: dict[str, Any] = {
        "connect_timeout": 0.3,
        "command_timeout": 0.3,
        "retry_backoff": 0.05,
        "retry_backoff_max": 0.2,
    }
    fallback = make_limiter(cluster.url, prefix, limit=3, **options)
    closed = make_limiter(
        cluster.url, prefix + "closed:", limit=3, on_redis_error="closed", **options
    )
    for key in [victim_key, *other_keys]:
        assert fallback.is_allowed_sync(key)[1]["source"] == "redis"
        assert closed.is_allowed_sync(key)[1]["source"] == "redis"

    proc = cluster.procs.pop(victim)
    proc.kill()
    proc.wait()
    started = time.monotonic()
    allowed, info = fallback.is_allowed_sync(victim_key)
    assert info["source"] == "fallback"
    assert allowed
    allowed, info = closed.is_allowed_sync(victim_key)
    assert info["source"] == "policy"
    assert not allowed
    assert info["retry_after"] > 0
    assert time.monotonic() - started < 2.0  # well within connect + command timeouts
    assert fallback.redis_available is False
    # The other nodes still decide their keys, also inside one batch with the victim's key.
    for key in other_keys:
        assert fallback.is_allowed_sync(key)[1]["source"] == "redis"
    batch = fallback.is_allowed_batch_sync([victim_key, *other_keys])
    assert batch.source == "fallback"
    assert list(batch.sources) == ["fallback", "redis", "redis"]
    assert [batch[i][1]["source"] for i in range(3)] == ["fallback", "redis", "redis"]
    assert "127.0.0.1:" + str(victim) in (fallback.last_redis_error or "")
    for _ in range(20):  # retries under backoff never hang
        fallback.is_allowed_sync(victim_key)
    assert time.monotonic() - started < 5.0

    cluster.start_node(victim)
    cluster.wait_until_ok()
    deadline = time.monotonic() + 10
    source = "fallback"
    while source != "redis" and time.monotonic() < deadline:
        time.sleep(0.05)
        source = closed.is_allowed_sync(victim_key)[1]["source"]
    assert source == "redis"
    # The restarted node kept no data (no persistence): its keys start afresh in Redis.
    name = redis_name(prefix + "closed:", victim_key)
    assert node_client(victim).zcard(name) == 1
    assert [fallback.is_allowed_sync(victim_key)[1]["source"] for _ in range(2)] == ["redis"] * 2
    assert fallback.redis_available is True


def test_standalone_redis_never_enters_cluster_mode(prefix: str) -> None:
    limiter = make_limiter("redis://127.0.0.1:6379/0", prefix, limit=2)
    assert [limiter.is_allowed_sync("k")[0] for _ in range(3)] == [True, True, False]
    assert limiter.cluster_stats() == {
        "cluster": False,
        "nodes": 1,
        "moved": 0,
        "ask": 0,
        "tryagain": 0,
        "slot_refreshes": 0,
    }


def test_script_flushed_on_every_node_is_loaded_again_where_needed(
    redis_cluster: ThrowawayRedisCluster, prefix: str
) -> None:
    limiter = make_limiter(redis_cluster.url, prefix, limit=3)
    spread = keys_per_node(redis_cluster, prefix, 1)
    keys = [k for ks in spread.values() for k in ks]
    assert all(limiter.is_allowed_sync(k)[0] for k in keys)
    for port in redis_cluster.ports:
        node_client(port).script_flush()
    # Every node answers NOSCRIPT once; the client loads the script on that node and goes on.
    assert [limiter.is_allowed_sync(keys[0])[1]["source"]] == ["redis"]
    batch = limiter.is_allowed_batch_sync(keys + keys)
    assert batch.source == "redis"
    assert batch.allowed == [True, True, True, False, True, True]  # keys[0] had 2 already
    for port in redis_cluster.ports:  # loaded again on each node, after the flush
        assert node_client(port).info("memory")["number_of_cached_scripts"] == 1
