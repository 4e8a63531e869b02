"""Every gateway call as a row: who, which model and deployment, tokens, cost, status.

Kept in process for now (the last :data:`MAX_ROWS` rows, and running totals per principal and
model); the shared persistence layer will hold it across restarts and replicas.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass, field

from relay_context.errors import InvalidArgumentError
from relay_context.gateway.schema import Usage

MAX_ROWS = 100_000
GROUPINGS = ("key", "model", "day")


@dataclass(frozen=True, slots=True)
class UsageRow:
    at: float
    request_id: str
    principal: str
    model: str
    deployment: str
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int
    cost_usd: float
    status: int
    #: Whether the usage came from the upstream (else Relay counted it).
    reported: bool


@dataclass
class Totals:
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cost_usd: float = 0.0


@dataclass
class UsageLedger:
    rows: deque[UsageRow] = field(default_factory=lambda: deque(maxlen=MAX_ROWS))
    by_principal: dict[str, Totals] = field(default_factory=dict)
    by_model: dict[str, Totals] = field(default_factory=dict)

    def report(
        self, *, group_by: str, since: float = 0.0, principal: str | None = None
    ) -> list[dict[str, object]]:
        """Totals per ``key`` (principal), ``model`` or ``day`` (UTC), of the rows at or after
        ``since`` (Unix seconds), only ``principal``'s when given."""
        if group_by not in GROUPINGS:
            raise InvalidArgumentError(
                f"group_by must be one of {', '.join(GROUPINGS)}, got {group_by!r}"
            )
        groups: dict[str, Totals] = {}
        for row in self.rows:
            if row.at < since or (principal is not None and row.principal != principal):
                continue
            if group_by == "key":
                name = row.principal
            elif group_by == "model":
                name = row.model
            else:
                name = time.strftime("%Y-%m-%d", time.gmtime(row.at))
            totals = groups.setdefault(name, Totals())
            totals.requests += 1
            totals.input_tokens += row.input_tokens
            totals.output_tokens += row.output_tokens
            totals.cached_input_tokens += row.cached_input_tokens
            totals.cost_usd += row.cost_usd
        return [
            {group_by: name, **asdict(totals), "cost_usd": round(totals.cost_usd, 8)}
            for name, totals in sorted(groups.items())
        ]

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
    ) -> UsageRow:
        row = UsageRow(
            time.time(),
            request_id,
            principal,
            model,
            deployment,
            usage.input_tokens,
            usage.output_tokens,
            usage.cached_input_tokens,
            cost_usd,
            status,
            reported,
        )
        self.rows.append(row)
        for table, key in ((self.by_principal, principal), (self.by_model, model)):
            totals = table.setdefault(key, Totals())
            totals.requests += 1
            totals.input_tokens += row.input_tokens
            totals.output_tokens += row.output_tokens
            totals.cached_input_tokens += row.cached_input_tokens
            totals.cost_usd += cost_usd
        return row


__all__ = ["Totals", "UsageLedger", "UsageRow"]
