"""``create_app(settings)``: the FastAPI application, assembled from its parts.

Everything the app holds lives in one :class:`~relay_context.service.state.ServiceState`
(``app.state.relay``), built here; the lifespan opens the store (migrating it) and Redis, and
closes everything at shutdown. Routers: ``routes/health.py``, ``routes/metrics.py``,
``routes/keys.py``; the context routes (``routes/context.py``) mount the same way.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from opentelemetry.sdk.trace.export import SpanExporter
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Route

from relay_context._version import __version__
from relay_context.config.live import LiveSettings
from relay_context.config.settings import Settings
from relay_context.core.compression import CompressionEngine
from relay_context.engine.cache import open_cache
from relay_context.engine.context_engine import ContextEngine
from relay_context.engine.store import store_for
from relay_context.gateway import Gateway
from relay_context.handoff import HandoffRelay
from relay_context.persistence import database_for
from relay_context.persistence.redis import redis_client_for
from relay_context.security.api_keys import ApiKeyStore
from relay_context.security.auth import AuthService
from relay_context.service.append_fast_path import AppendFastPath
from relay_context.service.errors import install_error_handlers
from relay_context.service.gateway_fast_path import GatewayFastPath
from relay_context.service.heap_trim import HeapTrimmer
from relay_context.service.metrics import ServiceMetrics
from relay_context.service.middleware import RequestContextMiddleware
from relay_context.service.openapi import document_live_limits
from relay_context.service.routes import context, dashboard, gateway, handoff, health, keys, metrics
from relay_context.service.state import ServiceState, build_limiter, stop_streams_on_signals
from relay_context.service.telemetry import exports_spans, get_tracer, make_tracer_provider

if TYPE_CHECKING:
    from relay_context.service.mcp_http import McpEndpoint

log = logging.getLogger(__name__)

#: Response headers browsers may read on cross-origin calls.
EXPOSED_HEADERS = [
    "X-Request-ID",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "Retry-After",
]


def build_state(settings: Settings, span_exporter: SpanExporter | None = None) -> ServiceState:
    live = LiveSettings(settings)
    current = live.current
    provider = make_tracer_provider(current, span_exporter)
    compression = CompressionEngine(current.compression_algorithm, current.compression_level)
    # One of each per process, shared: the database (sessions, API keys), the Redis client
    # (window cache, notifications, health).
    database = database_for(current)
    redis = redis_client_for(current) if current.redis_url else None
    cache = open_cache(current, codec=compression, redis=redis)
    store = store_for(current, codec=compression, cache=cache, database=database)
    state = ServiceState(
        live=live,
        database=database,
        store=store,
        api_keys=ApiKeyStore(database),
        auth=AuthService(current),
        limiter=build_limiter(current),
        metrics=ServiceMetrics(),
        tracer_provider=provider,
        tracer=get_tracer(provider, recording=exports_spans(current, span_exporter)),
        engine=ContextEngine(
            current, compression=compression, store=store, cache=cache, redis=redis
        ),
        cache=cache,
        redis=redis,
        handoff=HandoffRelay(
            current.handoff,
            database=database,
            data_dir=current.data_dir,
            redis=redis,
            redis_prefix=current.redis_key_prefix,
        ),
    )
    state.gateway = Gateway(
        lambda: live.current.gateway,
        api_keys=state.api_keys,
        auth=state.auth,
        registry=state.metrics.registry,
        redis_url=current.redis_url,
        redis_cluster=current.redis_cluster,
        redis_key_prefix=current.redis_key_prefix,
        tracer=state.tracer,
        database=state.database,
        redis=redis,
    )
    live.on_change(state.on_settings_change)
    state.metrics.build_info.info(
        {"version": __version__, "environment": current.environment.value}
    )
    state.publish_settings_metrics()
    return state


def _mcp_endpoint(state: ServiceState) -> McpEndpoint | None:
    """The handoff relay's MCP server at ``/mcp`` (streamable HTTP), when the relay is on and
    the ``mcp`` extra is installed; ``None`` otherwise."""
    if state.handoff is None or importlib.util.find_spec("mcp") is None:
        return None
    from relay_context.service.mcp_http import McpEndpoint

    return McpEndpoint()


def _heap_trimmer(state: ServiceState) -> HeapTrimmer:
    trims = state.metrics.heap_trims

    def count(released: bool) -> None:
        trims.labels(released="true" if released else "false").inc()

    return HeapTrimmer(state.settings.heap_trim_interval_seconds, on_trim=count)


def create_app(
    settings: Settings | None = None, *, span_exporter: SpanExporter | None = None
) -> FastAPI:
    """The Relay service for ``settings`` (default: from the environment).

    ``span_exporter`` receives every span as it ends (tests pass an in-memory one). Logging
    is left to the caller; :func:`relay_context.main.serve_app` (``relay serve``, ``uvicorn
    relay_context.main:app``) sets up the JSON logs."""
    if settings is None:
        settings = Settings()
    state = build_state(settings, span_exporter)
    mcp = _mcp_endpoint(state)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with state.tracer.start_as_current_span("db.open"):
            await state.database.open()  # migrates every registered component
        with state.tracer.start_as_current_span("context.engine.open"):
            await state.engine.open()
        if state.gateway is not None:
            await state.gateway.open()
        if state.handoff is not None:
            await state.handoff.open()
        stop_streams_on_signals(state)
        try:
            state.metrics.api_keys_active.set(await state.api_keys.count_active())
            state.metrics.sessions_active.set(await state.engine.count_live_sessions())
            log.info(
                "relay service ready",
                extra={
                    "environment": settings.environment.value,
                    "database": "postgresql" if settings.uses_postgres else "sqlite",
                    "redis": bool(settings.redis_url),
                },
            )
            async with AsyncExitStack() as extras:
                await extras.enter_async_context(_heap_trimmer(state).running())
                if mcp is not None:  # the MCP session manager runs while the service does
                    await extras.enter_async_context(mcp.running())
                yield
        finally:
            await state.close()

    app = FastAPI(
        title="Relay context service",
        version=__version__,
        description="Context windows, token budgets and API keys for LLM applications.",
        docs_url="/docs",
        redoc_url="/redoc",
        openapi_url="/openapi.json",
        lifespan=lifespan,
    )
    app.state.relay = state
    base_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        return document_live_limits(base_openapi(), state.settings.max_window_tokens)

    app.openapi = openapi  # type: ignore[method-assign]
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(keys.router)
    app.include_router(context.router)
    app.include_router(dashboard.router)
    app.include_router(gateway.router)
    app.include_router(handoff.router)
    if mcp is not None:
        from relay_context.service.mcp_http import PATH

        # An ASGI endpoint (not a request handler): Starlette passes it the raw scope.
        app.router.routes.append(
            Route(PATH, endpoint=mcp, methods=["GET", "POST", "DELETE"], include_in_schema=False)
        )
    # Middleware: the last added is the outermost. Appends and the gateway's fixed paths skip
    # FastAPI's routing and dependency resolution (service/append_fast_path.py,
    # service/gateway_fast_path.py), inside CORS and the request
    # middleware like every route. CORS answers preflights inside the request
    # middleware, so those answers get the request id and the security headers too.
    app.add_middleware(AppendFastPath)
    app.add_middleware(GatewayFastPath)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_credentials="*" not in settings.cors_origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key", "X-Request-ID"],
            expose_headers=EXPOSED_HEADERS,
            max_age=600,
        )
    app.add_middleware(RequestContextMiddleware)
    return app


__all__ = ["build_state", "create_app"]
