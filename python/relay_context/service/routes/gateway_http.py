"""Hands one HTTP request to the gateway's entry point and sends back its reply: the raw body
in, raw bytes (or the SSE stream) out, with no model validation of the body on the way."""

from __future__ import annotations

import time

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from relay_context.gateway import Endpoint, GatewayCall
from relay_context.service.deps import state_of


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


__all__ = ["relay_to_gateway"]
