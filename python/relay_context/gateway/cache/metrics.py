"""The caches' Prometheus metrics, one set per registry (:func:`cache_metrics`).

``relay_cache_hits_total{kind}`` is every cache's: the gateway's exact cache counts
``kind="exact"`` (other caches add theirs) and the service's context cache ``kind="context"``,
so both take the counters from here rather than registering the name twice.
"""

from __future__ import annotations

import threading
from weakref import WeakKeyDictionary

from prometheus_client import CollectorRegistry, Counter


class CacheMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        #: ``relay_cache_hits_total{kind}``.
        self.hits = Counter(
            "relay_cache_hits",
            "Answers served from a cache, by kind.",
            ("kind",),
            registry=registry,
        )
        #: ``relay_cache_misses_total``: looked up, not found.
        self.misses = Counter(
            "relay_cache_misses", "Cache lookups that found no entry.", registry=registry
        )
        #: ``relay_saved_usd_total``: what the cached answers cost when they were first made.
        self.saved_usd = Counter(
            "relay_saved_usd", "USD not spent thanks to cached answers.", registry=registry
        )
        self.store_errors = Counter(
            "relay_cache_store_errors",
            "Cache store calls that failed or timed out, by store.",
            ("store",),
            registry=registry,
        )


_BY_REGISTRY: WeakKeyDictionary[CollectorRegistry, CacheMetrics] = WeakKeyDictionary()
_LOCK = threading.Lock()


def cache_metrics(registry: CollectorRegistry) -> CacheMetrics:
    """The registry's cache metrics, made on first use."""
    with _LOCK:
        metrics = _BY_REGISTRY.get(registry)
        if metrics is None:
            metrics = _BY_REGISTRY[registry] = CacheMetrics(registry)
        return metrics


__all__ = ["CacheMetrics", "cache_metrics"]
