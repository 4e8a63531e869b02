"""AutoGen integration of the handoff relay (``relay-context[autogen]``, ``autogen-core``):
:func:`get_autogen_tools` gives ``FunctionTool``\\ s an AutoGen agent calls to hand large
context to other agents by pointer URL.

>>> from autogen_agentchat.agents import AssistantAgent
>>> AssistantAgent("researcher", model_client=..., tools=get_autogen_tools())

The tools are asynchronous (AutoGen runs tools on its event loop) and stand on the client SDK
only; Relay's errors reach the agent as the tool's error, with their message.
"""

from __future__ import annotations

import json
from typing import Any

from autogen_core.tools import FunctionTool

from relay_context.handoff_client.async_client import AsyncHandoffClient


def _text(value: str | bytes) -> str:
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def get_autogen_tools(
    relay: AsyncHandoffClient | None = None,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
) -> list[FunctionTool]:
    """``push_context``, ``pull_context``, ``peek_context`` and ``publish`` on ``relay`` (or a
    client for ``base_url``/``api_key``, default ``RELAY_URL``/``RELAY_API_KEY``)."""
    client = relay if relay is not None else AsyncHandoffClient(base_url, api_key)

    async def push_context(
        data: str,
        channel: str | None = None,
        metadata: dict[str, Any] | None = None,
        encrypted: bool = False,
    ) -> str:
        return await client.push(data, channel=channel, metadata=metadata, encrypted=encrypted)

    async def pull_context(url: str) -> str:
        return _text(await client.pull(url))

    async def peek_context(url: str) -> str:
        return json.dumps(await client.peek(url))

    async def publish(channel: str, message: str) -> int:
        return await client.publish(channel, message)

    return [
        FunctionTool(
            push_context,
            "Store a large text in the relay; a short pointer URL to hand other agents instead "
            "of the text.",
        ),
        FunctionTool(pull_context, "Fetch the text a pointer URL names."),
        FunctionTool(peek_context, "Read only the metadata of a pointer URL (JSON)."),
        FunctionTool(publish, "Signal a message on a channel (no payload); its sequence id."),
    ]


__all__ = ["get_autogen_tools"]
