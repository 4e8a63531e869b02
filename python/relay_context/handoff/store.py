"""``PayloadStore``: the SQL of payloads and their content-addressed, reference-counted blobs.

Every method runs in the transaction it is given (the relay opens it, so a push and its
channel event commit together). Both back-ends take the same statements: the blob upsert is
one ``INSERT ... ON CONFLICT DO UPDATE ... RETURNING`` (atomic under concurrent pushes of the
same bytes on PostgreSQL; SQLite serialises writers anyway).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

from relay_context.handoff.blobs import BlobStore
from relay_context.handoff.models import HandoffStats, PayloadInfo
from relay_context.handoff.spool import Spooled
from relay_context.persistence import Database, Row, Transaction

_PAYLOAD_COLUMNS = (
    "p.id, p.sha256, p.size, p.content_type, p.encrypted, p.channel, p.metadata, p.owner, "
    "p.created_at_us, p.expires_at_us, b.location"
)
#: Expired payloads removed per sweep transaction (bounds how long it holds the write lock).
SWEEP_BATCH = 500


def _info(row: Row) -> tuple[PayloadInfo, str]:
    metadata: dict[str, Any] = json.loads(row[6])
    info = PayloadInfo(
        id=str(row[0]),
        sha256=str(row[1]),
        size=int(row[2]),
        content_type=str(row[3]),
        encrypted=bool(row[4]),
        channel=None if row[5] is None else str(row[5]),
        metadata=metadata,
        owner=None if row[7] is None else str(row[7]),
        created_at_us=int(row[8]),
        expires_at_us=int(row[9]),
    )
    return info, str(row[10])


class PayloadStore:
    def __init__(self, database: Database, blobs: BlobStore) -> None:
        self.database = database
        self.blobs = blobs

    async def add(
        self,
        tx: Transaction,
        *,
        payload_id: str,
        spooled: Spooled,
        content_type: str,
        encrypted: bool,
        channel: str | None,
        metadata: dict[str, Any],
        metadata_json: str,
        owner: str | None,
        now_us: int,
        expires_at_us: int,
    ) -> PayloadInfo:
        """Record a payload; stores ``spooled``'s bytes unless the same bytes are stored
        already (then the spool file is discarded and the blob gains a reference)."""
        reserved = self.blobs.reserve(spooled.sha256)
        rows = await tx.fetch(
            "INSERT INTO relay_handoff_blobs"
            " (sha256, size, stored_size, refs, location, created_at_us)"
            " VALUES ($1, $2, $3, 1, $4, $5)"
            " ON CONFLICT (sha256) DO UPDATE SET refs = relay_handoff_blobs.refs + 1"
            " RETURNING refs",
            spooled.sha256,
            spooled.size,
            spooled.stored_size,
            reserved or "",
            now_us,
        )
        new_blob = int(rows[0][0]) == 1
        if new_blob:
            location = await self.blobs.store(tx, spooled.sha256, spooled.path, reserved)
            if location != reserved:
                await tx.execute(
                    "UPDATE relay_handoff_blobs SET location = $2 WHERE sha256 = $1",
                    spooled.sha256,
                    location,
                )
        else:
            spooled.discard()
        await tx.execute(
            "INSERT INTO relay_handoff_payloads (id, sha256, size, content_type, encrypted,"
            " channel, metadata, owner, created_at_us, expires_at_us)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            payload_id,
            spooled.sha256,
            spooled.size,
            content_type,
            int(encrypted),
            channel,
            metadata_json,
            owner,
            now_us,
            expires_at_us,
        )
        return PayloadInfo(
            id=payload_id,
            sha256=spooled.sha256,
            size=spooled.size,
            content_type=content_type,
            encrypted=encrypted,
            channel=channel,
            metadata=metadata,
            owner=owner,
            created_at_us=now_us,
            expires_at_us=expires_at_us,
            stored_new_blob=new_blob,
        )

    async def exists(self, tx: Transaction, payload_id: str) -> bool:
        """Whether a payload row has this id (live or expired but not yet swept)."""
        rows = await tx.fetch("SELECT 1 FROM relay_handoff_payloads WHERE id = $1", payload_id)
        return bool(rows)

    async def get(self, payload_id: str, now_us: int) -> tuple[PayloadInfo, str] | None:
        """A live payload and its blob's location."""
        async with self.database.read() as tx:
            rows = await tx.fetch(
                f"SELECT {_PAYLOAD_COLUMNS} FROM relay_handoff_payloads p"
                " JOIN relay_handoff_blobs b ON b.sha256 = p.sha256"
                " WHERE p.id = $1 AND p.expires_at_us > $2",
                payload_id,
                now_us,
            )
        return _info(rows[0]) if rows else None

    async def _release(self, tx: Transaction, released: Counter[str]) -> list[Callable[[], None]]:
        after_commit: list[Callable[[], None]] = []
        for sha256, count in sorted(released.items()):
            rows = await tx.fetch(
                "UPDATE relay_handoff_blobs SET refs = refs - $2 WHERE sha256 = $1"
                " RETURNING refs, location",
                sha256,
                count,
            )
            if rows and int(rows[0][0]) <= 0:
                await tx.execute("DELETE FROM relay_handoff_blobs WHERE sha256 = $1", sha256)
                after_commit.append(await self.blobs.remove(tx, sha256, str(rows[0][1])))
        return after_commit

    async def delete(
        self, tx: Transaction, payload_id: str, *, owner: str | None, any_owner: bool
    ) -> list[Callable[[], None]] | None:
        """Remove a payload (of ``owner`` unless ``any_owner``); ``None`` if there is none.
        Returns what to run after the commit (unlinking files of blobs left unreferenced)."""
        rows = await tx.fetch(
            "DELETE FROM relay_handoff_payloads WHERE id = $1 AND ($2 OR owner = $3)"
            " RETURNING sha256",
            payload_id,
            any_owner,
            owner,
        )
        if not rows:
            return None
        return await self._release(tx, Counter([str(rows[0][0])]))

    async def sweep(self, tx: Transaction, now_us: int) -> tuple[int, list[Callable[[], None]]]:
        """Remove up to :data:`SWEEP_BATCH` expired payloads: how many, and what to run after
        the commit."""
        rows = await tx.fetch(
            "DELETE FROM relay_handoff_payloads WHERE id IN (SELECT id FROM"
            " relay_handoff_payloads WHERE expires_at_us <= $1 LIMIT $2) RETURNING sha256",
            now_us,
            SWEEP_BATCH,
        )
        if not rows:
            return 0, []
        return len(rows), await self._release(tx, Counter(str(r[0]) for r in rows))

    async def stats(self, now_us: int, *, subscribers: int) -> HandoffStats:
        async with self.database.read() as tx:
            payloads = await tx.fetch(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM relay_handoff_payloads"
                " WHERE expires_at_us > $1",
                now_us,
            )
            blobs = await tx.fetch(
                "SELECT COUNT(*), COALESCE(SUM(size), 0), COALESCE(SUM(stored_size), 0)"
                " FROM relay_handoff_blobs"
            )
            channels = await tx.fetch("SELECT COUNT(*) FROM relay_handoff_channels")
        return HandoffStats(
            payloads=int(payloads[0][0]),
            payload_bytes=int(payloads[0][1]),
            blobs=int(blobs[0][0]),
            blob_bytes=int(blobs[0][1]),
            stored_bytes=int(blobs[0][2]),
            channels=int(channels[0][0]),
            subscribers=subscribers,
        )


__all__ = ["SWEEP_BATCH", "PayloadStore"]
