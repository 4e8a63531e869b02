"""``GET /metrics`` (no auth): the Prometheus text exposition of the app's registry."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import Response

from relay_context.service.deps import StateDep

router = APIRouter(tags=["operations"])
log = logging.getLogger(__name__)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(state: StateDep) -> Response:
    state.publish_settings_metrics()
    # Keys may be created by `relay keys` or another process: counted at each scrape.
    try:
        with state.tracer.start_as_current_span("db.api_key.count"):
            state.metrics.api_keys_active.set(await state.api_keys.count_active())
    except Exception as exc:  # a scrape still answers while the database is down
        log.warning("could not count API keys: %s", exc)
    return Response(state.metrics.render(), media_type=state.metrics.content_type)
