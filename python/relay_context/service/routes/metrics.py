"""``GET /metrics`` (no auth): the Prometheus text exposition of the app's registry."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from relay_context.service.deps import StateDep

router = APIRouter(tags=["operations"])


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(state: StateDep) -> Response:
    state.publish_settings_metrics()
    return Response(state.metrics.render(), media_type=state.metrics.content_type)
