"""The clock of persisted times: integer microseconds since the Unix epoch.

Integers compare the same way in SQLite and PostgreSQL, and tests drive expiry with a fake one.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: Microseconds since the Unix epoch.
Clock = Callable[[], int]


def system_clock() -> int:
    return time.time_ns() // 1000


__all__ = ["Clock", "system_clock"]
