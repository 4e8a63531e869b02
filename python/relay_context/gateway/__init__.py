"""Relay's LLM gateway: OpenAI- and Anthropic-compatible endpoints in front of the providers.

The HTTP layer hands each request to :meth:`Gateway.handle` (one entry point) as a
:class:`GatewayCall` and sends back its :class:`GatewayReply`. See ``docs/gateway.md``.
"""

from relay_context.gateway.call import Endpoint, GatewayCall, GatewayReply
from relay_context.gateway.gateway import Gateway

__all__ = ["Endpoint", "Gateway", "GatewayCall", "GatewayReply"]
