"""The gateway's HTTP surface, one router for ``create_app``:

* OpenAI-compatible: ``POST /v1/chat/completions``, ``/v1/embeddings``, ``/v1/responses``;
* Anthropic-compatible: ``POST /v1/messages``, ``/v1/messages/count_tokens``;
* ``GET /v1/models`` (Anthropic's shape when ``anthropic-version`` is sent).

Each handler hands the raw body to :meth:`relay_context.gateway.Gateway.handle` (no model
validation of large bodies here) and sends back its bytes or its SSE stream untouched.
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from relay_context.gateway import Endpoint, GatewayCall
from relay_context.service.deps import state_of

router = APIRouter(prefix="/v1", tags=["gateway"])


async def relay_to_gateway(request: Request, endpoint: Endpoint) -> Response:
    gateway = state_of(request).gateway
    assert gateway is not None  # build_state always sets it
    scope_state = request.scope.get("state", {})
    call = GatewayCall(
        endpoint=endpoint,
        body=await request.body(),
        headers=request.headers,
        request_id=str(scope_state.get("request_id", "-")),
        received_at=float(scope_state.get("received_at", time.perf_counter())),
    )
    reply = await gateway.handle(call)
    if reply.stream is not None:
        return StreamingResponse(
            reply.stream,
            status_code=reply.status,
            headers=reply.headers,
            media_type=reply.media_type,
        )
    return Response(
        reply.body, status_code=reply.status, headers=reply.headers, media_type=reply.media_type
    )


@router.post("/chat/completions", summary="OpenAI Chat Completions (any configured model)")
async def chat_completions(request: Request) -> Response:
    return await relay_to_gateway(request, "chat_completions")


@router.post("/messages", summary="Anthropic Messages (any configured model)")
async def messages(request: Request) -> Response:
    return await relay_to_gateway(request, "messages")


@router.post("/messages/count_tokens", summary="Anthropic token counting")
async def count_tokens(request: Request) -> Response:
    return await relay_to_gateway(request, "count_tokens")


@router.post("/embeddings", summary="OpenAI embeddings (OpenAI-format upstreams)")
async def embeddings(request: Request) -> Response:
    return await relay_to_gateway(request, "embeddings")


@router.post("/responses", summary="OpenAI Responses API (OpenAI-format upstreams)")
async def responses(request: Request) -> Response:
    return await relay_to_gateway(request, "responses")


@router.get("/models", summary="The configured model names")
async def models(request: Request) -> Response:
    return await relay_to_gateway(request, "models")


__all__ = ["router"]
