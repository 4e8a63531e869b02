"""Every gateway call as a row: who, which model and deployment, tokens, cost, status.

Kept in process for now (the last :data:`MAX_ROWS` rows, and running totals per principal and
model); the shared persistence layer will hold it across restarts and replicas.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from relay_context.gateway.schema import Usage

MAX_ROWS = 100_000


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
