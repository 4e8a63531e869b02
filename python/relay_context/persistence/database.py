"""``Database``: connections, transactions, the clock and the migration registry of one SQL
database, shared by every component that persists something (see the package docs)."""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import Iterable
from typing import ClassVar

from relay_context.errors import InvalidArgumentError
from relay_context.lifecycle import AsyncResource
from relay_context.persistence.clock import Clock, system_clock
from relay_context.persistence.migrations import (
    LEGACY_TABLE,
    MIGRATIONS_TABLE,
    Migration,
    apply_migrations,
    check_migrations,
)
from relay_context.persistence.transaction import Transaction


class Database(AsyncResource, abc.ABC):
    """One SQLite file or PostgreSQL schema. ``async with`` or :meth:`open`/:meth:`close`.

    Components call :meth:`register` with their migrations (before or after opening); the
    registered migrations are applied at :meth:`open`, and by :meth:`migrate` for components
    registered later. Both are idempotent and safe against other processes migrating at once.
    """

    #: ``"sqlite"`` or ``"postgresql"``.
    dialect: ClassVar[str]
    #: The dialect's binary column type, for ``{blob}`` in migrations.
    blob_type: ClassVar[str]

    def __init__(self, *, clock: Clock = system_clock) -> None:
        self.clock = clock
        self._registered: dict[str, tuple[Migration, ...]] = {}
        #: Versions of the components as last migrated; ``None`` until the first migration,
        #: which also checks the database's schema when no component is registered yet.
        self._versions: dict[str, int] | None = None
        self._migrate_lock = asyncio.Lock()

    # --- what a back-end provides -----------------------------------------------------------
    @property
    @abc.abstractmethod
    def is_open(self) -> bool: ...

    @abc.abstractmethod
    async def _connect(self) -> None:
        """Connect (the first connection; migrations run next)."""

    @abc.abstractmethod
    async def _connect_rest(self) -> None:
        """What :meth:`open` connects after migrating (e.g. SQLite's reader connection)."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release every connection. Idempotent."""

    @abc.abstractmethod
    def write(self) -> contextlib.AbstractAsyncContextManager[Transaction]:
        """A transaction holding the write lock that ordered updates need."""

    @abc.abstractmethod
    def read(self) -> contextlib.AbstractAsyncContextManager[Transaction]:
        """An autocommit connection: each statement sees one snapshot by itself."""

    @abc.abstractmethod
    def _migration_transaction(self) -> contextlib.AbstractAsyncContextManager[Transaction]:
        """A write transaction that also excludes other processes' migrators until commit."""

    @abc.abstractmethod
    async def _has_table(self, tx: Transaction, name: str) -> bool: ...

    # --- migrations ---------------------------------------------------------------------------
    def register(self, component: str, migrations: Iterable[Migration]) -> None:
        """Register ``component``'s migrations (numbered 1, 2, 3, ...). Registering the same
        ones again is a no-op; different ones under a registered name are refused."""
        steps = check_migrations(component, migrations)
        known = self._registered.get(component)
        if known is not None and known != steps:
            raise InvalidArgumentError(f"component {component!r} registered other migrations")
        self._registered[component] = steps

    @property
    def components(self) -> tuple[str, ...]:
        return tuple(self._registered)

    def _pending(self) -> bool:
        versions = self._versions
        if versions is None:
            return True
        return any(versions.get(c) != len(s) for c, s in self._registered.items())

    async def migrate(self) -> None:
        """Apply what registered components still lack (open the database first)."""
        if not self._pending():
            return
        async with self._migrate_lock:
            if not self._pending():
                return
            async with self._migration_transaction() as tx:
                legacy = await self._has_table(tx, LEGACY_TABLE)
                self._versions = await apply_migrations(
                    tx,
                    self._registered,
                    blob_type=self.blob_type,
                    clock=self.clock,
                    has_legacy_table=legacy,
                )

    async def schema_version(self, component: str) -> int:
        """The applied version of ``component``'s schema (0: none)."""
        async with self.read() as tx:
            rows = await tx.fetch(
                f"SELECT MAX(version) FROM {MIGRATIONS_TABLE} WHERE component = $1", component
            )
        return int(rows[0][0] or 0)

    # --- life cycle -------------------------------------------------------------------------
    async def open(self) -> None:
        """Connect and apply the registered migrations. Idempotent."""
        if self.is_open:
            await self.migrate()
            return
        await self._connect()
        try:
            await self.migrate()
            await self._connect_rest()
        except BaseException:
            await self.close()
            raise

    async def ping(self) -> None:
        async with self.read() as tx:
            await tx.fetch("SELECT 1")


__all__ = ["Database"]
