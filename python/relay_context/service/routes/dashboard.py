"""``GET /dashboard``: a live page (plain HTML + JS, no build step) fed by
``GET /api/v1/dashboard/stream`` (Server-Sent Events of :func:`snapshot`, ADMIN only).

The page itself holds no data and needs no credentials; its script reads an API key or a JWT
from the URL fragment (``/dashboard#key=relay_...`` or ``#token=<jwt>``, never sent to the
server nor logged) or from the form on the page, keeps it in ``sessionStorage`` and sends it as
``X-API-Key`` / ``Authorization: Bearer`` on ``fetch`` (``EventSource`` cannot send headers).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from relay_context._version import __version__
from relay_context.security.auth import Principal
from relay_context.service.deps import AdminPrincipal, AuthFirstRoute, StateDep
from relay_context.service.openapi import error_responses, event_stream_responses
from relay_context.service.sse import EventStreamResponse, event_stream, sse_event
from relay_context.service.state import ServiceState

router = APIRouter(tags=["dashboard"], route_class=AuthFirstRoute)

#: The page may run only its own script and style, and talk only to this origin.
DASHBOARD_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_STATIC = {
    "": ("dashboard.html", "text/html; charset=utf-8"),
    "app.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "style.css": ("dashboard.css", "text/css; charset=utf-8"),
    # The charting library, uPlot from npm as published (static/vendor/README.md).
    "vendor/uplot.js": ("vendor/uplot.iife.min.js", "text/javascript; charset=utf-8"),
    "vendor/uplot.css": ("vendor/uplot.min.css", "text/css; charset=utf-8"),
}


def _asset(name: str) -> bytes:
    return (
        resources.files("relay_context.service").joinpath("static", *name.split("/")).read_bytes()
    )


def _static_response(key: str) -> Response:
    filename, media_type = _STATIC[key]
    return Response(
        _asset(filename), media_type=media_type, headers={"Content-Security-Policy": DASHBOARD_CSP}
    )


@router.get("/dashboard", include_in_schema=False)
async def dashboard_page() -> Response:
    return _static_response("")


@router.get("/dashboard/app.js", include_in_schema=False)
async def dashboard_script() -> Response:
    return _static_response("app.js")


@router.get("/dashboard/style.css", include_in_schema=False)
async def dashboard_style() -> Response:
    return _static_response("style.css")


@router.get("/dashboard/vendor/uplot.js", include_in_schema=False)
async def dashboard_chart_script() -> Response:
    return _static_response("vendor/uplot.js")


@router.get("/dashboard/vendor/uplot.css", include_in_schema=False)
async def dashboard_chart_style() -> Response:
    return _static_response("vendor/uplot.css")


def _sample(state: ServiceState, name: str) -> float:
    value = state.metrics.registry.get_sample_value(name)
    return float(value) if value is not None else 0.0


async def snapshot(state: ServiceState, principal: Principal) -> dict[str, Any]:
    """What the dashboard shows, read from the app's Prometheus registry (the same numbers as
    ``/metrics``) and the store."""
    settings = state.settings
    with state.tracer.start_as_current_span("db.count_sessions"):
        active = await state.engine.count_live_sessions()
    state.metrics.sessions_active.set(active)
    with state.tracer.start_as_current_span("db.count_api_keys"):
        state.metrics.api_keys_active.set(await state.api_keys.count_active())
    handoff = None
    if state.handoff is not None:
        with state.tracer.start_as_current_span("db.handoff.stats"):
            handoff = (await state.handoff.stats()).to_json()
    used = _sample(state, "relay_context_tokens_used")
    budget = _sample(state, "relay_context_max_tokens")
    failures = sum(
        _sample_labeled(state, "relay_auth_failures_total", {"method": m})
        for m in ("jwt", "api_key")
    )
    return {
        "time": datetime.now(timezone.utc).isoformat(),
        "version": __version__,
        "environment": settings.environment.value,
        "uptime_seconds": round(time.monotonic() - state.started_at, 3),
        "backends": {
            "database": "postgresql" if settings.uses_postgres else "sqlite",
            "redis": state.redis is not None,
        },
        "tokens": {
            "used": int(used),
            "budget": int(budget),
            "utilization": used / budget if budget else 0.0,
            "counted_total": int(_sample(state, "relay_tokens_counted_total")),
        },
        "rate_limit": {
            "limit": int(_sample(state, "relay_rate_limit_limit")),
            "remaining": int(_sample(state, "relay_rate_limit_remaining")),
            "window_seconds": int(_sample(state, "relay_rate_limit_window_seconds")),
            "limited_total": int(
                _sample_labeled(state, "relay_rate_limit_decisions_total", {"outcome": "limited"})
            ),
        },
        "sessions": {
            "active": active,
            "created_total": int(_sample(state, "relay_sessions_created_total")),
        },
        "compression": {
            "ratio": _sample(state, "relay_compression_ratio"),
            "tokens_saved": int(_sample(state, "relay_compression_saved_tokens_total")),
        },
        "cache": {"hit_rate": _sample(state, "relay_cache_hit_rate")},
        # Payloads, bytes (as pushed / distinct / stored), dedup savings, live subscribers.
        "handoff": handoff,
        # Savings, cache outcomes, spend, breakers and series: GET /api/v1/gateway/stats.
        "gateway": state.gateway.stats_report() if state.gateway is not None else None,
        "drift_score": _sample(state, "relay_context_drift_score"),
        "auth": {
            "jwt_algorithm": settings.jwt_algorithm,
            "api_keys_active": int(_sample(state, "relay_api_keys_active")),
            "failures_total": int(failures),
            "principal": principal.id,
            "role": principal.role.value,
            "method": principal.method,
        },
    }


def _sample_labeled(state: ServiceState, name: str, labels: dict[str, str]) -> float:
    value = state.metrics.registry.get_sample_value(name, labels)
    return float(value) if value is not None else 0.0


#: The dashboard's API routes authenticate and have no parameters nor body.
_DASHBOARD_ERRORS = error_responses(401, 403, 429)


@router.get(
    "/api/v1/dashboard/snapshot",
    tags=["dashboard"],
    summary="The dashboard's figures",
    operation_id="dashboard_snapshot",
    responses=_DASHBOARD_ERRORS,
)
async def dashboard_snapshot(principal: AdminPrincipal, state: StateDep) -> dict[str, Any]:
    return await snapshot(state, principal)


@router.get(
    "/api/v1/dashboard/stream",
    tags=["dashboard"],
    summary="Server-Sent Events: a snapshot every dashboard_interval_seconds",
    operation_id="dashboard_stream",
    response_class=EventStreamResponse,
    responses={
        **event_stream_responses("snapshot", "The dashboard's figures, once per interval"),
        **error_responses(401, 403, 429, stream=True),
    },
)
async def dashboard_stream(
    request: Request, principal: AdminPrincipal, state: StateDep
) -> EventStreamResponse:
    interval = state.settings.dashboard_interval_seconds

    async def snapshots() -> AsyncIterator[bytes]:
        number = 0
        while True:
            number += 1
            data = json.dumps(await snapshot(state, principal), separators=(",", ":"))
            yield sse_event(data, event="snapshot", event_id=number)
            await asyncio.sleep(interval)

    return event_stream(request, state, snapshots())


__all__ = ["DASHBOARD_CSP", "router", "snapshot"]
