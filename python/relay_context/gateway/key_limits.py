"""Gateway limits carried by an API key: requests and tokens per minute, a budget, and the models
it may use (``relay keys create --rpm 60 --tpm 200000 --budget-usd 25 --budget-period month
--models 'gpt-4o,claude-*'``, or ``PUT /api/v1/gateway/keys/{id}/limits``). Each applies to the
key itself: two keys of one owner have a window and a spend each.

They live in the gateway's own table, ``relay_gateway_key_limits`` (component
``gateway_key_limits`` of the shared database), keyed by the key's id, so the key store itself
is unchanged. A key's limits are read once per :data:`CACHE_SECONDS` per process.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

from relay_context.errors import InvalidArgumentError
from relay_context.persistence import Database, Migration, Transaction

CACHE_SECONDS = 5.0
#: The C++ sliding-window log keeps one timestamp per request: at most this many per minute.
MAX_KEY_RPM = 10_000_000
MAX_KEY_TPM = 10**12
Period = Literal["day", "month", "lifetime"]
PERIODS = ("day", "month", "lifetime")

KEY_LIMIT_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        "gateway_key_limits",
        1,
        "gateway limits per API key",
        (
            """
            CREATE TABLE relay_gateway_key_limits (
                key_id TEXT PRIMARY KEY,
                rpm INTEGER,
                budget_usd DOUBLE PRECISION,
                budget_period TEXT NOT NULL,
                models TEXT
            )""",
        ),
    ),
    Migration(
        "gateway_key_limits",
        2,
        "tokens per minute per API key",
        ("ALTER TABLE relay_gateway_key_limits ADD COLUMN tpm BIGINT",),
    ),
)


@dataclass(frozen=True, slots=True)
class KeyLimits:
    rpm: int | None = None
    budget_usd: float | None = None
    budget_period: Period = "month"
    #: ``fnmatch`` patterns of the model names the key may use (``None``: any).
    models: tuple[str, ...] | None = None
    #: Tokens per minute (prompt counted before the call, output added after it).
    tpm: int | None = None

    def __post_init__(self) -> None:
        for name, value, cap in (("rpm", self.rpm, MAX_KEY_RPM), ("tpm", self.tpm, MAX_KEY_TPM)):
            # ``type() is int``: a bool is not a limit.
            if value is not None and (type(value) is not int or not 1 <= value <= cap):
                raise InvalidArgumentError(
                    f"{name} must be an integer in [1, {cap}], got {value!r}"
                )
        if self.budget_usd is not None and not self.budget_usd > 0:
            raise InvalidArgumentError(f"budget_usd must be > 0, got {self.budget_usd!r}")
        if self.budget_period not in PERIODS:
            raise InvalidArgumentError(
                f"budget_period must be one of {', '.join(PERIODS)}, got {self.budget_period!r}"
            )

    def allows(self, model: str) -> bool:
        return self.models is None or any(fnmatch.fnmatchcase(model, p) for p in self.models)

    def to_json(self) -> dict[str, object]:
        return {
            "rpm": self.rpm,
            "tpm": self.tpm,
            "budget_usd": self.budget_usd,
            "budget_period": self.budget_period,
            "models": list(self.models) if self.models is not None else None,
        }


def parse_models(text: str | None) -> tuple[str, ...] | None:
    """``"gpt-4o, claude-*"`` -> ``("gpt-4o", "claude-*")``; empty or ``None``: any model."""
    if not text:
        return None
    return tuple(p.strip() for p in text.split(",") if p.strip()) or None


class KeyLimitsStore:
    def __init__(self, database: Database) -> None:
        self.database = database
        database.register("gateway_key_limits", KEY_LIMIT_MIGRATIONS)
        self._cache: dict[str, tuple[KeyLimits | None, float]] = {}

    @contextlib.asynccontextmanager
    async def _tx(self, write: bool) -> AsyncIterator[Transaction]:
        await self.database.migrate()
        async with self.database.write() if write else self.database.read() as tx:
            yield tx

    async def set(self, key_id: str, limits: KeyLimits) -> None:
        async with self._tx(True) as tx:
            await tx.execute("DELETE FROM relay_gateway_key_limits WHERE key_id = $1", key_id)
            await tx.execute(
                "INSERT INTO relay_gateway_key_limits (key_id, rpm, budget_usd, budget_period,"
                " models, tpm) VALUES ($1, $2, $3, $4, $5, $6)",
                key_id,
                limits.rpm,
                limits.budget_usd,
                limits.budget_period,
                json.dumps(list(limits.models)) if limits.models is not None else None,
                limits.tpm,
            )
        self._cache.pop(key_id, None)

    async def get(self, key_id: str) -> KeyLimits | None:
        cached = self._cache.get(key_id)
        now = time.monotonic()
        if cached is not None and now < cached[1]:
            return cached[0]
        async with self._tx(False) as tx:
            rows = await tx.fetch(
                "SELECT rpm, budget_usd, budget_period, models, tpm FROM relay_gateway_key_limits"
                " WHERE key_id = $1",
                key_id,
            )
        limits = None
        if rows:
            rpm, budget, period, models, tpm = rows[0]
            limits = KeyLimits(
                rpm=int(rpm) if rpm is not None else None,
                budget_usd=float(budget) if budget is not None else None,
                budget_period=period,
                models=tuple(json.loads(models)) if models is not None else None,
                tpm=int(tpm) if tpm is not None else None,
            )
        self._cache[key_id] = (limits, now + CACHE_SECONDS)
        return limits


__all__ = ["MAX_KEY_RPM", "MAX_KEY_TPM", "KeyLimits", "KeyLimitsStore", "parse_models"]
