"""The clock of persisted times: integer microseconds since the Unix epoch.

Integers compare the same way in SQLite and PostgreSQL, and tests drive expiry with a fake one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone

from relay_context.errors import InvalidArgumentError

#: Microseconds since the Unix epoch.
Clock = Callable[[], int]


def system_clock() -> int:
    return time.time_ns() // 1000


def utc_from_micros(micros: int) -> datetime:
    """An aware UTC datetime from microseconds since the Unix epoch (the stored form)."""
    seconds, rest = divmod(micros, 1_000_000)
    return datetime.fromtimestamp(seconds, tz=timezone.utc).replace(microsecond=rest)


def micros_from_utc(moment: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime."""
    if moment.tzinfo is None:
        raise InvalidArgumentError(f"datetime {moment.isoformat()} has no time zone")
    delta = moment - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


__all__ = ["Clock", "micros_from_utc", "system_clock", "utc_from_micros"]
