"""The usage ledger's rows as stored: every field of a recorded call lands in its own column."""

from __future__ import annotations

import asyncio
from pathlib import Path

from relay_context.gateway.schema import Usage
from relay_context.gateway.usage_ledger import _COLUMNS, UsageLedger
from relay_context.persistence.sqlite import SqliteDatabase


def test_each_recorded_field_is_stored_in_its_own_column(tmp_path: Path) -> None:
    async def main() -> tuple[tuple[object, ...], int]:
        database = SqliteDatabase(tmp_path / "relay.db")
        await database.open()
        ledger = UsageLedger(database)
        try:
            row = ledger.record(
                request_id="req-1",
                principal="alice",
                model="gpt-4o",
                deployment="openai-east",
                usage=Usage(
                    input_tokens=11, output_tokens=22, cached_input_tokens=3, cache_write_tokens=4
                ),
                cost_usd=0.5,
                status=200,
                reported=True,
                saved_usd=0.25,
                cache_hit=True,
                key_id="key-9",
                coalesced=True,
            )
            await ledger.flush()
            async with database.read() as tx:
                stored = await tx.fetch(f"SELECT {_COLUMNS} FROM relay_gateway_usage")
        finally:
            await ledger.close()
            await database.close()
        assert len(stored) == 1
        return tuple(stored[0]), row.at_us

    stored, at_us = asyncio.run(main())
    assert stored == (
        at_us,
        "req-1",
        "alice",
        "gpt-4o",
        "openai-east",
        11,
        22,
        3,
        4,
        0.5,
        200,
        1,
        0.25,
        1,
        "key-9",
        1,
    )
