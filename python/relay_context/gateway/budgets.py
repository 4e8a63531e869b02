"""Spending limits per principal (the settings' budgets) and per API key (its own): checked
before a call with the exact prompt count and the requested output, and enforced while a stream
flows (a stream that would cross the budget is ended with the protocol's error event, not let
finish).

Spend is read from the usage ledger (the shared database), so replicas on one PostgreSQL share
it, up to the ledger's flush delay.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from relay_context.config.gateway import BudgetConfig, GatewaySettings
from relay_context.core.tokenizer import TokenCounter
from relay_context.gateway.costs import Prices
from relay_context.gateway.errors import BudgetExceededError
from relay_context.gateway.usage_ledger import UsageLedger

US = 1_000_000


def budget_for(principal: str, gs: GatewaySettings) -> BudgetConfig | None:
    named = gs.budgets.get(principal)
    if named is not None:
        return named
    if gs.budget_usd > 0:
        return BudgetConfig(usd=gs.budget_usd, period=gs.budget_period)
    return None


def period_start_us(period: str, now: dt.datetime | None = None) -> int:
    now = now or dt.datetime.now(dt.timezone.utc)
    if period == "lifetime":
        return 0
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "month":
        start = start.replace(day=1)
    return int(start.timestamp() * US)


def exceeded(budget: BudgetConfig, spent: float) -> BudgetExceededError:
    return BudgetExceededError(
        f"Budget exceeded: ${spent:.6f} of ${budget.usd:g} per {budget.period} spent"
    )


@dataclass
class StreamBudget:
    """What a stream may still spend: its output is counted as it flows."""

    budget: BudgetConfig
    spent_before: float
    prompt_cost: float
    prices: Prices
    counter: TokenCounter
    output_tokens: int = 0

    def add(self, text: str) -> bool:
        """Counts ``text`` of the answer; whether the stream is still within the budget."""
        if text:
            self.output_tokens += self.counter.count(text)
        cost = self.prompt_cost + self.output_tokens * self.prices.output * 1e-6
        return self.spent_before + cost <= self.budget.usd

    def error(self) -> BudgetExceededError:
        cost = self.prompt_cost + self.output_tokens * self.prices.output * 1e-6
        return exceeded(self.budget, self.spent_before + cost)


async def check_budget(
    ledger: UsageLedger,
    principal: str,
    gs: GatewaySettings,
    *,
    prices: Prices | None,
    prompt_tokens: int,
    max_output_tokens: int,
    counter: TokenCounter,
    key_budget: BudgetConfig | None = None,
    key_id: str | None = None,
) -> StreamBudget | None:
    """Refuses a call that would cross the budget (``BudgetExceededError``) — the API key's own
    (``key_budget``, spent by that key ``key_id`` alone, not by other keys of its owner) before
    the settings' (spent by the principal) — and returns the guard for its stream, or ``None``
    when no budget applies."""
    budget = key_budget or budget_for(principal, gs)
    if budget is None:
        return None
    spent = await ledger.spent(
        principal,
        period_start_us(budget.period),
        key_id=key_id if key_budget is not None else None,
    )
    if prices is None:
        if spent >= budget.usd:
            raise exceeded(budget, spent)
        prices = Prices(0.0, 0.0, 0.0, 0.0)
    prompt_cost = prompt_tokens * prices.input * 1e-6
    estimate = prompt_cost + max_output_tokens * prices.output * 1e-6
    if spent >= budget.usd or spent + estimate > budget.usd:
        raise BudgetExceededError(
            f"Budget exceeded: ${spent:.6f} of ${budget.usd:g} per {budget.period} spent; this "
            f"request could cost up to ${estimate:.6f} ({prompt_tokens} prompt tokens, "
            f"{max_output_tokens} output tokens)"
        )
    return StreamBudget(budget, spent, prompt_cost, prices, counter)


__all__ = ["StreamBudget", "budget_for", "check_budget", "period_start_us"]
