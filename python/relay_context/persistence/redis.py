"""The Redis client of a process: one connection pool per URL, with explicit timeouts.

The window cache, the message notifications and the health check of one service share it; its
connect and socket timeouts (``redis_connect_timeout_seconds``, ``redis_socket_timeout_seconds``)
bound every call, so a Redis that stops answering (a frozen process, a dropped network) fails
calls as an outage does instead of holding requests.

With ``redis_cluster`` the URL names one node of a Redis Cluster (or Valkey cluster): the client
discovers the others and follows ``MOVED`` / ``ASK``. Every key that one script or transaction
touches carries the same ``{hash tag}`` (:func:`hash_tag`), so it runs on one slot. redis-py's
asyncio cluster client has no pub/sub; Relay's uses of it (message notifications, handoff
channels) take classic ``PUBLISH`` / ``SUBSCRIBE``, which a cluster propagates to every node, so
the cluster client's ``pubsub()`` subscribes on one node, chosen again at each reconnection.
"""

from __future__ import annotations

import functools
import random
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from relay_context.config.settings import Settings


def hash_tag(part: str) -> str:
    """``part`` as a Redis Cluster hash tag: keys that share it hash to one slot, keys of
    different parts stay different keys. Braces would end (or open) the tag early and an empty
    tag hashes the whole key, so ``%``, ``{`` and ``}`` are percent-escaped (one-to-one) and the
    empty part is ``%`` alone (which no escaped part is)."""
    escaped = part.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")
    return "{" + (escaped or "%") + "}"


def redis_client(
    url: str,
    *,
    cluster: bool = False,
    max_connections: int = 50,
    connect_timeout: float = 2.0,
    socket_timeout: float = 2.0,
) -> Redis:
    """A new client of ``url`` (connections are made on first use): redis-py's cluster client
    when ``cluster``, else a plain ``redis.asyncio.Redis``. Both take the commands Relay uses."""
    from redis.asyncio import Redis

    if cluster:
        client: Redis = _cluster_client_class().from_url(
            url,
            max_connections=max_connections,
            socket_connect_timeout=connect_timeout,
            socket_timeout=socket_timeout,
        )
        return client
    return Redis.from_url(
        url,
        max_connections=max_connections,
        socket_connect_timeout=connect_timeout,
        socket_timeout=socket_timeout,
    )


def redis_client_for(settings: Settings) -> Redis:
    """A new client of ``settings.redis_url`` (connections are made on first use)."""
    if not settings.redis_url:
        from relay_context.errors import InvalidArgumentError

        raise InvalidArgumentError("redis_url is not set")
    return redis_client(
        settings.redis_url,
        cluster=settings.redis_cluster,
        max_connections=settings.redis_max_connections,
        connect_timeout=settings.redis_connect_timeout_seconds,
        socket_timeout=settings.redis_socket_timeout_seconds,
    )


@functools.cache
def _cluster_client_class() -> type[Redis]:
    """redis-py's asyncio ``RedisCluster`` with ``pubsub()`` on one node of the cluster (made
    on first use, so that importing this module does not import redis)."""
    from redis.asyncio import ConnectionPool, RedisCluster
    from redis.asyncio.client import PubSub

    class NodePubSub(PubSub):
        """A subscription on one node; closing it closes its own pool too."""

        async def aclose(self) -> None:
            await super().aclose()  # type: ignore[no-untyped-call]
            await self.connection_pool.disconnect()

    class ClusterClient(RedisCluster):
        async def publish(self, channel: str, message: str | bytes) -> int:
            """``PUBLISH`` on the node that owns the channel name's slot: the cluster bus
            carries it to every other, and one channel's messages, all sent from one node,
            arrive in the order they were published (from random nodes they need not). The
            count returned is of that node's subscribers only."""
            await self.initialize()
            count: int = await self.execute_command(
                "PUBLISH", channel, message, target_nodes=self.get_node_from_key(channel)
            )
            return count

        def pubsub(self, **kwargs: Any) -> PubSub:
            # Before its first command the client knows only the nodes of its URL.
            node = random.choice(self.get_nodes() or self.startup_nodes)
            kept = {
                k: v
                for k, v in self.connection_kwargs.items()
                if k in ("username", "password", "socket_connect_timeout", "socket_timeout")
            }
            pool = ConnectionPool(host=node.host, port=node.port, max_connections=2, **kept)
            return NodePubSub(connection_pool=pool, **kwargs)

    # Typed as the plain client: it takes every command Relay sends (one slot per command).
    return cast("type[Redis]", ClusterClient)


__all__ = ["hash_tag", "redis_client", "redis_client_for"]
