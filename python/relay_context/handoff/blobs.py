"""Where the compressed bytes of a blob live: the ``BlobStore`` protocol.

A blob arrives as a spool file (compressed, hashed: see :mod:`relay_context.handoff.spool`) and
is stored inside the transaction that creates its row, so a payload row never points at bytes
that are not there. Each stored copy has a ``location`` of its own (a file name with a random
suffix, or a chunk count), so removing one generation of a blob never touches a later one of
the same content pushed again meanwhile.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Protocol

from relay_context.persistence import Transaction


class BlobStore(Protocol):
    def reserve(self, sha256: str) -> str | None:
        """The location a new copy will have, if the store can name it before it is stored
        (then the blob's row is written with it at once, one statement fewer)."""
        ...

    async def store(self, tx: Transaction, sha256: str, spool: Path, reserved: str | None) -> str:
        """Keep the compressed bytes in ``spool`` (the file is consumed) at ``reserved`` if
        given (what :meth:`reserve` said); their location."""
        ...

    async def remove(self, tx: Transaction, sha256: str, location: str) -> Callable[[], None]:
        """Forget a blob's bytes; what to run once ``tx`` has committed."""
        ...

    def read(self, sha256: str, location: str) -> AsyncIterator[bytes]:
        """The compressed bytes, in chunks. Raises ``PayloadNotFoundError`` when they are gone."""
        ...


__all__ = ["BlobStore"]
