"""Entries in Redis (the app's ``REDIS_URL``), shared by every replica.

Every call has a deadline (the connect and socket timeouts, and an overall one around each
command), so a Redis that is down or stalled costs a request at most that long; the failure is
a :class:`CacheStoreUnavailableError` and the cache applies its outage policy. Values are
sealed like the SQLite store's when encryption keys are set.

Entries are read and written over a :class:`~relay_context.persistence.resp.RespConnection`
(a hit's ``GET`` costs a quarter of redis-py's instructions) when the URL names a plain Redis
over TCP; a cluster or a Unix socket goes through redis-py, as the cache's other structures do.
"""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis
from redis.exceptions import RedisError

from relay_context.gateway.cache.sealing import Sealer
from relay_context.gateway.cache.store import CacheStoreUnavailableError
from relay_context.persistence.redis import redis_client
from relay_context.persistence.resp import RespAddress, RespConnection, RespReplyError


class RedisStore:
    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        key_prefix: str,
        cluster: bool = False,
        connect_timeout: float,
        socket_timeout: float,
        sealer: Sealer | None = None,
    ) -> None:
        self.key_prefix = key_prefix
        self.sealer = sealer
        self.deadline = connect_timeout + socket_timeout
        self._redis = redis_client(
            url,
            cluster=cluster,
            connect_timeout=connect_timeout,
            socket_timeout=socket_timeout,
        )
        address = None if cluster else RespAddress.from_url(url)
        self._resp = (
            None
            if address is None
            else RespConnection(
                address, connect_timeout=connect_timeout, socket_timeout=socket_timeout
            )
        )

    @property
    def client(self) -> Redis:
        """The connection, for the cache's other shared structures (same timeouts; calls
        bounded by :attr:`deadline`)."""
        return self._redis

    async def get(self, entry_id: str) -> bytes | None:
        key = self.key_prefix + entry_id
        try:
            if self._resp is not None:
                value = await self._resp.get(key)  # deadlines of its own
            else:
                value = await asyncio.wait_for(self._redis.get(key), self.deadline)
        except (RedisError, RespReplyError, OSError) as exc:  # OSError: TimeoutError too
            raise CacheStoreUnavailableError(f"redis cache: {type(exc).__name__}") from exc
        if value is None:
            return None
        data = bytes(value)
        return self.sealer.open(entry_id, data) if self.sealer is not None else data

    async def put(self, entry_id: str, value: bytes, ttl_seconds: float) -> None:
        data = self.sealer.seal(entry_id, value) if self.sealer is not None else value
        key, px = self.key_prefix + entry_id, max(1, int(ttl_seconds * 1000))
        try:
            if self._resp is not None:
                await self._resp.set(key, data, px=px)
            else:
                await asyncio.wait_for(self._redis.set(key, data, px=px), self.deadline)
        except (RedisError, RespReplyError, OSError) as exc:
            raise CacheStoreUnavailableError(f"redis cache: {type(exc).__name__}") from exc

    async def close(self) -> None:
        if self._resp is not None:
            await self._resp.close()
        await self._redis.aclose()


__all__ = ["RedisStore"]
