"""What one running app holds: settings, store, keys, limiter, metrics, tracer.

Built by the app's lifespan (``create_app``) and kept in ``app.state.relay``; routes reach it
through the dependencies in :mod:`relay_context.service.deps`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer

from relay_context.config.live import LiveSettings
from relay_context.config.settings import Settings
from relay_context.engine.store.sql import SqlSessionStore
from relay_context.security.api_keys import ApiKeyStore
from relay_context.security.auth import AuthService
from relay_context.security.rate_limiter import SlidingWindowRateLimiter
from relay_context.service.metrics import ServiceMetrics

log = logging.getLogger(__name__)


def build_limiter(settings: Settings) -> SlidingWindowRateLimiter:
    """The per-principal limiter: Redis-backed when ``REDIS_URL`` is set (keys under
    ``REDIS_KEY_PREFIX + "rl:"``), in process otherwise."""
    return SlidingWindowRateLimiter.from_settings(
        settings, key_prefix=settings.redis_key_prefix + "rl:"
    )


@dataclass
class ServiceState:
    live: LiveSettings
    store: SqlSessionStore
    api_keys: ApiKeyStore
    auth: AuthService
    limiter: SlidingWindowRateLimiter
    metrics: ServiceMetrics
    tracer_provider: TracerProvider
    tracer: Tracer
    #: ``redis.asyncio.Redis`` when ``REDIS_URL`` is set (health checks; the context cache).
    redis: Any | None = None
    started_at: float = field(default_factory=time.monotonic)
    #: Limiters replaced by a reload, closed at shutdown (requests may still hold them).
    retired_limiters: list[SlidingWindowRateLimiter] = field(default_factory=list)

    @property
    def settings(self) -> Settings:
        """The settings in force (the YAML file's reloadable values included)."""
        return self.live.current

    def refresh_settings(self) -> None:
        self.live.refresh()

    def on_settings_change(self, old: Settings, new: Settings) -> None:
        if (old.rate_limit_requests, old.rate_limit_window_seconds) != (
            new.rate_limit_requests,
            new.rate_limit_window_seconds,
        ):
            # With Redis the windows carry over (same keys); in process they start afresh.
            self.retired_limiters.append(self.limiter)
            self.limiter = build_limiter(new)
            log.info(
                "rate limit is now %d per %d s",
                new.rate_limit_requests,
                new.rate_limit_window_seconds,
            )
        self.publish_settings_metrics()

    def publish_settings_metrics(self) -> None:
        s = self.settings
        self.metrics.rate_limit_limit.set(s.rate_limit_requests)
        self.metrics.rate_limit_window_seconds.set(s.rate_limit_window_seconds)
        self.metrics.context_max_tokens.set(s.max_window_tokens)

    async def close(self) -> None:
        for limiter in [self.limiter, *self.retired_limiters]:
            limiter.close()
        if self.redis is not None:
            await self.redis.aclose()
        await self.store.close()
        self.tracer_provider.shutdown()


__all__ = ["ServiceState", "build_limiter"]
