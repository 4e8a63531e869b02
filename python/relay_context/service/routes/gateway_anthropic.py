"""The Anthropic-compatible gateway routes: ``POST /v1/messages`` and
``/v1/messages/count_tokens``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from relay_context.service.routes.gateway_http import relay_to_gateway

router = APIRouter(prefix="/v1", tags=["gateway"])


@router.post("/messages", summary="Anthropic Messages (any configured model)")
async def messages(request: Request) -> Response:
    return await relay_to_gateway(request, "messages")


@router.post("/messages/count_tokens", summary="Anthropic token counting")
async def count_tokens(request: Request) -> Response:
    return await relay_to_gateway(request, "count_tokens")
