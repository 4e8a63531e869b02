"""The handoff relay's client SDK: push, pull, peek, publish and subscribe over HTTP and
WebSocket, end-to-end encryption (the key only in the URL fragment), and ``AgentBridge``
(``AsyncAgentBridge``).

It imports no server code (the import contract in ``pyproject.toml`` keeps it so): only
``httpx``, ``websockets``, ``cryptography`` and Relay's base errors. Names load on first use.

>>> from relay_context.handoff_client import HandoffClient, AgentBridge
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from relay_context.handoff_client.async_bridge import AsyncAgentBridge
    from relay_context.handoff_client.async_client import (
        AsyncContextRelay,
        AsyncHandoffClient,
    )
    from relay_context.handoff_client.bridge import AgentBridge
    from relay_context.handoff_client.client import ContextRelay, HandoffClient
    from relay_context.handoff_client.protocol import ChannelMessage

_NAMES = {
    "AgentBridge": "bridge",
    "AsyncAgentBridge": "async_bridge",
    "AsyncContextRelay": "async_client",
    "AsyncHandoffClient": "async_client",
    "ChannelMessage": "protocol",
    "ContextRelay": "client",
    "HandoffClient": "client",
}


def __getattr__(name: str) -> Any:
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "AgentBridge",
    "AsyncAgentBridge",
    "AsyncContextRelay",
    "AsyncHandoffClient",
    "ChannelMessage",
    "ContextRelay",
    "HandoffClient",
]
