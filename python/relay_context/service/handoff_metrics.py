"""The handoff relay's Prometheus metrics, on the app's registry (``ServiceMetrics.handoff``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class HandoffMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.operations = Counter(
            "relay_handoff_operations",
            "Handoff operations served, by operation (push, pull, peek, publish, delete).",
            ("operation",),
            registry=r,
        )
        self.bytes = Counter(
            "relay_handoff_bytes",
            "Payload bytes pushed (in) and pulled (out; as stored, before the client reads).",
            ("direction",),
            registry=r,
        )
        self.dedup_hits = Counter(
            "relay_handoff_dedup_hits",
            "Pushes whose bytes were already stored (kept once, reference counted).",
            registry=r,
        )
        self.quota_refusals = Counter(
            "relay_handoff_quota_refusals",
            "Pushes refused with 402, by quota.",
            ("quota",),
            registry=r,
        )
        self.deliveries = Counter(
            "relay_handoff_fanout_deliveries",
            "Channel events sent to subscribers (WebSocket and SSE).",
            registry=r,
        )
        self.slow_consumers = Counter(
            "relay_handoff_slow_consumers", "Subscribers cut for falling behind.", registry=r
        )
        self.subscribers = Gauge(
            "relay_handoff_subscribers", "Open channel subscriptions of this process.", registry=r
        )


__all__ = ["HandoffMetrics"]
