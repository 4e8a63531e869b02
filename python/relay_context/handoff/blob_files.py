"""Blobs as files under ``DATA_DIR/handoff/blobs`` (the embedded default)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from relay_context.errors import PayloadNotFoundError
from relay_context.persistence import Transaction


class FileBlobStore:
    def __init__(self, root: Path, *, read_bytes: int) -> None:
        self.root = root
        self.read_bytes = read_bytes

    def _path(self, location: str) -> Path:
        return self.root / location

    async def store(self, tx: Transaction, sha256: str, spool: Path) -> str:
        # A name of its own per stored copy (see blobs.py); same file system as the spool, so
        # the rename is atomic and nothing is copied.
        location = f"{sha256[:2]}/{sha256}-{secrets.token_hex(4)}.zst"
        target = self._path(location)

        def move() -> None:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(spool, target)

        await asyncio.to_thread(move)
        return location

    async def remove(self, tx: Transaction, sha256: str, location: str) -> Callable[[], None]:
        path = self._path(location)

        def unlink() -> None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

        # After the commit: were the transaction to roll back, the row would still need them.
        return unlink

    async def read(self, sha256: str, location: str) -> AsyncIterator[bytes]:
        try:
            # Opened before the first read: a removal meanwhile unlinks the name, not the data.
            handle = await asyncio.to_thread(self._path(location).open, "rb")
        except FileNotFoundError:
            raise PayloadNotFoundError("the payload's bytes are gone") from None
        try:
            while True:
                chunk = await asyncio.to_thread(handle.read, self.read_bytes)
                if not chunk:
                    return
                yield chunk
        finally:
            handle.close()

    def disk_bytes(self) -> int:
        """Bytes of the blob files (walks the folder: for stats, not for hot paths)."""
        total = 0
        for path in self.root.rglob("*.zst"):
            with contextlib.suppress(FileNotFoundError):
                total += path.stat().st_size
        return total


__all__ = ["FileBlobStore"]
