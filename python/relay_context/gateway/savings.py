"""The gateway's savings and traffic recorder: one :class:`GatewayStats` per gateway
(``Gateway.stats``), fed from three places and read by the dashboard.

Who calls what:

* the caches (exact, fuzzy) and the coalescer call :meth:`GatewayStats.record_cache` once per
  cacheable request with its final outcome (``"exact"``, ``"fuzzy"``, ``"coalesced"`` — it
  missed the cache and joined an identical call in flight — or ``"miss"``: it went upstream)
  and the USD the answer would have cost upstream (``saved_usd``, ignored for a miss). Hit
  rates are hits over all four outcomes;
* the pipeline's settle step (``Gateway._settle``, where the usage ledger's row is written) calls
  :meth:`GatewayStats.record_request` once per upstream call with its usage, cost and prices;
  that call also counts the cached-prefix tokens and the USD the provider's prompt-cache
  discount saved, so nobody calls :meth:`GatewayStats.record_prompt_cache_tokens` for the same
  request again (it is there for prompt-cache reads settled elsewhere);
* the pipeline's error answer calls :meth:`GatewayStats.record_refused` (no upstream cost).

It keeps exact totals since start, spend per (provider, model), and two rings of time buckets
(per minute for the last hour, per five minutes for the last day): fixed arrays, so memory is
bounded whatever the traffic. It also owns the Prometheus counters of issue 11
(``relay_cache_hits_total{kind}``, ``relay_cache_misses_total``,
``relay_coalesced_requests_total``, ``relay_saved_usd_total``,
``relay_prompt_cache_tokens_total``). They belong here: a cache counts through
:meth:`GatewayStats.record_cache`, not through a Counter of its own, so the dashboard's figures
and ``/metrics`` agree (a name another module registered first is left to it, with a
warning). The numbers are this process's; Prometheus sums replicas.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

from prometheus_client import CollectorRegistry, Counter

from relay_context.gateway.costs import Prices
from relay_context.gateway.schema import Usage

log = logging.getLogger(__name__)

CacheOutcome = Literal["exact", "fuzzy", "coalesced", "miss"]
CACHE_OUTCOMES: tuple[CacheOutcome, ...] = get_args(CacheOutcome)
#: The fields of one time bucket (and of the series the dashboard draws), in order.
SERIES_FIELDS = (
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "cached_input_tokens",
    "cost_usd",
    "saved_usd",
    "exact_hits",
    "fuzzy_hits",
    "coalesced",
    "misses",
)
_FIELD_INDEX = {name: i for i, name in enumerate(SERIES_FIELDS)}
_OUTCOME_FIELD: dict[CacheOutcome, str] = {
    "exact": "exact_hits",
    "fuzzy": "fuzzy_hits",
    "coalesced": "coalesced",
    "miss": "misses",
}
#: Distinct (provider, model) pairs kept apart; more are summed under ``OTHER``.
MAX_SPEND_ROWS = 512
OTHER = "(other)"


def _counter(
    registry: CollectorRegistry, name: str, documentation: str, labels: tuple[str, ...] = ()
) -> Counter:
    """A counter registered in ``registry``, unless another module registered the name first:
    then that one is exported, this one only counts (a warning names it), and the app still
    starts."""
    counter = Counter(name, documentation, labels, registry=None)
    try:
        registry.register(counter)
    except ValueError:
        log.warning(
            "%s_total is already registered elsewhere; /metrics shows that one, the gateway's "
            "stats keep their own count",
            name,
        )
    return counter


class _Ring:
    """``slots`` buckets of ``width`` seconds each: the last ``slots * width`` seconds."""

    def __init__(self, width: int, slots: int) -> None:
        self.width = width
        self.slots = slots
        self._index = [-1] * slots  # which bucket number each slot holds now
        self._values = [[0.0] * len(SERIES_FIELDS) for _ in range(slots)]

    def add(self, now: float, field: int, amount: float) -> None:
        number = int(now // self.width)
        slot = number % self.slots
        if self._index[slot] != number:
            self._index[slot] = number
            self._values[slot] = [0.0] * len(SERIES_FIELDS)
        self._values[slot][field] += amount

    def series(self, now: float) -> dict[str, Any]:
        """Columns oldest to newest, one point per bucket (empty buckets are zeros)."""
        last = int(now // self.width)
        first = last - self.slots + 1
        times: list[int] = []
        columns: list[list[float]] = [[] for _ in SERIES_FIELDS]
        for number in range(first, last + 1):
            slot = number % self.slots
            values = self._values[slot] if self._index[slot] == number else None
            times.append(number * self.width)
            for i, column in enumerate(columns):
                column.append(values[i] if values is not None else 0.0)
        out: dict[str, Any] = {"bucket_seconds": self.width, "t": times}
        for name, column in zip(SERIES_FIELDS, columns, strict=True):
            out[name] = (
                [round(v, 10) for v in column]
                if name.endswith("_usd")
                else [int(v) for v in column]
            )
        return out


@dataclass(slots=True)
class _Spend:
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    cost_usd: float = 0.0
    saved_usd: float = 0.0


class GatewayStats:
    """Totals, spend per provider and model, and time series of the gateway's traffic and
    savings. Thread-safe (a lock around plain arithmetic); ``clock`` is wall time in seconds."""

    def __init__(
        self, registry: CollectorRegistry, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._started = clock()
        self._hour = _Ring(60, 60)
        self._day = _Ring(300, 288)
        self._totals = [0.0] * len(SERIES_FIELDS)
        self._prompt_cache_tokens = 0
        self._spend: dict[tuple[str, str], _Spend] = {}
        r = registry
        self.cache_hits = _counter(
            r,
            "relay_cache_hits",
            "Gateway answers served from a cache, by kind (exact, fuzzy).",
            ("kind",),
        )
        self.cache_misses = _counter(
            r, "relay_cache_misses", "Gateway cache lookups that found nothing."
        )
        self.coalesced = _counter(
            r,
            "relay_coalesced_requests",
            "Gateway requests answered by joining an identical request in flight.",
        )
        self.saved_usd = _counter(
            r,
            "relay_saved_usd",
            "USD not spent upstream: cache hits, coalesced requests and provider prompt-cache "
            "discounts.",
        )
        self.prompt_cache_tokens = _counter(
            r,
            "relay_prompt_cache_tokens",
            "Input tokens the providers read from their prompt cache (cached prefix).",
        )
        for kind in ("exact", "fuzzy"):
            self.cache_hits.labels(kind)  # both series exist (at 0) from the start

    # --- recording -----------------------------------------------------------------------------

    def record_cache(self, kind: CacheOutcome, *, saved_usd: float = 0.0) -> None:
        """One cache lookup's outcome. ``saved_usd``: what the upstream call this answer
        replaced would have cost (0 for ``"miss"``)."""
        if kind not in _OUTCOME_FIELD:
            raise ValueError(f"unknown cache outcome {kind!r} (one of {CACHE_OUTCOMES})")
        saved = max(0.0, float(saved_usd)) if kind != "miss" else 0.0
        if kind in ("exact", "fuzzy"):
            self.cache_hits.labels(kind).inc()
        elif kind == "coalesced":
            self.coalesced.inc()
        else:
            self.cache_misses.inc()
        if saved:
            self.saved_usd.inc(saved)
        with self._lock:
            now = self._clock()
            self._add(now, _OUTCOME_FIELD[kind], 1)
            if saved:
                self._add(now, "saved_usd", saved)

    def record_prompt_cache_tokens(self, tokens: int, *, saved_usd: float = 0.0) -> None:
        """Input tokens a provider read from its prompt cache, and the USD its discount saved.
        :meth:`record_request` already does this from the upstream's usage."""
        tokens = max(0, int(tokens))
        saved = max(0.0, float(saved_usd))
        if tokens:
            self.prompt_cache_tokens.inc(tokens)
        if saved:
            self.saved_usd.inc(saved)
        with self._lock:
            self._prompt_cache_tokens += tokens
            if saved:
                self._add(self._clock(), "saved_usd", saved)

    def record_request(
        self,
        *,
        provider: str,
        model: str,
        status: int,
        usage: Usage,
        cost_usd: float,
        prices: Prices | None = None,
    ) -> None:
        """One settled upstream call (the ledger's row): its usage, what it cost, and, from
        ``prices``, what the provider's prompt cache saved (the cost of the same tokens all at
        the input price, minus the cost; cache-write premiums count against it, never below
        0)."""
        input_tokens, output_tokens = usage.input_tokens, usage.output_tokens
        cached_input_tokens = usage.cached_input_tokens
        prompt_cache_saved_usd = 0.0
        if prices is not None and (usage.cached_input_tokens or usage.cache_write_tokens):
            uncached = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
            prompt_cache_saved_usd = max(0.0, prices.cost(uncached) - cost_usd)
        self.record_prompt_cache_tokens(cached_input_tokens, saved_usd=prompt_cache_saved_usd)
        with self._lock:
            now = self._clock()
            self._add(now, "requests", 1)
            if status >= 400:
                self._add(now, "errors", 1)
            self._add(now, "input_tokens", input_tokens)
            self._add(now, "output_tokens", output_tokens)
            self._add(now, "cached_input_tokens", cached_input_tokens)
            self._add(now, "cost_usd", cost_usd)
            key = (provider, model)
            row = self._spend.get(key)
            if row is None:
                if len(self._spend) >= MAX_SPEND_ROWS:
                    key = (OTHER, OTHER)
                row = self._spend.setdefault(key, _Spend())
            row.requests += 1
            row.input_tokens += input_tokens
            row.output_tokens += output_tokens
            row.cached_input_tokens += cached_input_tokens
            row.cost_usd += cost_usd
            row.saved_usd += prompt_cache_saved_usd

    def record_refused(self, status: int) -> None:
        """A request answered with an error before (or instead of) a settled upstream call."""
        with self._lock:
            now = self._clock()
            self._add(now, "requests", 1)
            if status >= 400:
                self._add(now, "errors", 1)

    def _add(self, now: float, name: str, amount: float) -> None:
        field = _FIELD_INDEX[name]
        self._totals[field] += amount
        self._hour.add(now, field, amount)
        self._day.add(now, field, amount)

    # --- reading -------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Totals since start, spend per provider and model (costliest first) and the series
        ``hour`` (60 one-minute buckets) and ``day`` (288 five-minute buckets)."""
        with self._lock:
            now = self._clock()
            t = dict(zip(SERIES_FIELDS, self._totals, strict=True))
            rows = sorted(self._spend.items(), key=lambda kv: (-kv[1].cost_usd, kv[0]))
            spend: list[dict[str, Any]] = [
                {
                    "provider": provider,
                    "model": model,
                    "requests": row.requests,
                    "input_tokens": row.input_tokens,
                    "output_tokens": row.output_tokens,
                    "cached_input_tokens": row.cached_input_tokens,
                    "cost_usd": round(row.cost_usd, 10),
                    "saved_usd": round(row.saved_usd, 10),
                }
                for (provider, model), row in rows
            ]
            hour, day = self._hour.series(now), self._day.series(now)
            prompt_cache_tokens = self._prompt_cache_tokens
        exact, fuzzy = int(t["exact_hits"]), int(t["fuzzy_hits"])
        coalesced, misses = int(t["coalesced"]), int(t["misses"])
        lookups = exact + fuzzy + coalesced + misses
        return {
            "since": self._started,
            "time": now,
            "totals": {
                "requests": int(t["requests"]),
                "errors": int(t["errors"]),
                "input_tokens": int(t["input_tokens"]),
                "output_tokens": int(t["output_tokens"]),
                "cached_input_tokens": int(t["cached_input_tokens"]),
                "prompt_cache_tokens": prompt_cache_tokens,
                "cost_usd": round(t["cost_usd"], 10),
                "saved_usd": round(t["saved_usd"], 10),
            },
            "cache": {
                "lookups": lookups,
                "exact_hits": exact,
                "fuzzy_hits": fuzzy,
                "coalesced": coalesced,
                "misses": misses,
                "exact_hit_rate": exact / lookups if lookups else 0.0,
                "fuzzy_hit_rate": fuzzy / lookups if lookups else 0.0,
                "hit_rate": (exact + fuzzy) / lookups if lookups else 0.0,
                "coalesced_rate": coalesced / lookups if lookups else 0.0,
            },
            "spend": spend,
            "series": {"hour": hour, "day": day},
        }


__all__ = ["CACHE_OUTCOMES", "SERIES_FIELDS", "CacheOutcome", "GatewayStats"]
