"""Streaming a pushed body to a spool file: counted against the cap, hashed and compressed as
it arrives, in bounded memory (at most one ``chunk_bytes`` batch held at a time).

The cap is checked after every piece the server receives, so an over-size body is refused as
soon as it passes the limit, never read to its end first.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
from collections.abc import AsyncIterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from relay_context.core.compression import CompressionEngine
from relay_context.errors import PayloadTooLargeError

#: The last batch of at most this many bytes is compressed on the event loop, not in a thread.
INLINE_BYTES = 256 * 1024


@dataclass(frozen=True)
class Spooled:
    path: Path
    sha256: str
    size: int
    stored_size: int

    def discard(self) -> None:
        _remove(self.path)


def _new_spool(directory: Path) -> tuple[Path, BinaryIO]:
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=directory, suffix=".spool")
    return Path(name), os.fdopen(fd, "wb")


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


async def spool(
    body: AsyncIterable[bytes],
    *,
    directory: Path,
    compression: CompressionEngine,
    limit: int,
    chunk_bytes: int,
) -> Spooled:
    """Read ``body`` into a new file in ``directory``: its SHA-256 and size (of the bytes as
    received) and the compressed size. :class:`PayloadTooLargeError` past ``limit`` bytes."""
    path, handle = _new_spool(directory)
    digest = hashlib.sha256()
    compressor = compression.compressor()
    size = 0
    stored = 0
    pending: list[bytes] = []
    pending_bytes = 0

    def write(batch: list[bytes], last: bool) -> int:
        out = 0
        for piece in batch:
            digest.update(piece)
            data = compressor.compress(piece)
            if data:
                out += handle.write(data)
        if last:
            out += handle.write(compressor.finish())
        return out

    try:
        async for piece in body:
            if not piece:
                continue
            size += len(piece)
            if size > limit:
                raise PayloadTooLargeError(
                    f"payload larger than the limit of {limit} bytes", limit=limit
                )
            pending.append(piece)
            pending_bytes += len(piece)
            if pending_bytes >= chunk_bytes:
                # Hashing, compressing and writing a batch run off the event loop.
                stored += await asyncio.to_thread(write, pending, False)
                pending, pending_bytes = [], 0
        if pending_bytes <= INLINE_BYTES:
            # Small: a thread hop costs more than the work (zstd level 3 and SHA-256 of 256 KiB
            # take well under a millisecond; a hop to a thread and back on a busy machine, more).
            stored += write(pending, True)
        else:
            stored += await asyncio.to_thread(write, pending, True)
    except BaseException:
        handle.close()
        _remove(path)
        raise
    handle.close()
    return Spooled(path=path, sha256=digest.hexdigest(), size=size, stored_size=stored)


__all__ = ["Spooled", "spool"]
