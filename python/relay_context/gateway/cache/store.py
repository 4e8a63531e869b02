"""Where entries live, behind one interface (:class:`CacheStore`), and the default store: in
process, LRU, bounded by bytes.

A store keeps opaque values (an encoded :class:`~relay_context.gateway.cache.entry.CachedAnswer`)
under an entry id (the key's digest) for a TTL. A store that cannot answer raises
:class:`CacheStoreUnavailableError`; the cache then applies its outage policy.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Protocol


class CacheStoreUnavailableError(Exception):
    """The store did not answer in time or failed (Redis down, disk error)."""


class CacheStore(Protocol):
    #: ``memory``, ``sqlite`` or ``redis``.
    name: str

    async def get(self, entry_id: str) -> bytes | None: ...

    async def put(self, entry_id: str, value: bytes, ttl_seconds: float) -> None: ...

    async def close(self) -> None: ...


class MemoryStore:
    """LRU bounded by the bytes of its values; an expired entry is dropped when read."""

    name = "memory"

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, entry_id: str) -> bytes | None:
        found = self._entries.get(entry_id)
        if found is None:
            return None
        if time.monotonic() >= found[1]:
            self._drop(entry_id)
            return None
        self._entries.move_to_end(entry_id)
        return found[0]

    async def put(self, entry_id: str, value: bytes, ttl_seconds: float) -> None:
        if len(value) > self.max_bytes:
            return
        if entry_id in self._entries:
            self._drop(entry_id)
        self._entries[entry_id] = (value, time.monotonic() + ttl_seconds)
        self.bytes += len(value)
        while self.bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, entry_id: str) -> None:
        value, _ = self._entries.pop(entry_id)
        self.bytes -= len(value)

    async def close(self) -> None:
        self._entries.clear()
        self.bytes = 0


__all__ = ["CacheStore", "CacheStoreUnavailableError", "MemoryStore"]
