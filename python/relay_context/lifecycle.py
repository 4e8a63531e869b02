"""``AsyncResource``: something opened before use and closed after (a database, a store, a
cache, the context engine). ``async with resource:`` opens it and always closes it."""

from __future__ import annotations

from types import TracebackType
from typing import TypeVar

_Resource = TypeVar("_Resource", bound="AsyncResource")


class AsyncResource:
    """``open``/``close`` (both idempotent) and the ``async with`` protocol over them."""

    async def open(self) -> None:
        """Connect or start. The default has nothing to open."""

    async def close(self) -> None:
        """Release what :meth:`open` took. The default has nothing to release."""

    async def __aenter__(self: _Resource) -> _Resource:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


__all__ = ["AsyncResource"]
