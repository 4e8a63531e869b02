"""Rate-limit decisions per second: Relay vs ``limits`` (moving window), in one process.

    python benchmarks/bench_ratelimit.py [--quick] [--no-redis]

Both sides decide the same workload: requests from 1,000 users cycling in order, 100 requests per
user per minute, so about half of the decisions admit and half deny. In process, Relay is timed
one call at a time (``is_allowed_sync``) and with its batch call (``is_allowed_batch_sync``, GIL
released) against ``limits``' ``MovingWindowRateLimiter`` on ``MemoryStorage`` (no batch call).
Through Redis (127.0.0.1:6379), Relay's one-round-trip-per-call and pipelined batch are timed
against ``limits``' Redis moving window. Ratios are Relay / limits; the in-process target is
1,000,000 decisions/s with the batch call and more than ``limits`` one call at a time.
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable

import limits
import limits.storage
import limits.strategies

from relay_context import SlidingWindowRateLimiter

REDIS_URL = "redis://127.0.0.1:6379/0"
USERS = 1000
LIMIT = 100


def keys_for(n: int) -> list[str]:
    return [f"user-{i % USERS}" for i in range(n)]


def rate(fn: Callable[[], object], decisions: int, reps: int) -> float:
    """Best decisions/s over ``reps`` runs of ``fn`` (each making ``decisions`` decisions)."""
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return decisions / best


def row(label: str, relay: float, peer: float) -> float:
    ratio = relay / peer
    print(f"{label:<46} {relay:>14,.0f} {peer:>14,.0f} {ratio:>8.2f}x")
    return ratio


def in_process(n: int, reps: int) -> tuple[float, float, float]:
    keys = keys_for(n)
    relay = SlidingWindowRateLimiter(requests=LIMIT, window_seconds=60)
    peer = limits.strategies.MovingWindowRateLimiter(limits.storage.MemoryStorage())
    item = limits.RateLimitItemPerMinute(LIMIT)

    def relay_single() -> None:
        decide = relay.is_allowed_sync
        for key in keys:
            decide(key)

    def relay_batch() -> None:
        for start in range(0, n, 10_000):
            relay.is_allowed_batch_sync(keys[start : start + 10_000])

    def peer_single() -> None:
        hit = peer.hit
        for key in keys:
            hit(item, key)

    peer_rate = rate(peer_single, n, reps)
    single = rate(relay_single, n, reps)
    batch = rate(relay_batch, n, reps)
    row("in-process, one call at a time", single, peer_rate)
    row("in-process, Relay batch of 10,000 vs limits", batch, peer_rate)
    return single, batch, peer_rate


def through_redis(n: int, reps: int) -> None:
    keys = keys_for(n)
    relay = SlidingWindowRateLimiter(
        REDIS_URL,
        requests=LIMIT,
        window_seconds=60,
        key_prefix=f"relay:bench:{uuid.uuid4().hex}:",
        on_redis_error="raise",
    )
    storage = limits.storage.RedisStorage(REDIS_URL)
    peer = limits.strategies.MovingWindowRateLimiter(storage)
    item = limits.RateLimitItemPerMinute(LIMIT)
    prefix = uuid.uuid4().hex

    def relay_single() -> None:
        decide = relay.is_allowed_sync
        for key in keys:
            decide(key)

    def relay_batch() -> None:
        for start in range(0, n, 1000):
            relay.is_allowed_batch_sync(keys[start : start + 1000])

    def peer_single() -> None:
        hit = peer.hit
        for key in keys:
            hit(item, prefix, key)

    peer_rate = rate(peer_single, n, reps)
    row("Redis, one call at a time", rate(relay_single, n, reps), peer_rate)
    row("Redis, Relay pipelined batch of 1,000 vs limits", rate(relay_batch, n, reps), peer_rate)
    storage.reset()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer decisions and repetitions")
    ap.add_argument("--no-redis", action="store_true", help="in-process only")
    args = ap.parse_args()
    reps = 2 if args.quick else 3
    print(f"{'decisions/s':<46} {'relay':>14} {'limits':>14} {'ratio':>9}")
    single, batch, peer = in_process(100_000 if args.quick else 300_000, reps)
    if not args.no_redis:
        through_redis(3_000 if args.quick else 10_000, reps)
    print()
    print(f"target: in-process batch >= 1,000,000 decisions/s: {batch:,.0f} -> "
          f"{'met' if batch >= 1_000_000 else 'NOT met'}")  # fmt: skip
    print(f"target: in-process one call at a time faster than limits: {single / peer:.2f}x -> "
          f"{'met' if single > peer else 'NOT met'}")  # fmt: skip


if __name__ == "__main__":
    main()
