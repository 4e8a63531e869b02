"""The exact cache's own Prometheus metric: store failures. Hits, misses and saved USD
(``relay_cache_hits_total{kind}``, ``relay_cache_misses_total``, ``relay_saved_usd_total``)
are counted through the gateway's stats (``gateway/savings.py``), so ``/metrics`` and the
dashboard agree."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class CacheMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.store_errors = Counter(
            "relay_cache_store_errors",
            "Cache store calls that failed or timed out, by store.",
            ("store",),
            registry=registry,
        )


__all__ = ["CacheMetrics"]
