"""Every gateway call as a row of the usage ledger, table ``relay_gateway_usage`` in the shared
database (SQLite by default, PostgreSQL when configured; component ``gateway_usage`` of the
migration registry).

Writes are batched off the request path: :meth:`UsageLedger.record` appends to a buffer that a
background task writes every :data:`FLUSH_SECONDS` (or at :data:`FLUSH_ROWS` rows), and
:meth:`UsageLedger.close` writes what is left. Reads (reports, spend for budgets) see the
database plus the rows not yet written, so a process sees its own calls at once and other
replicas' calls once they are flushed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields

from relay_context.errors import InvalidArgumentError
from relay_context.gateway.schema import Usage
from relay_context.persistence import Database, Migration, Transaction

log = logging.getLogger(__name__)

FLUSH_SECONDS = 0.5
FLUSH_ROWS = 500
GROUPINGS = ("key", "model", "day")
US = 1_000_000
DAY_US = 86_400 * US

USAGE_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "gateway_usage",
        1,
        "gateway usage ledger",
        (
            """
            CREATE TABLE relay_gateway_usage (
                at_us BIGINT NOT NULL,
                request_id TEXT NOT NULL,
                principal TEXT NOT NULL,
                model TEXT NOT NULL,
                deployment TEXT NOT NULL,
                input_tokens BIGINT NOT NULL,
                output_tokens BIGINT NOT NULL,
                cached_input_tokens BIGINT NOT NULL,
                cost_usd DOUBLE PRECISION NOT NULL,
                status INTEGER NOT NULL,
                reported INTEGER NOT NULL
            )""",
            "CREATE INDEX relay_gateway_usage_principal ON relay_gateway_usage (principal, at_us)",
            "CREATE INDEX relay_gateway_usage_at ON relay_gateway_usage (at_us)",
        ),
    ),
    Migration(
        "gateway_usage",
        2,
        "answers from the exact cache: their saved cost",
        (
            "ALTER TABLE relay_gateway_usage"
            " ADD COLUMN saved_usd DOUBLE PRECISION NOT NULL DEFAULT 0",
            "ALTER TABLE relay_gateway_usage ADD COLUMN cache_hit INTEGER NOT NULL DEFAULT 0",
        ),
    ),
    Migration(
        "gateway_usage",
        3,
        "prompt-cache writes in the usage ledger",
        (
            "ALTER TABLE relay_gateway_usage"
            " ADD COLUMN cache_write_tokens BIGINT NOT NULL DEFAULT 0",
        ),
    ),
    Migration(
        "gateway_usage",
        4,
        "the API key of each call (per-key budgets)",
        (
            "ALTER TABLE relay_gateway_usage ADD COLUMN key_id TEXT",
            "CREATE INDEX relay_gateway_usage_key ON relay_gateway_usage (key_id, at_us)",
        ),
    ),
    Migration(
        "gateway_usage",
        5,
        "answers shared from an identical call in flight (coalesced)",
        ("ALTER TABLE relay_gateway_usage ADD COLUMN coalesced INTEGER NOT NULL DEFAULT 0",),
    ),
)
_COLUMNS = (
    "at_us, request_id, principal, model, deployment, input_tokens, output_tokens,"
    " cached_input_tokens, cache_write_tokens, cost_usd, status, reported, saved_usd, cache_hit,"
    " key_id, coalesced"
)


@dataclass(frozen=True, slots=True)
class UsageRow:
    at_us: int
    request_id: str
    principal: str
    model: str
    deployment: str
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    #: Input tokens written to the provider's prompt cache (billed at its cache-write price).
    cache_write_tokens: int
    cost_usd: float
    status: int
    #: 1 when the usage came from the upstream, 0 when Relay counted it.
    reported: int
    #: An answer from the cache, or shared from an identical call in flight (``coalesced``),
    #: costs 0 and saves what its call cost.
    saved_usd: float = 0.0
    cache_hit: int = 0
    #: The API key that made the call (``None`` for JWT, passthrough and open callers).
    key_id: str | None = None
    #: 1 when the answer came from another request's upstream call in flight (no call of its
    #: own; not a cache hit: ``Gateway.stats`` counts these apart too).
    coalesced: int = 0


#: A row as the INSERT's parameters, in ``_COLUMNS`` order. ``dataclasses.astuple`` deep-copies
#: field by field (~12 us a row, so a 500-row flush held the event loop ~6 ms and showed in
#: every request's p99 tail); one attrgetter call is ~0.2 us.
_row_values = operator.attrgetter(*(f.name for f in fields(UsageRow)))


class UsageLedger:
    def __init__(self, database: Database) -> None:
        self.database = database
        database.register("gateway_usage", USAGE_MIGRATIONS)
        self._pending: list[UsageRow] = []
        self._flusher: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._closing = False
        #: One flush at a time, so a read's flush waits for the writer's batch in flight.
        self._flushing = asyncio.Lock()

    # --- writing -------------------------------------------------------------------------------

    def record(
        self,
        *,
        request_id: str,
        principal: str,
        model: str,
        deployment: str,
        usage: Usage,
        cost_usd: float,
        status: int,
        reported: bool,
        saved_usd: float = 0.0,
        cache_hit: bool = False,
        key_id: str | None = None,
        coalesced: bool = False,
    ) -> UsageRow:
        row = UsageRow(
            int(time.time() * US),
            request_id,
            principal,
            model,
            deployment,
            usage.input_tokens,
            usage.output_tokens,
            usage.cached_input_tokens,
            usage.cache_write_tokens,
            cost_usd,
            status,
            int(reported),
            saved_usd,
            int(cache_hit),
            key_id,
            int(coalesced),
        )
        self._pending.append(row)
        if len(self._pending) >= FLUSH_ROWS:
            self._wake.set()
        return row

    def start(self) -> None:
        """Starts the background writer (in the running event loop)."""
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while not self._closing:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FLUSH_SECONDS)
            self._wake.clear()
            try:
                await self.flush()
            except Exception:  # the next round retries; the rows stay buffered
                log.exception("usage ledger: writing %d rows failed", len(self._pending))

    async def flush(self) -> None:
        """Writes the buffered rows (in one transaction); returns once they are written, even
        when the background writer had taken them."""
        async with self._flushing:
            await self._flush()

    async def _flush(self) -> None:
        if not self._pending:
            return
        rows, self._pending = self._pending, []
        try:
            async with self._write() as tx:
                await tx.executemany(
                    f"INSERT INTO relay_gateway_usage ({_COLUMNS}) VALUES "
                    "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
                    [_row_values(r) for r in rows],
                )
        except BaseException:
            self._pending[:0] = rows
            raise

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._flusher is not None:
            with contextlib.suppress(Exception):
                await self._flusher
            self._flusher = None
        if self.database.is_open:
            await self.flush()

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

    # --- reading -------------------------------------------------------------------------------

    async def spent(self, principal: str, since_us: int, *, key_id: str | None = None) -> float:
        """USD spent by ``principal`` (or, given ``key_id``, by that API key alone) since
        ``since_us``: every replica's flushed rows, and this process's buffered ones."""
        column, value = ("key_id", key_id) if key_id is not None else ("principal", principal)
        async with self._read() as tx:
            rows = await tx.fetch(
                f"SELECT COALESCE(SUM(cost_usd), 0) FROM relay_gateway_usage"
                f" WHERE {column} = $1 AND at_us >= $2",
                value,
                since_us,
            )
        total = float(rows[0][0] or 0.0)
        if key_id is not None:
            pending = (r for r in self._pending if r.key_id == key_id)
        else:
            pending = (r for r in self._pending if r.principal == principal)
        return total + sum(r.cost_usd for r in pending if r.at_us >= since_us)

    async def report(
        self, *, group_by: str, since: float = 0.0, principal: str | None = None
    ) -> list[dict[str, object]]:
        """Totals per ``key`` (principal), ``model`` or ``day`` (UTC) of the calls at or after
        ``since`` (Unix seconds); only ``principal``'s when given."""
        if group_by not in GROUPINGS:
            raise InvalidArgumentError(
                f"group_by must be one of {', '.join(GROUPINGS)}, got {group_by!r}"
            )
        await self.flush()
        column = {"key": "principal", "model": "model", "day": f"(at_us / {DAY_US})"}[group_by]
        where = "at_us >= $1"
        args: list[object] = [int(since * US)]
        if principal is not None:
            where += " AND principal = $2"
            args.append(principal)
        async with self._read() as tx:
            rows = await tx.fetch(
                f"SELECT {column} AS g, COUNT(*), SUM(input_tokens), SUM(output_tokens),"
                f" SUM(cached_input_tokens), SUM(cost_usd), SUM(saved_usd), SUM(cache_hit),"
                f" SUM(cache_write_tokens), SUM(coalesced)"
                f" FROM relay_gateway_usage"
                f" WHERE {where} GROUP BY g ORDER BY g",
                *args,
            )
        out: list[dict[str, object]] = []
        for row in rows:
            name = (
                time.strftime("%Y-%m-%d", time.gmtime(int(row[0]) * 86_400))
                if group_by == "day"
                else str(row[0])
            )
            out.append(
                {
                    group_by: name,
                    "requests": int(row[1]),
                    "input_tokens": int(row[2] or 0),
                    "output_tokens": int(row[3] or 0),
                    "cached_input_tokens": int(row[4] or 0),
                    "cache_write_tokens": int(row[8] or 0),
                    "cost_usd": round(float(row[5] or 0.0), 8),
                    "saved_usd": round(float(row[6] or 0.0), 8),
                    "cache_hits": int(row[7] or 0),
                    "coalesced": int(row[9] or 0),
                }
            )
        return out


__all__ = ["USAGE_MIGRATIONS", "UsageLedger", "UsageRow"]
