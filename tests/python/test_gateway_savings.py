"""The gateway's savings recorder (``relay_context.gateway.savings``): totals, rates, spend rows,
the hour and day rings with a fake clock, bounded memory, and its Prometheus counters."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter

from relay_context.gateway.costs import Prices
from relay_context.gateway.savings import MAX_SPEND_ROWS, OTHER, GatewayStats
from relay_context.gateway.schema import Usage


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _stats(start: float = 1_800_000_000.0) -> tuple[GatewayStats, Clock, CollectorRegistry]:
    registry = CollectorRegistry()
    clock = Clock(start)
    return GatewayStats(registry, clock=clock), clock, registry


def _value(registry: CollectorRegistry, name: str, labels: dict[str, str] | None = None) -> float:
    value = registry.get_sample_value(name, labels or {})
    return float(value) if value is not None else 0.0


def test_cache_outcomes_count_rates_and_savings() -> None:
    stats, _, registry = _stats()
    for _ in range(3):
        stats.record_cache("exact", saved_usd=0.01)
    stats.record_cache("fuzzy", saved_usd=0.02)
    stats.record_cache("coalesced", saved_usd=0.04)
    for _ in range(5):
        stats.record_cache("miss", saved_usd=9.0)  # a miss saves nothing, whatever is passed
    cache = stats.snapshot()["cache"]
    assert cache == {
        "lookups": 10,
        "exact_hits": 3,
        "fuzzy_hits": 1,
        "coalesced": 1,
        "misses": 5,
        "exact_hit_rate": 0.3,
        "fuzzy_hit_rate": 0.1,
        "hit_rate": 0.4,
        "coalesced_rate": 0.1,
    }
    assert stats.snapshot()["totals"]["saved_usd"] == pytest.approx(0.09)
    assert _value(registry, "relay_cache_hits_total", {"kind": "exact"}) == 3
    assert _value(registry, "relay_cache_hits_total", {"kind": "fuzzy"}) == 1
    assert _value(registry, "relay_cache_misses_total") == 5
    assert _value(registry, "relay_coalesced_requests_total") == 1
    assert _value(registry, "relay_saved_usd_total") == pytest.approx(0.09)
    with pytest.raises(ValueError, match="unknown cache outcome"):
        stats.record_cache("semantic")  # type: ignore[arg-type]


def test_requests_spend_and_prompt_cache_discount() -> None:
    stats, _, registry = _stats()
    prices = Prices(input=3.0, output=15.0, cached_input=0.3, cache_write=3.75)
    usage = Usage(input_tokens=10_000, output_tokens=100, cached_input_tokens=8_000)
    cost = prices.cost(usage)
    stats.record_request(
        provider="anthropic",
        model="claude-x",
        status=200,
        usage=usage,
        cost_usd=cost,
        prices=prices,
    )
    stats.record_request(
        provider="openai", model="gpt-x", status=200, usage=Usage(50, 5), cost_usd=0.5
    )
    stats.record_refused(429)
    snap = stats.snapshot()
    totals = snap["totals"]
    assert totals["requests"] == 3
    assert totals["errors"] == 1
    assert totals["input_tokens"] == 10_050
    assert totals["output_tokens"] == 105
    assert totals["cached_input_tokens"] == totals["prompt_cache_tokens"] == 8_000
    assert totals["cost_usd"] == pytest.approx(cost + 0.5)
    # 8000 tokens at 0.3 instead of 3.0 per million.
    assert totals["saved_usd"] == pytest.approx(8_000 * 2.7e-6)
    assert [(r["provider"], r["model"], r["requests"]) for r in snap["spend"]] == [
        ("openai", "gpt-x", 1),
        ("anthropic", "claude-x", 1),
    ]
    assert _value(registry, "relay_prompt_cache_tokens_total") == 8_000
    assert _value(registry, "relay_saved_usd_total") == pytest.approx(8_000 * 2.7e-6)


def test_a_cache_write_premium_never_counts_as_negative_savings() -> None:
    stats, _, registry = _stats()
    prices = Prices(input=3.0, output=15.0, cached_input=0.3, cache_write=3.75)
    usage = Usage(input_tokens=5_000, output_tokens=10, cache_write_tokens=5_000)
    stats.record_request(
        provider="anthropic",
        model="claude-x",
        status=200,
        usage=usage,
        cost_usd=prices.cost(usage),
        prices=prices,
    )
    assert stats.snapshot()["totals"]["saved_usd"] == 0
    assert _value(registry, "relay_saved_usd_total") == 0


def test_series_buckets_by_minute_and_five_minutes_and_forget_the_old() -> None:
    start = 1_800_000_000.0 - (1_800_000_000 % 300)  # on a five-minute boundary
    stats, clock, _ = _stats(start)
    stats.record_refused(500)
    clock.now += 61  # the next minute, same five minutes
    stats.record_cache("exact", saved_usd=0.5)
    stats.record_cache("miss")
    hour = stats.snapshot()["series"]["hour"]
    day = stats.snapshot()["series"]["day"]
    assert (hour["bucket_seconds"], len(hour["t"])) == (60, 60)
    assert (day["bucket_seconds"], len(day["t"])) == (300, 288)
    assert hour["t"][-2:] == [int(start), int(start) + 60]
    assert hour["errors"][-2:] == [1, 0]
    assert hour["exact_hits"][-2:] == [0, 1]
    assert hour["saved_usd"][-1] == 0.5
    assert (day["requests"][-1], day["exact_hits"][-1], day["misses"][-1]) == (1, 1, 1)
    assert sum(day["requests"]) == 1
    clock.now += 3_600  # an hour later: the minute ring has forgotten, the day ring has not
    snap = stats.snapshot()
    assert sum(snap["series"]["hour"]["requests"]) == 0
    assert sum(snap["series"]["day"]["requests"]) == 1
    clock.now += 86_400
    snap = stats.snapshot()
    assert sum(snap["series"]["day"]["requests"]) == 0
    assert snap["totals"]["requests"] == 1  # totals are since start


def test_a_slot_reused_a_ring_later_starts_from_zero() -> None:
    stats, clock, _ = _stats()
    stats.record_refused(400)
    clock.now += 3_600  # same slot of the minute ring, a different minute
    stats.record_refused(400)
    assert stats.snapshot()["series"]["hour"]["requests"][-1] == 1


def test_spend_rows_are_bounded() -> None:
    stats, _, _ = _stats()
    for i in range(MAX_SPEND_ROWS + 50):
        stats.record_request(
            provider="openai", model=f"m{i}", status=200, usage=Usage(1, 1), cost_usd=0.001
        )
    spend = stats.snapshot()["spend"]
    assert len(spend) == MAX_SPEND_ROWS + 1
    other = next(r for r in spend if r["model"] == OTHER)
    assert other["requests"] == 50
    assert sum(r["requests"] for r in spend) == MAX_SPEND_ROWS + 50


def test_a_name_registered_elsewhere_first_is_left_to_it(caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    other = Counter("relay_coalesced_requests", "Someone else's.", registry=registry)
    stats = GatewayStats(registry)
    assert "relay_coalesced_requests_total is already registered" in caplog.text
    stats.record_cache("coalesced", saved_usd=0.25)
    other.inc(7)
    assert _value(registry, "relay_coalesced_requests_total") == 7  # theirs is exported
    assert stats.snapshot()["cache"]["coalesced"] == 1  # ours still counts
    assert _value(registry, "relay_saved_usd_total") == 0.25
