"""The handoff relay (server side): payloads pushed, pulled and peeked by URL pointer, channels
with resumable sequence ids, end-to-end encrypted payloads stored as opaque bytes (the key stays
in the URL fragment, on the clients).

:class:`HandoffRelay` is the entry point the routes call. It stands on ``core`` (compression),
``persistence`` (the shared database: component ``handoff``) and base, never on ``service`` or
the other products; its client SDK, :mod:`relay_context.handoff_client`, is a separate package
that imports no server code. The import contracts in ``pyproject.toml`` hold both. See
``docs/handoff.md`` and ``docs/architecture.md``.
"""

from relay_context.handoff.models import ChannelEvent, HandoffStats, PayloadInfo
from relay_context.handoff.relay import HandoffRelay
from relay_context.handoff.subscription import Subscription

__all__ = ["ChannelEvent", "HandoffRelay", "HandoffStats", "PayloadInfo", "Subscription"]
