"""API keys, persisted in the shared database (table ``relay_api_keys``, component ``api_keys``
of the migration registry).

Only each key's SHA-256 is stored, with a non-secret lookup prefix, its role, its owner (the
principal it acts as), and when it was created, last used and revoked. The plaintext key is
returned once, by :meth:`ApiKeyStore.create`.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from relay_context.checks import validate_name
from relay_context.errors import ApiKeyNotFoundError, InputTypeError, InvalidArgumentError
from relay_context.persistence import Database, Migration, Row, Transaction
from relay_context.persistence.clock import utc_from_micros
from relay_context.security.auth import (
    Principal,
    UserRole,
    api_key_lookup,
    api_key_matches,
    generate_api_key,
)

_COLUMNS = "id, lookup, name, role, owner, created_at_us, revoked_at_us, last_used_at_us"
#: ``last_used_at`` is written at most this often per key (saves a write per request).
LAST_USED_RESOLUTION_US = 60 * 1_000_000
MAX_NAME_CHARS = 200

API_KEY_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "api_keys",
        1,
        "api keys",
        (
            # Only the SHA-256 of a key is stored; ``lookup`` (``relay_`` + 8 characters of the
            # key) finds the candidates, whose hashes are then compared in constant time.
            """
            CREATE TABLE relay_api_keys (
                id TEXT PRIMARY KEY,
                lookup TEXT NOT NULL,
                key_hash TEXT NOT NULL,
                name TEXT NOT NULL,
                role TEXT NOT NULL,
                owner TEXT NOT NULL,
                created_at_us BIGINT NOT NULL,
                revoked_at_us BIGINT,
                last_used_at_us BIGINT
            )""",
            "CREATE INDEX relay_api_keys_lookup ON relay_api_keys (lookup)",
        ),
    ),
)


@dataclass(frozen=True)
class ApiKey:
    """A stored key (never its secret)."""

    id: str
    #: ``relay_`` + the key's first 8 characters: enough to recognise it, useless to use it.
    prefix: str
    name: str
    role: UserRole
    owner: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "prefix": self.prefix,
            "name": self.name,
            "role": self.role.value,
            "owner": self.owner,
            "created_at": self.created_at.isoformat(),
            "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
            "last_used_at": self.last_used_at.isoformat() if self.last_used_at else None,
        }


def _key(row: Row) -> ApiKey:
    return ApiKey(
        id=str(row[0]),
        prefix=str(row[1]),
        name=str(row[2]),
        role=UserRole(row[3]),
        owner=str(row[4]),
        created_at=utc_from_micros(int(row[5])),
        revoked_at=None if row[6] is None else utc_from_micros(int(row[6])),
        last_used_at=None if row[7] is None else utc_from_micros(int(row[7])),
    )


class ApiKeyStore:
    """Creates, lists, revokes and checks API keys in ``database`` (shared with the session
    store: keys live next to sessions in SQLite or PostgreSQL). Its table is registered with the
    database's migrations here and created when the database opens (or at first use, if it was
    already open). ``database`` may also be given as a store that has one (``.database``)."""

    def __init__(self, database: Database | Any) -> None:
        db = database if isinstance(database, Database) else getattr(database, "database", None)
        if not isinstance(db, Database):
            raise InputTypeError(
                f"ApiKeyStore needs a Database (or a store on one), got {type(database).__name__}"
            )
        self.database: Database = db
        db.register("api_keys", API_KEY_MIGRATIONS)

    # The table exists once the database has migrated; a database opened before this store was
    # made gets it at the first statement (a no-op check afterwards).
    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[Transaction]:
        await self.database.migrate()
        async with self.database.write() as tx:
            yield tx

    @contextlib.asynccontextmanager
    async def _read(self) -> AsyncIterator[Transaction]:
        await self.database.migrate()
        async with self.database.read() as tx:
            yield tx

    async def create(
        self, *, role: UserRole, name: str = "", owner: str | None = None
    ) -> tuple[ApiKey, str]:
        """A new key and its plaintext (shown once). ``owner`` defaults to ``key-<id>``."""
        role = UserRole(role)
        if not isinstance(name, str) or len(name) > MAX_NAME_CHARS:
            raise InvalidArgumentError(f"key name must be at most {MAX_NAME_CHARS} characters")
        key_id = "key_" + secrets.token_hex(8)
        owner = validate_name("owner", owner if owner is not None else key_id)
        new = generate_api_key()
        now = self.database.clock()
        async with self._write() as tx:
            await tx.execute(
                "INSERT INTO relay_api_keys (id, lookup, key_hash, name, role, owner,"
                " created_at_us) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                key_id,
                new.lookup,
                new.key_hash,
                name,
                role.value,
                owner,
                now,
            )
        record = ApiKey(key_id, new.lookup, name, role, owner, utc_from_micros(now), None, None)
        return record, new.plaintext

    async def get(self, key_id: str) -> ApiKey:
        async with self._read() as tx:
            rows = await tx.fetch(f"SELECT {_COLUMNS} FROM relay_api_keys WHERE id = $1", key_id)
        if not rows:
            raise ApiKeyNotFoundError(f"no API key {key_id!r}")
        return _key(rows[0])

    async def list(self, *, include_revoked: bool = True) -> list[ApiKey]:
        sql = f"SELECT {_COLUMNS} FROM relay_api_keys"
        if not include_revoked:
            sql += " WHERE revoked_at_us IS NULL"
        async with self._read() as tx:
            rows = await tx.fetch(sql + " ORDER BY created_at_us, id")
        return [_key(r) for r in rows]

    async def count_active(self) -> int:
        async with self._read() as tx:
            rows = await tx.fetch("SELECT COUNT(*) FROM relay_api_keys WHERE revoked_at_us IS NULL")
        return int(rows[0][0])

    async def revoke(self, key_id: str) -> ApiKey:
        """Revokes the key (idempotent: a revoked key keeps its first revocation time)."""
        async with self._write() as tx:
            await tx.execute(
                "UPDATE relay_api_keys SET revoked_at_us = $2"
                " WHERE id = $1 AND revoked_at_us IS NULL",
                key_id,
                self.database.clock(),
            )
        return await self.get(key_id)

    async def authenticate(self, plaintext: str) -> Principal | None:
        """The principal of an active key, or ``None`` for an unknown or revoked one.

        :class:`~relay_context.errors.AuthenticationError` if it is not shaped like a key."""
        lookup = api_key_lookup(plaintext)
        async with self._read() as tx:
            rows = await tx.fetch(
                "SELECT id, key_hash, role, owner, revoked_at_us, last_used_at_us"
                " FROM relay_api_keys WHERE lookup = $1",
                lookup,
            )
        match = None
        # Every candidate is compared (no early exit) so timing does not tell which matched.
        for row in rows:
            if api_key_matches(plaintext, str(row[1])):
                match = row
        if match is None or match[4] is not None:
            return None
        now = self.database.clock()
        if match[5] is None or now - int(match[5]) >= LAST_USED_RESOLUTION_US:
            async with self._write() as tx:
                await tx.execute(
                    "UPDATE relay_api_keys SET last_used_at_us = $2 WHERE id = $1", match[0], now
                )
        return Principal(
            id=str(match[3]), role=UserRole(match[2]), method="api_key", key_id=str(match[0])
        )


__all__ = ["ApiKey", "ApiKeyStore"]
