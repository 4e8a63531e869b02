"""In-process rate limiting: the facade's API and errors, the kernel against a brute-force
reference and against the peer library ``limits`` (moving window, driven by a fake clock)."""

from __future__ import annotations

import asyncio
import math
from concurrent.futures import ThreadPoolExecutor

import limits
import limits.storage.memory
import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

import relay_context
from relay_context import _core
from relay_context.config.settings import Settings
from relay_context.errors import InputTypeError, InvalidArgumentError
from relay_context.security.rate_limiter import (
    BatchDecisions,
    SlidingWindowRateLimiter,
    TokenBucketRateLimiter,
    redis_url_of,
)

ALG = _core.ratelimit.Algorithm
SECOND = 1_000_000


async def test_is_allowed_returns_the_documented_info() -> None:
    limiter = SlidingWindowRateLimiter(requests=100, window_seconds=60)
    allowed, info = await limiter.is_allowed("user-1")
    assert allowed is True
    assert info["remaining"] == 99
    assert info["limit"] == 100
    assert info["retry_after"] == 0.0
    assert info["source"] == "memory"
    assert info["decided_at"] < info["reset_at"] <= info["decided_at"] + 60.0 + 1e-6
    assert set(info) == {"remaining", "reset_at", "retry_after", "limit", "source", "decided_at"}


def test_sync_twin_limits_and_says_when_to_retry() -> None:
    limiter = SlidingWindowRateLimiter(requests=3, window_seconds=30)
    results = [limiter.is_allowed_sync("k") for _ in range(5)]
    assert [allowed for allowed, _ in results] == [True, True, True, False, False]
    assert [info["remaining"] for _, info in results] == [2, 1, 0, 0, 0]
    _, denied = results[3]
    assert 29.0 < denied["retry_after"] <= 30.0
    assert limiter.is_allowed_sync("other-key")[0] is True
    limiter.reset_sync("k")
    assert limiter.is_allowed_sync("k")[0] is True


def test_batch_decides_many_keys_and_repeats_in_order() -> None:
    limiter = SlidingWindowRateLimiter(requests=2, window_seconds=60)
    batch = limiter.is_allowed_batch_sync(["a", "a", "b", "a", "c", "b", "b"])
    assert isinstance(batch, BatchDecisions)
    assert batch.allowed == [True, True, True, False, True, True, False]
    assert batch.remaining == [1, 0, 1, 0, 1, 0, 0]
    assert batch.admitted == 5
    assert len(batch) == 7
    allowed, info = batch[3]
    assert allowed is False
    assert info["limit"] == 2
    assert info["retry_after"] > 59.0
    assert [a for a, _ in batch] == batch.allowed
    # Tuples and other sequences work too; an empty batch is fine.
    assert limiter.is_allowed_batch_sync(("z",)).allowed == [True]
    assert len(limiter.is_allowed_batch_sync([])) == 0


async def test_async_batch() -> None:
    limiter = SlidingWindowRateLimiter(requests=10, window_seconds=60)
    batch = await limiter.is_allowed_batch([f"user-{i % 3}" for i in range(60)])
    assert batch.admitted == 30


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"requests": 0}, "requests must be >= 1, got 0"),
        ({"requests": -5}, "got -5"),
        ({"window_seconds": 0}, "window_seconds must be a positive number of seconds, got 0"),
        ({"window_seconds": -1.5}, "got -1.5"),
        ({"window_seconds": math.nan}, "window_seconds"),
        ({"window_seconds": math.inf}, "window_seconds"),
        ({"window_seconds": 1e-9}, "at least one microsecond"),
        ({"algorithm": "fixed_window"}, "algorithm"),
        ({"on_redis_error": "ignore"}, "on_redis_error"),
        ({"max_keys": 0}, "max_keys"),
        ({"requests": 20_000_000}, "at most 10000000"),
        ({"requests": 10**30}, "at most 1,000,000,000"),
    ],
)
def test_bad_settings_raise_invalid_argument(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        SlidingWindowRateLimiter(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"requests_per_second": 0}, "requests_per_second"),
        ({"requests_per_second": -1.0}, "requests_per_second"),
        ({"burst": 0}, "burst must be >= 1, got 0"),
        ({"burst": -3}, "burst"),
    ],
)
def test_bad_bucket_settings_raise_invalid_argument(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidArgumentError, match=message):
        TokenBucketRateLimiter(**kwargs)  # type: ignore[arg-type]


def test_wrong_types_raise_input_type_error() -> None:
    with pytest.raises(InputTypeError):
        SlidingWindowRateLimiter(requests="100")  # type: ignore[arg-type]
    with pytest.raises(InputTypeError):
        SlidingWindowRateLimiter(requests=True)  # type: ignore[arg-type]
    with pytest.raises(InputTypeError):
        SlidingWindowRateLimiter(window_seconds="60")  # type: ignore[arg-type]
    with pytest.raises(InputTypeError):
        SlidingWindowRateLimiter(12345)  # type: ignore[arg-type]
    limiter = SlidingWindowRateLimiter()
    with pytest.raises(InputTypeError):
        limiter.is_allowed_sync(b"user")  # type: ignore[arg-type]
    with pytest.raises(InputTypeError):
        limiter.is_allowed_batch_sync(["a", 3])  # type: ignore[list-item]
    with pytest.raises(InputTypeError):
        limiter.is_allowed_batch_sync("abc")
    with pytest.raises(InvalidArgumentError, match="4097 bytes"):
        limiter.is_allowed_sync("k" * 4097)


def test_token_bucket_as_the_gateway_config_uses_it() -> None:
    # ratelimit: {requests_per_second: 0.2, burst: 1} is one request every five seconds.
    slow = TokenBucketRateLimiter(requests_per_second=0.2, burst=1)
    assert slow.is_allowed_sync("k")[0] is True
    allowed, info = slow.is_allowed_sync("k")
    assert allowed is False
    assert 4.9 < info["retry_after"] <= 5.0
    bursty = TokenBucketRateLimiter(requests_per_second=10.0, burst=20)
    assert bursty.is_allowed_batch_sync(["k"] * 25).admitted == 20


def test_sliding_counter_option() -> None:
    limiter = SlidingWindowRateLimiter(requests=5, window_seconds=60, algorithm="sliding_counter")
    assert limiter.algorithm == "sliding_counter"
    assert limiter.is_allowed_batch_sync(["k"] * 8).admitted == 5
    with pytest.raises(InvalidArgumentError, match="TokenBucketRateLimiter"):
        SlidingWindowRateLimiter(algorithm="token_bucket")  # type: ignore[arg-type]


def test_threads_share_one_limit() -> None:
    limiter = SlidingWindowRateLimiter(requests=500, window_seconds=3600)

    def hammer(_: int) -> int:
        single = sum(limiter.is_allowed_sync("shared")[0] for _ in range(100))
        return single + limiter.is_allowed_batch_sync(["shared"] * 300).admitted

    with ThreadPoolExecutor(4) as pool:
        assert sum(pool.map(hammer, range(8))) == 500


async def test_concurrent_tasks_share_one_limit() -> None:
    limiter = SlidingWindowRateLimiter(requests=20, window_seconds=60)
    results = await asyncio.gather(*(limiter.is_allowed("k") for _ in range(50)))
    assert sum(allowed for allowed, _ in results) == 20


def test_memory_is_bounded_by_max_keys() -> None:
    limiter = SlidingWindowRateLimiter(requests=5, window_seconds=60, max_keys=1000)
    limiter.is_allowed_batch_sync([f"user-{i}" for i in range(20_000)])
    stats = limiter.stats()
    assert stats["keys"] <= stats["max_keys"] == 1000
    assert stats["active_evictions"] > 0


def test_from_settings_and_exports() -> None:
    limiter = SlidingWindowRateLimiter.from_settings(
        Settings(rate_limit_requests=7, rate_limit_window_seconds=9, redis_url=None)
    )
    assert limiter.limit == 7
    assert limiter.window_seconds == 9
    assert limiter.backend == "memory"
    assert limiter.redis_available is None
    assert relay_context.SlidingWindowRateLimiter is SlidingWindowRateLimiter
    assert "TokenBucketRateLimiter" in relay_context.__all__


def test_redis_client_objects_become_urls() -> None:
    client = redis.Redis(host="cache.local", port=6380, db=2, password="p@ss:w/rd")
    assert redis_url_of(client) == "redis://:p%40ss%3Aw%2Frd@cache.local:6380/2"
    assert redis_url_of(redis.Redis(host="::1")) == "redis://[::1]:6379/0"
    assert redis_url_of(redis.Redis(unix_socket_path="/run/r.sock")) == "unix:///run/r.sock?db=0"
    assert redis_url_of(None) is None
    with pytest.raises(InvalidArgumentError, match="TLS"):
        redis_url_of(redis.Redis(ssl=True))


# --- the kernel against references ---------------------------------------------------------


def reference_log(times_us: list[int], limit: int, window_us: int) -> list[bool]:
    admitted: list[int] = []
    out = []
    for t in times_us:
        ok = sum(1 for a in admitted if a > t - window_us) < limit
        if ok:
            admitted.append(t)
        out.append(ok)
    return out


@settings(max_examples=150, deadline=None)
@given(
    gaps=st.lists(st.integers(min_value=0, max_value=1500), min_size=1, max_size=120),
    limit=st.integers(min_value=1, max_value=8),
    window_ms=st.integers(min_value=1, max_value=2000),
)
def test_sliding_log_kernel_matches_the_reference(
    gaps: list[int], limit: int, window_ms: int
) -> None:
    times, t = [], 1_700_000_000 * SECOND
    for gap in gaps:
        t += gap * 1000
        times.append(t)
    core = _core.ratelimit.LocalLimiter(ALG.SLIDING_LOG, limit, window_ms * 1000, 1000, 4)
    got = [core.decide_at("k", now)[0] for now in times]
    assert got == reference_log(times, limit, window_ms * 1000)


@settings(max_examples=60, deadline=None)
@given(
    gaps=st.lists(st.integers(min_value=0, max_value=700), min_size=1, max_size=150),
    limit=st.integers(min_value=1, max_value=6),
    window_s=st.integers(min_value=1, max_value=2),
)
def test_sliding_log_agrees_with_limits_moving_window(
    gaps: list[int], limit: int, window_s: int
) -> None:
    # limits reads time.time(); a fake clock drives both. Each request gets its own extra
    # microsecond so that no two requests are exactly one window apart (the two libraries
    # treat that boundary differently: limits counts it, a (now - window, now] log does not).
    class FakeTime:
        now = 1000.0

        @classmethod
        def time(cls) -> float:
            return cls.now

        @staticmethod
        def sleep(seconds: float) -> None:
            pass

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(limits.storage.memory, "time", FakeTime)
        storage = limits.storage.MemoryStorage()
        peer = limits.strategies.MovingWindowRateLimiter(storage)
        item = limits.RateLimitItemPerSecond(limit, window_s)
        core = _core.ratelimit.LocalLimiter(ALG.SLIDING_LOG, limit, window_s * SECOND, 100, 1)
        ms = 0
        for i, gap in enumerate(gaps):
            ms += gap
            now_us = 1000 * SECOND + ms * 1000 + i
            FakeTime.now = now_us / 1e6
            assert core.decide_at("k", now_us)[0] == peer.hit(item, "k"), i


@settings(max_examples=80, deadline=None)
@given(
    gaps=st.lists(st.integers(min_value=0, max_value=400), min_size=1, max_size=150),
    burst=st.integers(min_value=1, max_value=6),
    rate=st.sampled_from([0.5, 2.0, 10.0, 33.0]),
)
def test_token_bucket_never_exceeds_burst_plus_rate(
    gaps: list[int], burst: int, rate: float
) -> None:
    window_us = round(burst / rate * SECOND)
    core = _core.ratelimit.LocalLimiter(ALG.TOKEN_BUCKET, burst, window_us, 100, 1)
    t = 1_700_000_000 * SECOND
    admitted = []
    for gap in gaps:
        t += gap * 1000
        if core.decide_at("k", t)[0]:
            admitted.append(t)
    for i in range(len(admitted)):
        for j in range(i, len(admitted)):
            span = (admitted[j] - admitted[i]) / SECOND
            assert j - i + 1 <= burst + rate * span + 1e-6
