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

#: Blob files up to this size are read on the event loop (from the page cache: microseconds;
#: three hops to a thread and back for open, read and the end cost more). Larger: in a thread.
INLINE_READ_BYTES = 1024 * 1024


class FileBlobStore:
    def __init__(self, root: Path, *, read_bytes: int) -> None:
        self.root = root
        self.read_bytes = read_bytes
        self._made: set[Path] = set()

    def _path(self, location: str) -> Path:
        return self.root / location

    def reserve(self, sha256: str) -> str:
        # A name of its own per stored copy (see blobs.py).
        return f"{sha256[:2]}/{sha256}-{secrets.token_hex(4)}.zst"

    async def store(self, tx: Transaction, sha256: str, spool: Path, reserved: str | None) -> str:
        # Same file system as the spool, so the rename is atomic and nothing is copied.
        location = reserved or self.reserve(sha256)
        target = self._path(location)

        # A rename (and, once per folder, a mkdir) is a metadata syscall of microseconds: done
        # here rather than in a thread, whose hop costs more.
        if target.parent not in self._made:
            target.parent.mkdir(parents=True, exist_ok=True)
            self._made.add(target.parent)
        try:
            os.replace(spool, target)
        except FileNotFoundError:  # the folder went away meanwhile (removed by hand)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(spool, target)
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
            handle = self._path(location).open("rb")
        except FileNotFoundError:
            raise PayloadNotFoundError("the payload's bytes are gone") from None
        try:
            if os.fstat(handle.fileno()).st_size <= INLINE_READ_BYTES:
                while chunk := handle.read(self.read_bytes):
                    yield chunk
                return
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
