"""The handoff relay's MCP server over streamable HTTP, at ``/mcp`` in the service.

The same tools as ``relay mcp`` (stdio): :func:`relay_context.integrations.mcp_server.
build_server`. A request to ``/mcp`` is authenticated as the handoff routes authenticate
(``HANDOFF_AUTH=keys``: an API key or JWT; ``open``: none needed, charged to the client
address), before the MCP layer reads it; each tool call then talks to this service over
loopback HTTP with the calling request's own credentials, so quotas, ownership and limits are
those of the caller, exactly as if it had called the HTTP API itself.

Stateless (no MCP session kept between requests): any replica answers any request, and JSON
answers rather than SSE streams (every tool answers once).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from mcp.server.mcpserver import Context
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from relay_context.handoff_client.async_client import AsyncHandoffClient
from relay_context.integrations.mcp_server import build_server
from relay_context.service.routes.handoff import handoff_caller

PATH = "/mcp"


def _client_for(ctx: Context[Any, Any]) -> AsyncHandoffClient:
    request = ctx.request_context.request
    if not isinstance(request, Request):  # only HTTP requests reach this server
        raise RuntimeError("the /mcp tools serve HTTP requests only")
    headers = request.headers
    credential = headers.get("x-api-key")
    if credential is None:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        credential = token.strip() if scheme.lower() == "bearer" and token.strip() else None
    # Loopback to this very server (the address the request came in on).
    base_url = f"{request.url.scheme}://{request.url.netloc}"
    return AsyncHandoffClient(base_url, credential)


class McpEndpoint:
    """The ASGI endpoint of ``/mcp``; :meth:`running` wraps the service's lifespan."""

    def __init__(self) -> None:
        # MCPServer's constructor calls logging.basicConfig (a rich handler on the root logger
        # at INFO) unless the root has a handler; the service logs as JSON on its own loggers
        # and must not gain one, so the root holds a placeholder meanwhile.
        root = logging.getLogger()
        placeholder = logging.NullHandler()
        root.addHandler(placeholder)
        try:
            server = build_server(client_for=_client_for)
        finally:
            root.removeHandler(placeholder)
        # Built for its session manager (the SDK's way to mount a server inside another app);
        # the Starlette app it returns is not used: the service routes /mcp itself.
        server.streamable_http_app(
            json_response=True,
            stateless_http=True,
            # The service's own rules (credentials, CORS) guard it; no Host allow-list here.
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        )
        self.manager: StreamableHTTPSessionManager = server.session_manager

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        async with self.manager.run():
            yield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Refused (401, 429 ...) in the service's error shape before the body is read.
        await handoff_caller(Request(scope, receive))
        await self.manager.handle_request(scope, receive, send)


__all__ = ["PATH", "McpEndpoint"]
