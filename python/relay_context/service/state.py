"""What one running app holds: settings, database, engine, keys, limiter, metrics, tracer.

Built by the app's lifespan (``create_app``) and kept in ``app.state.relay``; routes reach it
through the dependencies in :mod:`relay_context.service.deps`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer

from relay_context.config.live import LiveSettings
from relay_context.config.settings import Settings
from relay_context.core.ratelimit import SlidingWindowRateLimiter
from relay_context.engine.cache import ContextCache
from relay_context.engine.context_engine import ContextEngine
from relay_context.engine.store.sql import SqlSessionStore
from relay_context.gateway import Gateway
from relay_context.handoff import HandoffRelay
from relay_context.persistence import Database
from relay_context.security.api_keys import ApiKeyStore
from relay_context.security.auth import AuthService
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
    #: The one database of the process: sessions and API keys register their tables on it.
    database: Database
    #: The context engine's session store (on ``database``); only the engine uses it.
    store: SqlSessionStore
    api_keys: ApiKeyStore
    auth: AuthService
    limiter: SlidingWindowRateLimiter
    metrics: ServiceMetrics
    tracer_provider: TracerProvider
    tracer: Tracer
    #: The context engine (one per app) on ``store`` and ``cache``; the context routes use it.
    engine: ContextEngine
    #: The window cache (Redis when ``REDIS_URL`` is set, else in process), shared with ``store``.
    cache: ContextCache
    #: The one ``redis.asyncio.Redis`` client of the process when ``REDIS_URL`` is set: the
    #: window cache, the engine's notifications and the health check share it.
    redis: Any | None = None
    started_at: float = field(default_factory=time.monotonic)
    #: Limiters replaced by a reload, closed at shutdown (requests may still hold them).
    retired_limiters: list[SlidingWindowRateLimiter] = field(default_factory=list)
    #: Set when the server is asked to stop: open SSE streams end at once.
    shutting_down: asyncio.Event = field(default_factory=asyncio.Event)
    #: The LLM gateway (``/v1/*``), built with the state (``build_state``).
    gateway: Gateway | None = None
    #: The handoff relay (on ``database``, fan-out through ``redis``); the handoff routes use it.
    handoff: HandoffRelay | None = None

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
        self.shutting_down.set()
        await self.engine.close()  # the store, cache and Redis client it was given are ours
        if self.handoff is not None:
            await self.handoff.close()
        with contextlib.suppress(Exception):
            await self.cache.close()
        for limiter in [self.limiter, *self.retired_limiters]:
            limiter.close()
        if self.redis is not None:
            with contextlib.suppress(Exception):
                await self.redis.aclose()
        if self.gateway is not None:
            await self.gateway.close()
        await self.store.close()
        await self.database.close()
        self.tracer_provider.shutdown()


def stop_streams_on_signals(state: ServiceState) -> None:
    """End open SSE streams as soon as the server is asked to stop.

    uvicorn waits for open connections to finish before it runs the lifespan's shutdown, and an
    SSE stream never finishes by itself; so the SIGINT/SIGTERM handlers uvicorn installed are
    wrapped to set ``state.shutting_down`` first (the streams then end, and uvicorn proceeds).
    Only in the main thread (signal handlers live there; apps served from a thread end their
    streams at lifespan shutdown, and uvicorn's ``timeout_graceful_shutdown`` bounds the wait)."""
    if threading.current_thread() is not threading.main_thread():
        return
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(sig)

        def handler(signum: int, frame: Any, previous: Any = previous) -> None:
            loop.call_soon_threadsafe(state.shutting_down.set)
            if callable(previous):
                previous(signum, frame)
            else:  # SIG_DFL / SIG_IGN: behave as before
                signal.signal(signum, previous)
                if previous == signal.SIG_DFL:
                    signal.raise_signal(signum)

        signal.signal(sig, handler)


__all__ = ["ServiceState", "build_limiter", "stop_streams_on_signals"]
