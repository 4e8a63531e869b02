"""The handoff relay as an MCP server (the official ``mcp`` package, 2.x API), for MCP hosts
such as Claude Desktop or Claude Code::

    {"mcpServers": {"relay": {"command": "relay", "args": ["mcp"],
                              "env": {"RELAY_URL": "http://127.0.0.1:8080",
                                      "RELAY_API_KEY": "relay_..."}}}}

Tools: ``push_context``, ``pull_context``, ``peek_context``, ``publish`` and ``bridge_task``.
Each calls a relay over HTTP through :class:`~relay_context.handoff_client.HandoffClient`;
Relay's errors (a missing pointer, a wrong key, an over-size payload) become MCP tool errors
with their message, not crashes of the server.

The service mounts the same tools over streamable HTTP at ``/mcp``
(:mod:`relay_context.service.mcp_http`); there ``client_for`` gives each tool call a client
that carries the calling request's own credentials.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from relay_context.errors import RelayError
from relay_context.handoff_client.async_bridge import AsyncAgentBridge
from relay_context.handoff_client.async_client import AsyncHandoffClient


def _text(value: str | bytes) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise ToolError("the payload is binary; pull it with the SDK instead") from None
    return value


#: A client for one tool call, from its MCP context (the HTTP request's credentials).
ClientFactory = Callable[[Context[Any, Any]], AsyncHandoffClient]


def build_server(
    base_url: str | None = None,
    api_key: str | None = None,
    *,
    client_for: ClientFactory | None = None,
) -> MCPServer[Any]:
    """The MCP server, talking to the relay at ``base_url`` (default ``RELAY_URL``), or, given
    ``client_for``, through the client it makes for each tool call (closed after the call)."""
    shared = AsyncHandoffClient(base_url, api_key) if client_for is None else None

    @contextlib.asynccontextmanager
    async def relay_for(ctx: Context[Any, Any]) -> AsyncIterator[AsyncHandoffClient]:
        if shared is not None:
            yield shared
            return
        assert client_for is not None
        client = client_for(ctx)
        try:
            yield client
        finally:
            await client.aclose()

    server: MCPServer[Any] = MCPServer(
        "relay-handoff",
        instructions=(
            "Hand large context to other agents as a short URL: push_context stores text and "
            "returns a pointer URL; pull_context fetches it; peek_context reads only its "
            "metadata. Pass the URL, not the text."
        ),
    )

    @server.tool()
    async def push_context(
        data: str,
        channel: str | None = None,
        metadata: dict[str, Any] | None = None,
        encrypted: bool = False,
        ttl_seconds: int | None = None,
        ctx: Context[Any, Any] | None = None,
    ) -> str:
        """Store ``data`` and return its pointer URL (with ``#key=...`` when encrypted);
        subscribers of ``channel`` are told at once."""
        try:
            async with relay_for(ctx) as relay:  # type: ignore[arg-type]
                return await relay.push(
                    data, channel=channel, encrypted=encrypted, metadata=metadata, ttl=ttl_seconds
                )
        except RelayError as exc:
            raise ToolError(str(exc)) from exc

    @server.tool()
    async def pull_context(url: str, ctx: Context[Any, Any] | None = None) -> str:
        """The payload a pointer URL names (decrypted locally when the URL has a key)."""
        try:
            async with relay_for(ctx) as relay:  # type: ignore[arg-type]
                return _text(await relay.pull(url))
        except RelayError as exc:
            raise ToolError(str(exc)) from exc

    @server.tool()
    async def peek_context(url: str, ctx: Context[Any, Any] | None = None) -> str:
        """The metadata of a pointer URL as JSON, without fetching the payload."""
        try:
            async with relay_for(ctx) as relay:  # type: ignore[arg-type]
                return json.dumps(await relay.peek(url))
        except RelayError as exc:
            raise ToolError(str(exc)) from exc

    @server.tool()
    async def publish(channel: str, message: str, ctx: Context[Any, Any] | None = None) -> str:
        """Signal ``message`` on ``channel`` without a payload; the event's sequence id."""
        try:
            async with relay_for(ctx) as relay:  # type: ignore[arg-type]
                return str(await relay.publish(channel, message))
        except RelayError as exc:
            raise ToolError(str(exc)) from exc

    @server.tool()
    async def bridge_task(
        task: str,
        task_channel: str = "agent-tasks",
        done_channel: str = "agent-done",
        timeout_seconds: float = 300.0,
        ctx: Context[Any, Any] | None = None,
    ) -> str:
        """Hand ``task`` to the worker agent serving ``task_channel`` and wait for its answer
        on ``done_channel`` (matched by a correlation id)."""

        try:
            async with relay_for(ctx) as relay:  # type: ignore[arg-type]
                bridge = AsyncAgentBridge(relay, task_channel, done_channel)
                return _text(await bridge.push_and_wait(task, timeout=timeout_seconds))
        except (RelayError, TimeoutError) as exc:
            raise ToolError(str(exc)) from exc

    return server


def run_stdio(base_url: str | None = None, api_key: str | None = None) -> None:
    """Serve MCP over stdin/stdout until the host closes it (``relay mcp``)."""
    build_server(base_url, api_key).run("stdio")


__all__ = ["build_server", "run_stdio"]
