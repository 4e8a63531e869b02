"""What an operation runs its statements on: one database transaction (or, for reads, one
autocommit connection). Both back-ends take PostgreSQL's ``$1, $2, ...`` placeholders."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

Row = Sequence[Any]


class Transaction(Protocol):
    async def fetch(self, sql: str, *args: Any) -> list[Row]: ...

    async def execute(self, sql: str, *args: Any) -> None: ...

    async def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None: ...


__all__ = ["Row", "Transaction"]
