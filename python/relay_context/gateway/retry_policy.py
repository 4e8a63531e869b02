"""When to try a deployment again: exponential backoff with full jitter, honouring the
upstream's ``retry-after`` (a wait longer than ``max_wait`` moves on to the fallbacks)."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int
    base_seconds: float
    max_wait_seconds: float

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float | None:
        """Seconds to wait before retry number ``attempt`` (1-based); ``None``: do not retry."""
        if attempt > self.max_retries:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_wait_seconds else None
        ceiling = min(self.max_wait_seconds, self.base_seconds * (2 ** (attempt - 1)))
        return rng.uniform(0, ceiling)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``retry-after`` (or ``retry-after-ms``) header value."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return max(0.0, seconds)


__all__ = ["RetryPolicy", "parse_retry_after"]
