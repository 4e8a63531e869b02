"""``relay mcp``: the MCP server over stdio, driven by the official ``mcp`` client (2.x)."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from handoff_support import handoff_service, handoff_settings
from relay_context.handoff_client import AgentBridge, HandoffClient
from service_support import RELAY


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with handoff_service(handoff_settings(tmp_path_factory.mktemp("mcp"))) as running:
        yield running


def _text(result: Any) -> str:
    return "".join(part.text for part in result.content if getattr(part, "type", "") == "text")


async def test_mcp_tools_over_stdio(service: Any, tmp_path: Path) -> None:
    base, _ = service
    params = StdioServerParameters(
        command=str(RELAY),
        args=["mcp"],
        env={"RELAY_URL": base, "PATH": str(Path(sys.executable).parent)},
    )
    async with Client(params, read_timeout_seconds=30) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert {"push_context", "pull_context", "peek_context", "publish", "bridge_task"} <= tools
        pushed = await client.call_tool(
            "push_context", {"data": "a 50k-token document", "metadata": {"kind": "doc"}}
        )
        assert not pushed.is_error, pushed
        url = _text(pushed)
        assert url.startswith(f"{base}/pull/")
        pulled = await client.call_tool("pull_context", {"url": url})
        assert _text(pulled) == "a 50k-token document"
        peeked = await client.call_tool("peek_context", {"url": url})
        assert json.loads(_text(peeked)) == {"kind": "doc"}
        secret = _text(await client.call_tool("push_context", {"data": "s", "encrypted": True}))
        assert "#key=" in secret
        assert _text(await client.call_tool("pull_context", {"url": secret})) == "s"
        seq = await client.call_tool("publish", {"channel": "mcp-ch", "message": "done"})
        assert _text(seq) == "1"
        # Relay's errors are tool errors, with their message; the server keeps serving.
        missing = await client.call_tool("pull_context", {"url": f"{base}/pull/{'A' * 32}"})
        assert missing.is_error
        assert "no live payload" in _text(missing)
        bad = await client.call_tool("publish", {"channel": "bad channel", "message": "x"})
        assert bad.is_error
        assert _text(await client.call_tool("pull_context", {"url": url})) == "a 50k-token document"
        # bridge_task hands a task to a worker agent and waits for its own answer.
        stop, ready = threading.Event(), threading.Event()
        worker_relay = HandoffClient(base)
        worker = threading.Thread(
            target=AgentBridge(worker_relay, "mcp-tasks", "mcp-done").serve,
            args=(lambda task: f"worked on {task}",),
            kwargs={"stop": stop, "ready": ready},
        )
        worker.start()
        try:
            assert ready.wait(30)
            answer = await client.call_tool(
                "bridge_task",
                {"task": "summarise", "task_channel": "mcp-tasks", "done_channel": "mcp-done"},
            )
            assert _text(answer) == "worked on summarise", answer
        finally:
            stop.set()
            worker.join(timeout=10)
            worker_relay.close()
