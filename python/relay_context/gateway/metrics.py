"""The gateway's Prometheus metrics, registered in the app's registry (one per app)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
TOKEN_BUCKETS = (16, 64, 256, 1024, 4096, 16384, 65536, 131072, 262144, 1048576)
OVERHEAD_BUCKETS = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.requests = Counter(
            "relay_gateway_requests",
            "Gateway requests, by client-facing model, provider and status.",
            ("model", "provider", "status"),
            registry=r,
        )
        self.upstream_latency = Histogram(
            "relay_upstream_latency_seconds",
            "Time until the upstream's response headers, by provider.",
            ("provider",),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.overhead = Histogram(
            "relay_gateway_overhead_seconds",
            "Time spent in Relay per gateway request (excluding the upstream's).",
            buckets=OVERHEAD_BUCKETS,
            registry=r,
        )
        self.request_tokens = Histogram(
            "relay_request_tokens",
            "Prompt tokens of gateway requests (Relay's exact count), by model.",
            ("model",),
            buckets=TOKEN_BUCKETS,
            registry=r,
        )
        self.cost = Counter(
            "relay_gateway_cost_usd",
            "Cost of gateway calls in USD, by model.",
            ("model",),
            registry=r,
        )
        self.tokens = Counter(
            "relay_gateway_tokens",
            "Tokens of gateway calls, by model and kind (input, output, cached_input).",
            ("model", "kind"),
            registry=r,
        )
        self.fuzzy_refusals = Counter(
            "relay_fuzzy_cache_refusals",
            "Near cached requests the fuzzy cache's guard refused, by reason.",
            ("reason",),
            registry=r,
        )
        self.breaker_state = Gauge(
            "relay_circuit_breaker_state",
            "Circuit breaker per upstream deployment: 0 closed, 1 half-open, 2 open.",
            ("upstream",),
            registry=r,
        )
        self.rate_limit_rejections = Counter(
            "relay_rate_limit_rejections",
            "Gateway requests refused by a key's limits, by limit (rpm, tpm, budget).",
            ("limit",),
            registry=r,
        )
        self.retries = Counter(
            "relay_gateway_retries",
            "Upstream attempts retried, by deployment.",
            ("upstream",),
            registry=r,
        )
        self.fallbacks = Counter(
            "relay_gateway_fallbacks",
            "Requests moved to a fallback deployment.",
            ("model",),
            registry=r,
        )
        self.context_fits = Counter(
            "relay_gateway_context_fits",
            "Requests whose messages were cut to fit the window, by policy.",
            ("policy",),
            registry=r,
        )
        self.context_dropped = Counter(
            "relay_gateway_context_dropped_messages",
            "Messages removed to fit the window.",
            registry=r,
        )


__all__ = ["GatewayMetrics"]
