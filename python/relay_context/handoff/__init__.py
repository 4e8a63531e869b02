"""The handoff relay (server side): payloads pushed, pulled and peeked by URL pointer, channels
with resumable sequence ids, end-to-end encrypted payloads stored as opaque bytes (the key stays
in the URL fragment, on the clients).

:class:`HandoffRelay` is the entry point the routes call. It stands on ``core`` (compression),
``persistence`` (the shared database: component ``handoff``) and base, never on ``service`` or
the other products. Its client SDK, :mod:`relay_context.handoff_client`, is a separate package
that imports no server code; this package re-exports the client's names, as the issue documents
them (``from relay_context.handoff import ContextRelay, AsyncContextRelay, AgentBridge``).

Every name loads on first use (PEP 562), so importing a client name from here loads the client
only, never the server modules, the database drivers or the web stack. The import contracts in
``pyproject.toml`` hold both sides. See ``docs/handoff.md`` and ``docs/architecture.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from relay_context.handoff.models import ChannelEvent, HandoffStats, PayloadInfo
    from relay_context.handoff.relay import HandoffRelay
    from relay_context.handoff.subscription import Subscription
    from relay_context.handoff_client.async_bridge import AsyncAgentBridge
    from relay_context.handoff_client.async_client import AsyncContextRelay, AsyncHandoffClient
    from relay_context.handoff_client.bridge import AgentBridge
    from relay_context.handoff_client.client import ContextRelay, HandoffClient

_SERVER_NAMES = {
    "ChannelEvent": "models",
    "HandoffStats": "models",
    "PayloadInfo": "models",
    "HandoffRelay": "relay",
    "Subscription": "subscription",
}
_CLIENT_NAMES = frozenset(
    {
        "AgentBridge",
        "AsyncAgentBridge",
        "AsyncContextRelay",
        "AsyncHandoffClient",
        "ContextRelay",
        "HandoffClient",
    }
)


def __getattr__(name: str) -> Any:
    if name in _CLIENT_NAMES:
        # The one import from the server package into the client's: a re-export, declared in
        # the layers contract's ignore_imports.
        from relay_context import handoff_client

        return getattr(handoff_client, name)
    module = _SERVER_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "AgentBridge",
    "AsyncAgentBridge",
    "AsyncContextRelay",
    "AsyncHandoffClient",
    "ChannelEvent",
    "ContextRelay",
    "HandoffClient",
    "HandoffRelay",
    "HandoffStats",
    "PayloadInfo",
    "Subscription",
]
