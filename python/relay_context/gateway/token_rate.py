"""Tokens per minute per principal: a sliding-window counter over one-minute buckets (the
current bucket plus the previous one weighted by how much of it is still in the window).

The prompt is charged exactly before the call (refused when it would cross the limit) and the
output is added after it. In process by default; with a Redis client the buckets are Redis keys
(``INCRBY`` + ``EXPIRE`` in one transaction), so every replica sees the same counts. The C++
limiter counts requests, not weighted amounts, hence this module.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from relay_context.persistence.redis import hash_tag

WINDOW_SECONDS = 60


@dataclass
class TokensPerMinute:
    limit: int
    redis: Any | None = None
    key_prefix: str = "relay:gw:tpm:"
    clock: Callable[[], float] = time.time
    _buckets: dict[tuple[str, int], int] = field(default_factory=dict)

    @staticmethod
    def seconds_to_reset(now: float) -> float:
        """Seconds until the current bucket ends (when the window next gives tokens back)."""
        return WINDOW_SECONDS - now % WINDOW_SECONDS

    def _name(self, key: str, bucket: int) -> str:
        # One hash tag per key: both buckets are read in one MGET, on one Redis Cluster slot.
        return f"{self.key_prefix}{hash_tag(key)}:{bucket}"

    async def _counts(self, key: str, bucket: int) -> tuple[int, int]:
        if self.redis is None:
            return self._buckets.get((key, bucket - 1), 0), self._buckets.get((key, bucket), 0)
        previous, current = await self.redis.mget(
            self._name(key, bucket - 1), self._name(key, bucket)
        )
        return int(previous or 0), int(current or 0)

    async def add(self, key: str, tokens: int) -> None:
        if tokens <= 0:
            return
        bucket = int(self.clock() // WINDOW_SECONDS)
        if self.redis is None:
            self._buckets[(key, bucket)] = self._buckets.get((key, bucket), 0) + tokens
            for old in [k for k in self._buckets if k[1] < bucket - 1]:
                del self._buckets[old]
            return
        name = self._name(key, bucket)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incrby(name, tokens)
            pipe.expire(name, 2 * WINDOW_SECONDS + 5)
            await pipe.execute()

    async def check(self, key: str, tokens: int) -> tuple[bool, float, int]:
        """(allowed, seconds until it would be, tokens counted in the window) for a call that
        adds ``tokens``; an allowed call is charged at once."""
        now = self.clock()
        bucket = int(now // WINDOW_SECONDS)
        previous, current = await self._counts(key, bucket)
        elapsed = (now % WINDOW_SECONDS) / WINDOW_SECONDS
        used = previous * (1 - elapsed) + current
        if used + tokens > self.limit and used > 0:
            # The previous bucket's weight falls linearly; past it, only the current one counts.
            over = used + tokens - self.limit
            wait = (
                over / previous * WINDOW_SECONDS
                if previous and over <= previous * (1 - elapsed)
                else WINDOW_SECONDS * (1 - elapsed)
            )
            return False, max(1.0, math.ceil(wait)), int(used)
        await self.add(key, tokens)
        return True, 0.0, int(used) + tokens


__all__ = ["TokensPerMinute"]
