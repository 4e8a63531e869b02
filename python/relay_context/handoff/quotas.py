"""``Quotas``: plans per owner, monthly usage, and the check a push passes.

A push is counted inside its own transaction, so a refused push (402) is not counted and a
counted push is stored. Usage is per calendar month (UTC) in ``relay_handoff_usage``; bytes
stored are the owner's live payloads, summed when a push is checked. Pulls are counted (for the
owner of the payload) and never refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from relay_context.config.handoff import HandoffPlan, HandoffSettings
from relay_context.errors import InvalidArgumentError, QuotaExceededError
from relay_context.persistence import Database, Transaction


def period_of(now_us: int) -> str:
    return datetime.fromtimestamp(now_us / 1_000_000, tz=timezone.utc).strftime("%Y-%m")


@dataclass(frozen=True)
class Usage:
    owner: str
    plan: str
    limits: HandoffPlan
    period: str
    pushes: int
    pulls: int
    bytes_stored: int

    def to_json(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "plan": self.plan,
            "period": self.period,
            "pushes": self.pushes,
            "pulls": self.pulls,
            "bytes_stored": self.bytes_stored,
            "limits": self.limits.model_dump(),
        }


class Quotas:
    def __init__(self, database: Database, settings: HandoffSettings) -> None:
        self.database = database
        self.settings = settings

    async def plan_of(self, tx: Transaction, owner: str, *, default: str) -> str:
        rows = await tx.fetch("SELECT plan FROM relay_handoff_plans WHERE owner = $1", owner)
        plan = str(rows[0][0]) if rows else default
        return plan if plan in self.settings.plans else default

    async def set_plan(self, owner: str, plan: str) -> None:
        if plan not in self.settings.plans:
            raise InvalidArgumentError(
                f"unknown plan {plan!r}; the plans are {', '.join(sorted(self.settings.plans))}"
            )
        async with self.database.write() as tx:
            await tx.execute(
                "INSERT INTO relay_handoff_plans (owner, plan, updated_at_us) VALUES ($1, $2, $3)"
                " ON CONFLICT (owner) DO UPDATE SET plan = $2, updated_at_us = $3",
                owner,
                plan,
                self.database.clock(),
            )

    async def _stored(self, tx: Transaction, owner: str, now_us: int) -> int:
        rows = await tx.fetch(
            "SELECT COALESCE(SUM(size), 0) FROM relay_handoff_payloads"
            " WHERE owner = $1 AND expires_at_us > $2",
            owner,
            now_us,
        )
        return int(rows[0][0])

    async def charge_push(
        self, tx: Transaction, owner: str, *, size: int, now_us: int, default_plan: str
    ) -> None:
        """Count a push of ``size`` bytes for ``owner`` in ``tx``, or refuse it (402)."""
        plan_name = await self.plan_of(tx, owner, default=default_plan)
        plan = self.settings.plans[plan_name]
        period = period_of(now_us)
        rows = await tx.fetch(
            "INSERT INTO relay_handoff_usage (owner, period, pushes, pulls) VALUES ($1, $2, 1, 0)"
            " ON CONFLICT (owner, period) DO UPDATE SET"
            " pushes = relay_handoff_usage.pushes + 1 RETURNING pushes",
            owner,
            period,
        )
        pushes = int(rows[0][0])
        limit = plan.pushes_per_month
        if limit is not None and pushes > limit:
            raise QuotaExceededError(
                f"plan {plan_name!r} allows {limit} pushes per month ({period}); pulls still work",
                details={
                    "quota": "pushes_per_month",
                    "plan": plan_name,
                    "limit": limit,
                    "used": pushes - 1,
                    "period": period,
                },
            )
        if plan.bytes_stored is not None:
            stored = await self._stored(tx, owner, now_us)
            if stored + size > plan.bytes_stored:
                raise QuotaExceededError(
                    f"plan {plan_name!r} allows {plan.bytes_stored} bytes stored; "
                    f"{stored} are, and this push has {size}",
                    details={
                        "quota": "bytes_stored",
                        "plan": plan_name,
                        "limit": plan.bytes_stored,
                        "used": stored,
                        "size": size,
                    },
                )

    async def count_pulls(self, counts: dict[str, int], now_us: int) -> None:
        async with self.database.write() as tx:
            for owner, count in counts.items():
                await tx.execute(
                    "INSERT INTO relay_handoff_usage (owner, period, pushes, pulls)"
                    " VALUES ($1, $2, 0, $3) ON CONFLICT (owner, period) DO UPDATE SET"
                    " pulls = relay_handoff_usage.pulls + $3",
                    owner,
                    period_of(now_us),
                    count,
                )

    async def usage(self, owner: str, now_us: int, *, default_plan: str) -> Usage:
        period = period_of(now_us)
        async with self.database.read() as tx:
            plan_name = await self.plan_of(tx, owner, default=default_plan)
            rows = await tx.fetch(
                "SELECT pushes, pulls FROM relay_handoff_usage WHERE owner = $1 AND period = $2",
                owner,
                period,
            )
            stored = await self._stored(tx, owner, now_us)
        pushes, pulls = (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)
        return Usage(
            owner=owner,
            plan=plan_name,
            limits=self.settings.plans[plan_name],
            period=period,
            pushes=pushes,
            pulls=pulls,
            bytes_stored=stored,
        )


__all__ = ["Quotas", "Usage", "period_of"]
