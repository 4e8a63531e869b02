"""Entries on disk in SQLite (``cache.persist: true``), every value sealed (zstd, then
AES-256-GCM with the entry id as associated data): a copy of the file without the key reveals
neither answers nor prompts (entry ids are SHA-256 digests).

Reads and writes are single-row statements on a WAL database, run on the event loop: they take
microseconds, less than a hop to a worker thread would.
"""

from __future__ import annotations

import sqlite3
import time

from relay_context.gateway.cache.sealing import Sealer
from relay_context.gateway.cache.store import CacheStoreUnavailableError

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS relay_gateway_cache ("
    " id TEXT PRIMARY KEY, value BLOB NOT NULL, expires_at REAL NOT NULL)"
)
#: Expired rows are deleted once per this many writes.
SWEEP_EVERY = 256


class SqliteStore:
    name = "sqlite"

    def __init__(self, path: str, sealer: Sealer) -> None:
        self.path = path
        self.sealer = sealer
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(_SCHEMA)
        self._writes = 0

    async def get(self, entry_id: str) -> bytes | None:
        try:
            row = self._db.execute(
                "SELECT value, expires_at FROM relay_gateway_cache WHERE id = ?", (entry_id,)
            ).fetchone()
        except sqlite3.Error as exc:
            raise CacheStoreUnavailableError(f"sqlite cache: {exc}") from exc
        if row is None or time.time() >= row[1]:
            return None
        return self.sealer.open(entry_id, bytes(row[0]))

    async def put(self, entry_id: str, value: bytes, ttl_seconds: float) -> None:
        sealed = self.sealer.seal(entry_id, value)
        now = time.time()
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO relay_gateway_cache (id, value, expires_at)"
                " VALUES (?, ?, ?)",
                (entry_id, sealed, now + ttl_seconds),
            )
            self._writes += 1
            if self._writes % SWEEP_EVERY == 0:
                self._db.execute("DELETE FROM relay_gateway_cache WHERE expires_at <= ?", (now,))
        except sqlite3.Error as exc:
            raise CacheStoreUnavailableError(f"sqlite cache: {exc}") from exc

    async def close(self) -> None:
        self._db.close()


__all__ = ["SqliteStore"]
