"""The Redis path against real servers: the shared Redis on 127.0.0.1:6379 (these tests fail,
not skip, when it is missing) and throwaway ``redis-server`` processes that a test may stop and
start again. Admissions are checked from what Redis itself recorded, not from client clocks."""

from __future__ import annotations

import multiprocessing
import signal
import time
import uuid
from typing import Any

import limits
import limits.storage
import limits.strategies
import pytest
import redis

from redis_support import ThrowawayRedis, free_port
from relay_context.errors import BackendUnavailableError, InvalidArgumentError
from relay_context.security.rate_limiter import (
    SlidingWindowRateLimiter,
    TokenBucketRateLimiter,
)

SHARED_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def shared_redis() -> redis.Redis:
    client = redis.Redis(host="127.0.0.1", port=6379, db=0, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(f"these tests need the real Redis on 127.0.0.1:6379: {exc}")
    return client


@pytest.fixture
def prefix() -> str:
    return f"relay:test:py:{uuid.uuid4().hex}:"


@pytest.fixture
def throwaway(throwaway_redis: ThrowawayRedis) -> ThrowawayRedis:
    return throwaway_redis


# --- several processes hammering one key -----------------------------------------------------


def hammer(
    url: str,
    prefix: str,
    algorithm: str,
    limit: int,
    window: float,
    duration: float,
    start: Any,
    results: Any,
) -> None:
    """One process: decides as fast as it can for `duration` seconds and reports the Redis TIME
    of each admitted request (microseconds) and of its last decision."""
    limiter: SlidingWindowRateLimiter | TokenBucketRateLimiter
    if algorithm == "token_bucket":
        limiter = TokenBucketRateLimiter(
            url, requests_per_second=limit / window, burst=limit,
            key_prefix=prefix, on_redis_error="raise",
        )  # fmt: skip
    else:
        limiter = SlidingWindowRateLimiter(
            url, requests=limit, window_seconds=window, algorithm=algorithm,  # type: ignore[arg-type]
            key_prefix=prefix, on_redis_error="raise",
        )  # fmt: skip
    start.wait()
    admitted: list[int] = []
    last = 0
    attempts = 0
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        allowed, info = limiter.is_allowed_sync("hammer")
        attempts += 1
        last = round(info["decided_at"] * 1e6)
        assert info["source"] == "redis"
        if allowed:
            admitted.append(last)
    results.put((admitted, last, attempts))


def run_hammer(algorithm: str, prefix: str, limit: int, window: float) -> tuple[list[int], int]:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=hammer,
            args=(SHARED_URL, prefix, algorithm, limit, window, 1.6, start, results),
        )
        for _ in range(4)
    ]
    for p in procs:
        p.start()
    time.sleep(0.2)
    start.set()
    collected = [results.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    admitted = sorted(t for got, _, _ in collected for t in got)
    last = max(last for _, last, _ in collected)
    attempts = sum(n for _, _, n in collected)
    assert attempts > 4 * limit  # the key was really contended
    return admitted, last


def test_processes_never_exceed_the_limit_in_any_sliding_window(
    shared_redis: redis.Redis, prefix: str
) -> None:
    limit, window = 10, 0.4
    window_us = round(window * 1e6)
    admitted, last = run_hammer("sliding_log", prefix, limit, window)
    # Every window (t - 0.4 s, t] ending at an admission holds at most `limit` admissions.
    for i, t in enumerate(admitted):
        j = i
        while j > 0 and admitted[j - 1] > t - window_us:
            j -= 1
        assert i - j + 1 <= limit, f"{i - j + 1} admissions in the window ending at {t}"
    # The windows were filled: 1.6 s of traffic is 4 windows.
    assert len(admitted) >= 2 * limit
    # Redis's own record agrees: the sequence counted every admission, and the sorted set holds
    # exactly the admissions of the last decision's window.
    zkey = f"{prefix}log:{{hammer}}"
    assert int(shared_redis.get(zkey + ":seq") or 0) == len(admitted)
    stored = sorted(int(score) for _, score in shared_redis.zrange(zkey, 0, -1, withscores=True))
    assert stored == [t for t in admitted if t > last - window_us]


def test_processes_sliding_counter_respects_every_fixed_window(
    shared_redis: redis.Redis, prefix: str
) -> None:
    limit, window_us = 10, 400_000
    admitted, _ = run_hammer("sliding_counter", prefix, limit, window_us / 1e6)
    per_window: dict[int, int] = {}
    for t in admitted:
        per_window[t // window_us] = per_window.get(t // window_us, 0) + 1
    assert max(per_window.values()) <= limit
    assert len(admitted) >= 2 * limit


def test_processes_token_bucket_never_exceeds_burst_plus_rate(
    shared_redis: redis.Redis, prefix: str
) -> None:
    burst, window = 8, 0.4  # 20 requests per second
    admitted, _ = run_hammer("token_bucket", prefix, burst, window)
    rate = burst / window
    for i in range(len(admitted)):
        for j in range(i, len(admitted)):
            span = (admitted[j] - admitted[i]) / 1e6
            assert j - i + 1 <= burst + rate * span + 1e-6
    assert len(admitted) >= burst + 10


# --- the shared server ----------------------------------------------------------------------


async def test_async_api_on_redis_with_the_documented_call(
    shared_redis: redis.Redis, prefix: str
) -> None:
    # As the product docs write it: the first argument may be a redis-py client.
    limiter = SlidingWindowRateLimiter(
        shared_redis, requests=100, window_seconds=60, key_prefix=prefix
    )
    assert limiter.backend == "redis"
    assert limiter.redis_available is True
    allowed, info = await limiter.is_allowed("user-1")
    assert allowed is True
    assert info["remaining"] == 99
    assert info["source"] == "redis"
    assert abs(info["decided_at"] - time.time()) < 5  # Redis runs on this machine
    assert info["decided_at"] + 59 < info["reset_at"] <= info["decided_at"] + 60 + 1e-6
    assert shared_redis.pttl(f"{prefix}log:{{user-1}}") > 59_000
    batch = await limiter.is_allowed_batch(["user-1"] * 120)
    assert batch.admitted == 99
    assert batch.source == "redis"
    await limiter.reset("user-1")
    assert shared_redis.exists(f"{prefix}log:{{user-1}}") == 0


def test_redis_batch_matches_single_calls(shared_redis: redis.Redis, prefix: str) -> None:
    for algorithm in ("sliding_log", "sliding_counter"):
        limiter = SlidingWindowRateLimiter(
            SHARED_URL, requests=4, window_seconds=60, algorithm=algorithm, key_prefix=prefix
        )
        keys = ["a", "b", "a", "a", "c", "a", "a", "b"]
        assert limiter.is_allowed_batch_sync(keys).allowed == [
            True, True, True, True, True, True, False, True,
        ]  # fmt: skip
    bucket = TokenBucketRateLimiter(SHARED_URL, requests_per_second=1, burst=3, key_prefix=prefix)
    assert bucket.is_allowed_batch_sync(["k"] * 5).allowed == [True, True, True, False, False]


def test_agrees_with_limits_redis_moving_window(shared_redis: redis.Redis, prefix: str) -> None:
    storage = limits.storage.RedisStorage(SHARED_URL)
    peer = limits.strategies.MovingWindowRateLimiter(storage)
    item = limits.RateLimitItemPerMinute(7)
    ours = SlidingWindowRateLimiter(SHARED_URL, requests=7, window_seconds=60, key_prefix=prefix)
    peer_results = [peer.hit(item, prefix, "k") for _ in range(12)]
    our_results = [ours.is_allowed_sync("k")[0] for _ in range(12)]
    assert our_results == peer_results == [True] * 7 + [False] * 5
    storage.reset()


def test_bad_urls_are_invalid_arguments() -> None:
    for url in ("http://localhost", "rediss://localhost", "redis://localhost:0", "redis://h:x"):
        with pytest.raises(InvalidArgumentError):
            SlidingWindowRateLimiter(url)


# --- outages ---------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["raise", "closed"])
def test_unreachable_redis_at_start_is_a_clear_error(policy: str) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(BackendUnavailableError, match=r"cannot connect to Redis at 127\.0\.0\.1"):
        SlidingWindowRateLimiter(url, on_redis_error=policy, connect_timeout=0.5)  # type: ignore[arg-type]


@pytest.mark.parametrize(("policy", "source"), [("fallback", "fallback"), ("open", "policy")])
def test_unreachable_redis_at_start_degrades(policy: str, source: str) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    limiter = SlidingWindowRateLimiter(url, requests=2, on_redis_error=policy)  # type: ignore[arg-type]
    assert limiter.redis_available is False
    assert "cannot connect" in (limiter.last_redis_error or "")
    results = [limiter.is_allowed_sync("k") for _ in range(3)]
    assert {info["source"] for _, info in results} == {source}
    expected = [True, True, False] if policy == "fallback" else [True, True, True]
    assert [allowed for allowed, _ in results] == expected


def wait_for_redis(limiter: SlidingWindowRateLimiter, key: str) -> tuple[bool, dict[str, Any]]:
    for _ in range(200):
        try:
            allowed, info = limiter.is_allowed_sync(key)
        except BackendUnavailableError:
            time.sleep(0.025)
            continue
        if info["source"] == "redis":
            return allowed, dict(info)
        time.sleep(0.025)
    pytest.fail("Redis did not take over again after it came back")


@pytest.mark.parametrize("policy", ["fallback", "open", "closed", "raise"])
async def test_redis_stopped_and_started_mid_test_follows_the_policy(
    throwaway: ThrowawayRedis, policy: str
) -> None:
    limiter = SlidingWindowRateLimiter(
        throwaway.url,
        requests=3,
        window_seconds=60,
        on_redis_error=policy,  # type: ignore[arg-type]
        retry_backoff=0.05,
        retry_backoff_max=0.2,
        command_timeout=0.5,
    )
    allowed, info = await limiter.is_allowed("k")
    assert allowed is True
    assert info["source"] == "redis"

    throwaway.stop()
    if policy == "raise":
        with pytest.raises(BackendUnavailableError):
            await limiter.is_allowed("k")
        with pytest.raises(BackendUnavailableError, match="Redis is unavailable"):
            limiter.is_allowed_batch_sync(["k", "j"])
    else:
        during = [await limiter.is_allowed("k") for _ in range(5)]
        sources = {info["source"] for _, info in during}
        admitted = [allowed for allowed, _ in during]
        if policy == "fallback":
            assert sources == {"fallback"}
            assert admitted == [True, True, True, False, False]  # limited in process
        elif policy == "open":
            assert sources == {"policy"}
            assert admitted == [True] * 5
        else:
            assert sources == {"policy"}
            assert admitted == [False] * 5
            assert all(info["retry_after"] > 0 for _, info in during)
    assert limiter.redis_available is False

    throwaway.start()  # same port, no data: Redis's count starts again
    allowed, info = wait_for_redis(limiter, "k")
    assert allowed is True
    assert info["remaining"] == 2
    assert limiter.redis_available is True
    assert limiter.is_allowed_batch_sync(["k", "k", "k"]).allowed == [True, True, False]


def test_outage_keeps_deciding_in_process_between_retries(throwaway: ThrowawayRedis) -> None:
    limiter = SlidingWindowRateLimiter(
        throwaway.url, requests=150, retry_backoff=0.2, retry_backoff_max=0.2
    )
    throwaway.stop()
    batch = limiter.is_allowed_batch_sync(["k"] * 100)
    assert batch.source == "fallback"
    single = [limiter.is_allowed_sync("k") for _ in range(100)]
    assert {info["source"] for _, info in single} == {"fallback"}
    assert batch.admitted + sum(allowed for allowed, _ in single) == 150
    assert limiter.redis_available is False
    assert "Redis" in (limiter.last_redis_error or "")


def test_a_hung_redis_times_out_into_the_policy(throwaway: ThrowawayRedis) -> None:
    limiter = SlidingWindowRateLimiter(
        throwaway.url,
        requests=5,
        command_timeout=0.2,
        retry_backoff=0.05,
        retry_backoff_max=0.1,
    )
    assert limiter.is_allowed_sync("k")[1]["source"] == "redis"
    assert throwaway.proc is not None
    throwaway.proc.send_signal(signal.SIGSTOP)  # accepts connections, never answers
    try:
        allowed, info = limiter.is_allowed_sync("k")
        assert allowed is True
        assert info["source"] == "fallback"
        assert limiter.redis_available is False
        assert "Redis connection failed" in (limiter.last_redis_error or "")
    finally:
        throwaway.proc.send_signal(signal.SIGCONT)
    assert wait_for_redis(limiter, "k")[1]["source"] == "redis"


def decide_in_child(limiter: SlidingWindowRateLimiter, results: Any) -> None:
    results.put([limiter.is_allowed_sync("forked") for _ in range(3)])


def test_a_forked_child_uses_its_own_connections(shared_redis: redis.Redis, prefix: str) -> None:
    limiter = SlidingWindowRateLimiter(SHARED_URL, requests=5, window_seconds=60, key_prefix=prefix)
    assert limiter.is_allowed_sync("forked")[0] is True  # the parent holds a pooled connection
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    child = ctx.Process(target=decide_in_child, args=(limiter, results))
    child.start()
    in_child = results.get(timeout=30)
    child.join(timeout=30)
    assert child.exitcode == 0
    assert [info["source"] for _, info in in_child] == ["redis"] * 3
    assert [info["remaining"] for _, info in in_child] == [3, 2, 1]
    # The parent's connection was not disturbed by the child.
    allowed, info = limiter.is_allowed_sync("forked")
    assert (allowed, info["remaining"], info["source"]) == (True, 0, "redis")
