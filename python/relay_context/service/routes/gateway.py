"""The gateway's HTTP surface, one router for ``create_app``:

* OpenAI-compatible: ``POST /v1/chat/completions``, ``/v1/embeddings``, ``/v1/responses``;
* Anthropic-compatible: ``POST /v1/messages``, ``/v1/messages/count_tokens``;
* ``GET /v1/models`` (Anthropic's shape when ``anthropic-version`` is sent).

Each handler hands the raw body to :meth:`relay_context.gateway.Gateway.handle` (no model
validation of large bodies here) and sends back its bytes or its SSE stream untouched.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from relay_context.gateway import Endpoint, GatewayCall
from relay_context.gateway.key_limits import MAX_KEY_RPM, KeyLimits
from relay_context.service.deps import (
    AdminPrincipal,
    AuthFirstRoute,
    CurrentPrincipal,
    StateDep,
    state_of,
)
from relay_context.service.openapi import AUTHENTICATED, WITH_ID

# The provider-compatible routes are described by the providers' own API references (and
# docs/gateway.md), not here: their bodies are theirs, read raw, so they stay out of the schema.
router = APIRouter(tags=["gateway"])
usage_router = APIRouter(
    prefix="/api/v1/gateway", tags=["gateway"], route_class=AuthFirstRoute, responses=AUTHENTICATED
)


async def relay_to_gateway(
    request: Request, endpoint: Endpoint, path_model: str | None = None
) -> Response:
    gateway = state_of(request).gateway
    assert gateway is not None  # build_state always sets it
    scope_state = request.scope.get("state", {})
    call = GatewayCall(
        endpoint=endpoint,
        body=await request.body(),
        headers=request.headers,
        request_id=str(scope_state.get("request_id", "-")),
        received_at=float(scope_state.get("received_at", time.perf_counter())),
        path_model=path_model,
        query=request.query_params,
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


@router.post(
    "/v1/chat/completions",
    include_in_schema=False,
    summary="OpenAI Chat Completions (any configured model)",
)
async def chat_completions(request: Request) -> Response:
    return await relay_to_gateway(request, "chat_completions")


@router.post(
    "/v1/messages", include_in_schema=False, summary="Anthropic Messages (any configured model)"
)
async def messages(request: Request) -> Response:
    return await relay_to_gateway(request, "messages")


@router.post(
    "/v1/messages/count_tokens", include_in_schema=False, summary="Anthropic token counting"
)
async def count_tokens(request: Request) -> Response:
    return await relay_to_gateway(request, "count_tokens")


@router.post(
    "/v1/embeddings", include_in_schema=False, summary="OpenAI embeddings (OpenAI-format upstreams)"
)
async def embeddings(request: Request) -> Response:
    return await relay_to_gateway(request, "embeddings")


@router.post(
    "/v1/responses",
    include_in_schema=False,
    summary="OpenAI Responses API (OpenAI-format upstreams)",
)
async def responses(request: Request) -> Response:
    return await relay_to_gateway(request, "responses")


@router.post(
    "/v1beta/models/{model}:generateContent",
    include_in_schema=False,
    summary="Gemini generateContent",
)
async def gemini_generate(request: Request, model: str) -> Response:
    return await relay_to_gateway(request, "gemini_generate", model)


@router.post(
    "/v1beta/models/{model}:streamGenerateContent",
    include_in_schema=False,
    summary="Gemini streamGenerateContent (Server-Sent Events, as with alt=sse)",
)
async def gemini_stream(request: Request, model: str) -> Response:
    return await relay_to_gateway(request, "gemini_stream", model)


@router.get("/v1/models", include_in_schema=False, summary="The configured model names")
async def models(request: Request) -> Response:
    return await relay_to_gateway(request, "models")


@usage_router.get("/usage", summary="Gateway usage: requests, tokens and cost")
async def usage(
    principal: CurrentPrincipal,
    state: StateDep,
    group_by: Literal["key", "model", "day"] = "model",
    since: datetime | None = None,
) -> dict[str, Any]:
    """A key (or JWT principal) sees its own usage; an admin sees everyone's."""
    assert state.gateway is not None
    rows = await state.gateway.usage(
        group_by=group_by,
        since=since.timestamp() if since is not None else 0.0,
        principal=None if principal.is_admin else principal.id,
    )
    return {"group_by": group_by, "data": rows}


class KeyLimitsBody(BaseModel):
    """The gateway limits of one API key (``null``: none)."""

    model_config = ConfigDict(extra="forbid")

    rpm: int | None = Field(default=None, ge=1, le=MAX_KEY_RPM)
    budget_usd: float | None = Field(default=None, gt=0)
    budget_period: Literal["day", "month", "lifetime"] = "month"
    #: Model-name patterns the key may use (``claude-*``); ``null``: any.
    models: list[str] | None = None

    @field_validator("rpm", "budget_usd", mode="before")
    @classmethod
    def _not_a_boolean(cls, value: Any) -> Any:
        if isinstance(value, bool):  # ``true`` is not an rpm of 1
            raise ValueError("must be a number, not a boolean")
        return value


@usage_router.put(
    "/keys/{key_id}/limits", summary="Set an API key's gateway limits", responses=WITH_ID
)
async def put_key_limits(
    key_id: str, body: KeyLimitsBody, admin: AdminPrincipal, state: StateDep
) -> dict[str, Any]:
    assert state.gateway is not None
    limits = KeyLimits(
        body.rpm,
        body.budget_usd,
        body.budget_period,
        tuple(body.models) if body.models is not None else None,
    )
    await state.gateway.set_key_limits(key_id, limits)
    return {"key_id": key_id, **limits.to_json()}


@usage_router.get("/keys/{key_id}/limits", summary="An API key's gateway limits", responses=WITH_ID)
async def get_key_limits(key_id: str, admin: AdminPrincipal, state: StateDep) -> dict[str, Any]:
    assert state.gateway is not None
    limits = await state.gateway.get_key_limits(key_id)
    return {"key_id": key_id, **limits.to_json()}


@usage_router.get("/stats", summary="Gateway savings, spend, breakers and time series (admin)")
async def stats(admin: AdminPrincipal, state: StateDep) -> dict[str, Any]:
    """This process's totals, cache outcomes, spend per provider and model, the hour and day
    series (``relay_context.gateway.savings``) and each upstream deployment's circuit."""
    assert state.gateway is not None
    return state.gateway.stats_report()


router.include_router(usage_router)

__all__ = ["router"]
