"""The MCP server over streamable HTTP at ``/mcp`` in the service, driven by the official
``mcp`` client (2.x), with the service's own authentication (``HANDOFF_AUTH=keys``)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from handoff_support import handoff_service, handoff_settings, make_api_key
from relay_context.handoff import AgentBridge, ContextRelay


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Any:
    settings = handoff_settings(tmp_path_factory.mktemp("mcp-http"), handoff={"auth": "keys"})
    key = make_api_key(settings)
    with handoff_service(settings) as (url, state):
        yield url, state, key


def _text(result: Any) -> str:
    return "".join(part.text for part in result.content if getattr(part, "type", "") == "text")


def _client(url: str, key: str | None) -> Client:
    headers = {} if key is None else {"X-API-Key": key}
    http = httpx2.AsyncClient(headers=headers, timeout=30)
    return Client(streamable_http_client(f"{url}/mcp", http_client=http), read_timeout_seconds=30)


async def test_mcp_tools_over_streamable_http(service: Any) -> None:
    base, _, key = service
    async with _client(base, key) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert tools == {"push_context", "pull_context", "peek_context", "publish", "bridge_task"}
        pushed = await client.call_tool(
            "push_context", {"data": "a 50k-token document", "metadata": {"kind": "doc"}}
        )
        assert not pushed.is_error, pushed
        url = _text(pushed)
        assert url.startswith(f"{base}/pull/")
        assert _text(await client.call_tool("pull_context", {"url": url})) == (
            "a 50k-token document"
        )
        peeked = await client.call_tool("peek_context", {"url": url})
        assert json.loads(_text(peeked)) == {"kind": "doc"}
        secret = _text(await client.call_tool("push_context", {"data": "s", "encrypted": True}))
        assert "#key=" in secret
        assert _text(await client.call_tool("pull_context", {"url": secret})) == "s"
        assert _text(await client.call_tool("publish", {"channel": "mcp-http", "message": "x"}))
        # Relay's errors are tool errors with their message.
        missing = await client.call_tool("pull_context", {"url": f"{base}/pull/{'A' * 32}"})
        assert missing.is_error
        assert "no live payload" in _text(missing)
    # The tool pushed as the caller: the payload is the key's (its owner may delete it).
    with ContextRelay(base, key) as relay:
        assert relay.pull(url) == "a 50k-token document"
        relay.delete(url)


async def test_bridge_task_over_streamable_http(service: Any) -> None:
    base, _, key = service
    stop = threading.Event()
    ready = threading.Event()
    worker_relay = ContextRelay(base, key)
    serving = threading.Thread(
        target=AgentBridge(worker_relay, "mcph-tasks", "mcph-done").serve,
        args=(lambda task: f"done: {task!r}",),
        kwargs={"stop": stop, "ready": ready},
    )
    serving.start()
    try:
        assert ready.wait(10)
        async with _client(base, key) as client:
            answer = await client.call_tool(
                "bridge_task",
                {"task": "t1", "task_channel": "mcph-tasks", "done_channel": "mcph-done"},
            )
            assert not answer.is_error, answer
            assert _text(answer) == "done: 't1'"
    finally:
        stop.set()
        serving.join(timeout=10)
        worker_relay.close()


def test_mcp_needs_the_services_credentials(service: Any, tmp_path: Path) -> None:
    base = service[0]
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    headers = {"Accept": "application/json, text/event-stream"}
    refused = httpx.post(f"{base}/mcp", json=initialize, headers=headers)
    assert refused.status_code == 401
    assert refused.json()["error"]["type"] == "authentication"
    wrong = httpx.post(
        f"{base}/mcp", json=initialize, headers={**headers, "X-API-Key": "relay_nope"}
    )
    assert wrong.status_code == 401
    accepted = httpx.post(
        f"{base}/mcp", json=initialize, headers={**headers, "X-API-Key": service[2]}
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["result"]["serverInfo"]["name"] == "relay-handoff"


def test_mounting_mcp_leaves_the_services_logging_alone(tmp_path: Path) -> None:
    import subprocess
    import sys

    # The mcp package configures the root logger when nothing has; the service must not gain
    # a second, differently formatted log stream from it.
    code = (
        "import logging, sys\n"
        "from relay_context.config.settings import Settings\n"
        "from relay_context.service.app import create_app\n"
        f"app = create_app(Settings(secret_key='k' * 40, data_dir={str(tmp_path)!r}))\n"
        "assert any(getattr(r, 'path', '') == '/mcp' for r in app.router.routes)\n"
        "print(logging.getLogger().handlers)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
