"""The LLM gateway: an OpenAI- and Anthropic-compatible proxy in front of real providers.

Provider adapters (``providers/<provider>/``: each wire format beside one neutral schema) and the
steps of one request in one ordered pipeline (auth, limits and budget, context fit, route,
breaker, provider, usage ledger). It stands on ``core`` (token counts, knapsack), ``security``
(credentials) and ``persistence`` (the ledger), never on ``service`` or the other products; the
import contracts in ``pyproject.toml`` hold it there. See ``docs/architecture.md``.

The HTTP layer hands each request to :meth:`Gateway.handle` (the one entry point) as a
:class:`GatewayCall` and sends back its :class:`GatewayReply`. See ``docs/gateway.md``.
"""

from relay_context.gateway.call import Endpoint, GatewayCall, GatewayReply
from relay_context.gateway.gateway import Gateway

__all__ = ["Endpoint", "Gateway", "GatewayCall", "GatewayReply"]
