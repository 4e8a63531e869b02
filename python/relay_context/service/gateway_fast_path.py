"""``GatewayFastPath``: the gateway's fixed ``/v1/*`` paths handed to the gateway directly.

The provider-compatible routes (service/routes/gateway.py) take the raw request and return the
gateway's reply as it is: they have no dependencies, no body model and no response model, so
FastAPI adds nothing to them but its routing walk (a pattern match per route of every router,
then dependency solving for none) — a measurable share of an exact-cache hit, which is a few
hundred microseconds in all. This ASGI layer, beside :class:`~relay_context.service.
append_fast_path.AppendFastPath`, maps ``(method, path)`` of those routes to their endpoint in
one dictionary lookup and calls the route's own :func:`~relay_context.service.routes.gateway.
relay_to_gateway`. Paths with parameters (Gemini's ``/v1beta/models/{model}:...``), other
methods (``OPTIONS``, a ``GET`` of a ``POST`` route: 405 with its ``Allow``) and everything else
go through FastAPI unchanged.
"""

from __future__ import annotations

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from relay_context.errors import RelayError
from relay_context.gateway import Endpoint
from relay_context.service.errors import relay_error_handler
from relay_context.service.routes.gateway import (
    chat_completions,
    count_tokens,
    embeddings,
    messages,
    models,
    relay_to_gateway,
    responses,
    router,
)

#: Each fast route's endpoint function and the gateway endpoint it serves.
_ENDPOINTS: dict[object, Endpoint] = {
    chat_completions: "chat_completions",
    messages: "messages",
    count_tokens: "count_tokens",
    embeddings: "embeddings",
    responses: "responses",
    models: "models",
}


class GatewayFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        #: (method, path) -> (the route, for metrics and spans; the gateway endpoint).
        self.routes: dict[tuple[str, str], tuple[APIRoute, Endpoint]] = {}
        for route in router.routes:
            if isinstance(route, APIRoute) and route.endpoint in _ENDPOINTS:
                for method in route.methods or ():
                    self.routes[(method, route.path)] = (route, _ENDPOINTS[route.endpoint])
        #: Requests answered here (for tests).
        self.served = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = (
            self.routes.get((scope["method"], scope["path"])) if scope["type"] == "http" else None
        )
        if found is None:
            await self.app(scope, receive, send)
            return
        route, endpoint = found
        # The route's template labels the request's metrics and span, as when FastAPI routes it.
        scope["route"] = route
        request = Request(scope, receive)
        response: Response
        try:
            response = await relay_to_gateway(request, endpoint)
        except RelayError as exc:  # reading the body (too large, too slow): as FastAPI answers
            response = await relay_error_handler(request, exc)
        self.served += 1
        await response(scope, receive, send)


__all__ = ["GatewayFastPath"]
