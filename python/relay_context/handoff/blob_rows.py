"""Blobs as rows of ``relay_handoff_chunks`` (PostgreSQL default): every replica sees them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from relay_context.errors import PayloadNotFoundError
from relay_context.persistence import Database, Transaction


def _nothing() -> None:
    pass


def _discard(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


class DatabaseBlobStore:
    def __init__(self, database: Database, *, chunk_bytes: int) -> None:
        self.database = database
        self.chunk_bytes = chunk_bytes

    def reserve(self, sha256: str) -> None:
        return None  # the location is the chunk count, known once stored

    async def store(self, tx: Transaction, sha256: str, spool: Path, reserved: str | None) -> str:
        count = 0
        try:
            with spool.open("rb") as handle:
                while True:
                    chunk = await asyncio.to_thread(handle.read, self.chunk_bytes)
                    if not chunk and count:
                        break
                    await tx.execute(
                        "INSERT INTO relay_handoff_chunks (sha256, n, data) VALUES ($1, $2, $3)",
                        sha256,
                        count,
                        chunk,
                    )
                    count += 1
                    if not chunk:
                        break
        finally:
            await asyncio.to_thread(_discard, spool)
        return f"rows:{count}"

    async def remove(self, tx: Transaction, sha256: str, location: str) -> Callable[[], None]:
        await tx.execute("DELETE FROM relay_handoff_chunks WHERE sha256 = $1", sha256)
        return _nothing

    async def read(self, sha256: str, location: str) -> AsyncIterator[bytes]:
        count = int(location.removeprefix("rows:"))
        for n in range(count):
            async with self.database.read() as tx:
                rows = await tx.fetch(
                    "SELECT data FROM relay_handoff_chunks WHERE sha256 = $1 AND n = $2",
                    sha256,
                    n,
                )
            if not rows:
                raise PayloadNotFoundError("the payload's bytes are gone")
            yield bytes(rows[0][0])


__all__ = ["DatabaseBlobStore"]
