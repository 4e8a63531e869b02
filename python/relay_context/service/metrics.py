"""Every Prometheus metric of the service, in one per-app :class:`ServiceMetrics`.

Each app gets its own :class:`~prometheus_client.CollectorRegistry`, so two apps in one process
(tests) share nothing. Routes update the metrics through ``request.app.state.relay.metrics``
(``MetricsDep`` in :mod:`relay_context.service.deps`); ``GET /metrics`` renders the registry.
"""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from relay_context.service.handoff_metrics import HandoffMetrics

#: Latency buckets, in seconds: 1 ms to 10 s.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class ServiceMetrics:
    """The service's metrics (names are the dashboard's and the alert rules')."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # --- HTTP ------------------------------------------------------------------------------
        self.http_request_duration = Histogram(
            "relay_http_request_duration_seconds",
            "Time to serve an HTTP request, by route template.",
            ("method", "route", "status"),
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.http_requests = Counter(
            "relay_http_requests",
            "HTTP requests served, by route template and status.",
            ("method", "route", "status"),
            registry=r,
        )
        self.http_requests_in_flight = Gauge(
            "relay_http_requests_in_flight", "HTTP requests being served.", registry=r
        )
        self.errors = Counter(
            "relay_errors",
            "Error responses, by error type and HTTP status.",
            ("type", "status"),
            registry=r,
        )
        # --- context windows -------------------------------------------------------------------
        self.context_tokens_used = Gauge(
            "relay_context_tokens_used",
            "Tokens in the most recently served context window.",
            registry=r,
        )
        self.context_max_tokens = Gauge(
            "relay_context_max_tokens", "The configured max_window_tokens.", registry=r
        )
        self.context_drift_score = Gauge(
            "relay_context_drift_score",
            "Drift score (0 = on topic, 1 = unrelated) of the latest message checked.",
            registry=r,
        )
        self.tokens_counted = Counter(
            "relay_tokens_counted", "Tokens counted by the service.", registry=r
        )
        # --- cache -----------------------------------------------------------------------------
        self.cache_hits = Counter(
            "relay_context_cache_hits", "Context-window cache hits.", registry=r
        )
        self.cache_misses = Counter(
            "relay_context_cache_misses", "Context-window cache misses.", registry=r
        )
        self.cache_hit_rate = Gauge(
            "relay_cache_hit_rate", "Context cache hits / lookups since start.", registry=r
        )
        # --- rate limiting ---------------------------------------------------------------------
        self.rate_limit_limit = Gauge(
            "relay_rate_limit_limit", "Requests allowed per principal per window.", registry=r
        )
        self.rate_limit_window_seconds = Gauge(
            "relay_rate_limit_window_seconds", "The rate-limit window, in seconds.", registry=r
        )
        self.rate_limit_remaining = Gauge(
            "relay_rate_limit_remaining",
            "Requests left in the window of the principal of the latest request.",
            registry=r,
        )
        self.rate_limit_decisions = Counter(
            "relay_rate_limit_decisions",
            "Rate-limit decisions, by outcome (allowed, limited).",
            ("outcome",),
            registry=r,
        )
        # --- compression -----------------------------------------------------------------------
        self.compression_ratio = Gauge(
            "relay_compression_ratio", "Original / compressed size, latest.", registry=r
        )
        self.compression_saved_tokens = Counter(
            "relay_compression_saved_tokens", "Tokens saved by compression.", registry=r
        )
        # --- sessions and auth -----------------------------------------------------------------
        self.sessions_active = Gauge("relay_sessions_active", "Live sessions.", registry=r)
        self.sessions_created = Counter(
            "relay_sessions_created", "Sessions created since start.", registry=r
        )
        self.api_keys_active = Gauge("relay_api_keys_active", "API keys not revoked.", registry=r)
        self.auth_failures = Counter(
            "relay_auth_failures", "Rejected credentials, by method.", ("method",), registry=r
        )
        self.build_info = Info("relay_build", "Version and environment.", registry=r)
        # --- process ---------------------------------------------------------------------------
        self.heap_trims = Counter(
            "relay_process_heap_trims",
            "malloc_trim calls handing free heap pages back to the OS, by whether any were.",
            ("released",),
            registry=r,
        )
        # --- handoff relay ---------------------------------------------------------------------
        self.handoff = HandoffMetrics(r)
        self._cache_lock = threading.Lock()
        self._cache_hits = 0
        self._cache_lookups = 0

    def record_cache_lookup(self, hit: bool) -> None:
        """Counts a cache lookup and updates ``relay_cache_hit_rate``."""
        (self.cache_hits if hit else self.cache_misses).inc()
        with self._cache_lock:
            self._cache_lookups += 1
            self._cache_hits += int(hit)
            self.cache_hit_rate.set(self._cache_hits / self._cache_lookups)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


__all__ = ["DURATION_BUCKETS", "ServiceMetrics"]
