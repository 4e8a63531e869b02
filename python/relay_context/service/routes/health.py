"""``GET /health`` (no auth): status, version, environment, each dependency's check with its
latency, uptime. 503 when a dependency is down. ``GET /health/live``: the process answers at
all — the liveness probe, which must not fail (and restart the pod) while a dependency is down."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from relay_context._version import __version__
from relay_context.service.deps import StateDep
from relay_context.service.state import ServiceState

router = APIRouter(tags=["operations"])

#: A dependency slower than this is reported down.
CHECK_TIMEOUT_SECONDS = 5.0


async def _check(name: str, state: ServiceState, probe: Any) -> dict[str, Any]:
    started = time.perf_counter()
    with state.tracer.start_as_current_span(f"{name}.ping"):
        try:
            await asyncio.wait_for(probe(), CHECK_TIMEOUT_SECONDS)
        except Exception as exc:
            return {
                "status": "unhealthy",
                "latency_ms": round((time.perf_counter() - started) * 1000, 3),
                "error": f"{type(exc).__name__}: {exc}"[:300],
            }
    return {"status": "healthy", "latency_ms": round((time.perf_counter() - started) * 1000, 3)}


@router.get("/health", summary="Service health")
async def health(state: StateDep) -> JSONResponse:
    checks: dict[str, Any] = {
        "database": await _check("db", state, state.database.ping),
    }
    checks["database"]["backend"] = "postgresql" if state.settings.uses_postgres else "sqlite"
    if state.redis is not None:
        checks["redis"] = await _check("redis", state, state.redis.ping)
    healthy = all(c["status"] == "healthy" for c in checks.values())
    body = {
        "status": "healthy" if healthy else "unhealthy",
        "version": __version__,
        "environment": state.settings.environment.value,
        "checks": checks,
        "uptime_seconds": round(time.monotonic() - state.started_at, 3),
    }
    if state.gateway is not None:  # an open circuit is the upstream's trouble, not ours: 200
        body["gateway"] = {"circuits": state.gateway.breaker_states()}
    return JSONResponse(body, status_code=200 if healthy else 503)


@router.get("/health/live", summary="Liveness: the process answers")
async def live(state: StateDep) -> JSONResponse:
    # No dependency is checked: a database outage makes /health (readiness) fail and takes the
    # replica out of the load balancer; restarting it would not bring the database back.
    return JSONResponse(
        {"status": "alive", "uptime_seconds": round(time.monotonic() - state.started_at, 3)}
    )
