"""The Redis client of a process: one connection pool per URL, with explicit timeouts.

The window cache, the message notifications and the health check of one service share it; its
connect and socket timeouts (``redis_connect_timeout_seconds``, ``redis_socket_timeout_seconds``)
bound every call, so a Redis that stops answering (a frozen process, a dropped network) fails
calls as an outage does instead of holding requests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from relay_context.config.settings import Settings


def redis_client_for(settings: Settings) -> Redis:
    """A new client of ``settings.redis_url`` (connections are made on first use)."""
    from redis.asyncio import Redis

    if not settings.redis_url:
        from relay_context.errors import InvalidArgumentError

        raise InvalidArgumentError("redis_url is not set")
    return Redis.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        socket_connect_timeout=settings.redis_connect_timeout_seconds,
        socket_timeout=settings.redis_socket_timeout_seconds,
    )


__all__ = ["redis_client_for"]
