"""The OpenAI-compatible gateway routes: ``POST /v1/chat/completions``, ``/v1/embeddings``,
``/v1/responses`` and ``GET /v1/models`` (Anthropic's shape when ``anthropic-version`` is
sent)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from relay_context.service.routes.gateway_http import relay_to_gateway

router = APIRouter(prefix="/v1", tags=["gateway"])


@router.post("/chat/completions", summary="OpenAI Chat Completions (any configured model)")
async def chat_completions(request: Request) -> Response:
    return await relay_to_gateway(request, "chat_completions")


@router.post("/embeddings", summary="OpenAI embeddings (OpenAI-format upstreams)")
async def embeddings(request: Request) -> Response:
    return await relay_to_gateway(request, "embeddings")


@router.post("/responses", summary="OpenAI Responses API (OpenAI-format upstreams)")
async def responses(request: Request) -> Response:
    return await relay_to_gateway(request, "responses")


@router.get("/models", summary="The configured model names")
async def models(request: Request) -> Response:
    return await relay_to_gateway(request, "models")
