"""``ChannelLog``: each channel's sequence ids and the retained history of its events.

A channel's next id is taken by an upsert of its row (``relay_handoff_channels``), whose row
lock orders concurrent appends on every replica: once event ``n`` is visible, every event below
``n`` has committed too, so a subscriber that sees a gap can fill it from the history.
"""

from __future__ import annotations

from relay_context.handoff.models import ChannelEvent
from relay_context.persistence import Database, Transaction


class ChannelLog:
    def __init__(self, database: Database, *, history_events: int) -> None:
        self.database = database
        self.history_events = history_events

    async def append(
        self,
        tx: Transaction,
        channel: str,
        *,
        now_us: int,
        payload_id: str | None = None,
        message: object = None,
    ) -> ChannelEvent:
        rows = await tx.fetch(
            "INSERT INTO relay_handoff_channels (channel, last_seq) VALUES ($1, 1)"
            " ON CONFLICT (channel) DO UPDATE SET last_seq = relay_handoff_channels.last_seq + 1"
            " RETURNING last_seq",
            channel,
        )
        seq = int(rows[0][0])
        event = ChannelEvent(
            channel=channel, seq=seq, ts=now_us // 1000, payload_id=payload_id, message=message
        )
        await tx.execute(
            "INSERT INTO relay_handoff_events (channel, seq, body, created_at_us)"
            " VALUES ($1, $2, $3, $4)",
            channel,
            seq,
            event.to_json(),
            now_us,
        )
        if seq > self.history_events:
            # By primary key: cheap, and keeps the history bounded whatever the traffic.
            await tx.execute(
                "DELETE FROM relay_handoff_events WHERE channel = $1 AND seq <= $2",
                channel,
                seq - self.history_events,
            )
        return event

    async def last_seq(self, channel: str) -> int:
        async with self.database.read() as tx:
            rows = await tx.fetch(
                "SELECT last_seq FROM relay_handoff_channels WHERE channel = $1", channel
            )
        return int(rows[0][0]) if rows else 0

    async def between(
        self, channel: str, after: int, before: int | None = None
    ) -> list[ChannelEvent]:
        """Retained events with ``after < seq < before`` (``before=None``: no upper bound)."""
        async with self.database.read() as tx:
            if before is None:
                rows = await tx.fetch(
                    "SELECT body FROM relay_handoff_events WHERE channel = $1 AND seq > $2"
                    " ORDER BY seq LIMIT $3",
                    channel,
                    after,
                    self.history_events,
                )
            else:
                rows = await tx.fetch(
                    "SELECT body FROM relay_handoff_events WHERE channel = $1 AND seq > $2"
                    " AND seq < $3 ORDER BY seq LIMIT $4",
                    channel,
                    after,
                    before,
                    self.history_events,
                )
        return [ChannelEvent.from_json(str(r[0])) for r in rows]

    async def prune(self, tx: Transaction, older_than_us: int) -> None:
        await tx.execute("DELETE FROM relay_handoff_events WHERE created_at_us < $1", older_than_us)


__all__ = ["ChannelLog"]
