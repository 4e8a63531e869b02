"""Schema migrations, registered per component and applied once per database.

Applied migrations are rows of ``relay_migrations`` keyed by ``(component, version)``: each
component numbers its own migrations from 1, so components never coordinate numbers, and a
process refuses a database whose schema of a component it knows is newer than it knows. A
database made before the registry existed recorded global versions in
``relay_schema_migrations`` (1: sessions and messages, 2: API keys); those are carried over as
``sessions`` 1 and ``api_keys`` 1.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from relay_context.errors import InvalidArgumentError, StoreError
from relay_context.persistence.clock import Clock
from relay_context.persistence.transaction import Transaction

log = logging.getLogger(__name__)

MIGRATIONS_TABLE = "relay_migrations"
CREATE_MIGRATIONS_TABLE = f"""
CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (
    component TEXT NOT NULL,
    version INTEGER NOT NULL,
    name TEXT NOT NULL,
    applied_at_us BIGINT NOT NULL,
    PRIMARY KEY (component, version)
)"""
#: Where migrations were recorded, with global versions, before components had their own.
LEGACY_TABLE = "relay_schema_migrations"
LEGACY_VERSIONS: Mapping[int, tuple[str, int]] = {1: ("sessions", 1), 2: ("api_keys", 1)}


@dataclass(frozen=True)
class Migration:
    """One step of a component's schema: ``statements`` run in order in one transaction.

    ``{blob}`` in a statement stands for the dialect's binary type (``BLOB`` / ``BYTEA``)."""

    component: str
    version: int
    name: str
    statements: tuple[str, ...]


def check_migrations(component: str, migrations: Iterable[Migration]) -> tuple[Migration, ...]:
    """``migrations`` of ``component`` as a tuple, refused unless numbered 1, 2, 3, ..."""
    steps = tuple(migrations)
    if not component or not component.replace("_", "").isalnum():
        raise InvalidArgumentError(f"component name {component!r} must be [A-Za-z0-9_]+")
    if not steps:
        raise InvalidArgumentError(f"component {component!r} registers no migration")
    for expected, step in enumerate(steps, start=1):
        if step.component != component:
            raise InvalidArgumentError(
                f"migration {step.name!r} belongs to {step.component!r}, not {component!r}"
            )
        if step.version != expected:
            raise InvalidArgumentError(
                f"migrations of {component!r} must be numbered 1, 2, 3, ...: "
                f"got {step.version} where {expected} was expected"
            )
    return steps


async def _carry_over_legacy(tx: Transaction) -> None:
    rows = await tx.fetch(f"SELECT version, name, applied_at_us FROM {LEGACY_TABLE}")
    for version, name, applied_at in rows:
        target = LEGACY_VERSIONS.get(int(version))
        if target is None:
            raise StoreError(
                f"the database schema is at version {version}, newer than this Relay knows "
                f"({max(LEGACY_VERSIONS)}); upgrade Relay"
            )
        await tx.execute(
            f"INSERT INTO {MIGRATIONS_TABLE} (component, version, name, applied_at_us)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (component, version) DO NOTHING",
            target[0],
            target[1],
            str(name),
            int(applied_at),
        )


async def apply_migrations(
    tx: Transaction,
    registered: Mapping[str, tuple[Migration, ...]],
    *,
    blob_type: str,
    clock: Clock,
    has_legacy_table: bool,
) -> dict[str, int]:
    """Apply the pending migrations of every registered component in ``tx``; the schema version
    of every component afterwards. The caller holds a lock that serialises migrators."""
    await tx.execute(CREATE_MIGRATIONS_TABLE)
    if has_legacy_table:
        await _carry_over_legacy(tx)
    rows = await tx.fetch(
        f"SELECT component, MAX(version) FROM {MIGRATIONS_TABLE} GROUP BY component"
    )
    versions = {str(r[0]): int(r[1]) for r in rows}
    for component, steps in registered.items():
        current = versions.get(component, 0)
        if current > len(steps):
            raise StoreError(
                f"the database schema of {component} is at version {current}, newer than this "
                f"Relay knows ({len(steps)}); upgrade Relay"
            )
        for step in steps[current:]:
            for statement in step.statements:
                await tx.execute(statement.format(blob=blob_type))
            await tx.execute(
                f"INSERT INTO {MIGRATIONS_TABLE} (component, version, name, applied_at_us)"
                " VALUES ($1, $2, $3, $4)",
                component,
                step.version,
                step.name,
                clock(),
            )
            log.info("applied migration %s %d (%s)", component, step.version, step.name)
            versions[component] = step.version
    return versions


__all__ = [
    "CREATE_MIGRATIONS_TABLE",
    "LEGACY_TABLE",
    "MIGRATIONS_TABLE",
    "Migration",
    "apply_migrations",
    "check_migrations",
]
