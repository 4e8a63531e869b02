"""The exact response cache: for one request, whether and how it is cached
(:class:`CacheTicket`), the lookup and the store, with the store's outage policy.

The store in force follows the settings: Redis when the app has a ``REDIS_URL`` (and
``cache.redis`` is on), else SQLite with ``cache.persist``, else in process. A Redis that fails
is skipped for ``redis_retry_seconds``; meanwhile requests go on without the cache (``bypass``)
or with an in-process store (``memory``) — never waiting on Redis longer than its timeouts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from relay_context.config.gateway_cache import CacheConfig
from relay_context.gateway.cache.cache_control import CacheDirectives, parse_cache_control
from relay_context.gateway.cache.entry import CachedAnswer, decode_answer, encode_answer
from relay_context.gateway.cache.key import (
    ApiFamily,
    CacheKey,
    cache_scope,
    request_cache_key,
)
from relay_context.gateway.cache.metrics import CacheMetrics
from relay_context.gateway.cache.redis_store import RedisStore
from relay_context.gateway.cache.sealing import Sealer
from relay_context.gateway.cache.sqlite_store import SqliteStore
from relay_context.gateway.cache.store import CacheStore, CacheStoreUnavailableError, MemoryStore
from relay_context.security.auth import Principal

log = logging.getLogger(__name__)

#: ``x-relay-cache`` values set here (other caches add ``fuzzy-hit`` and ``coalesced``).
CacheStatus = Literal["hit", "miss", "bypass"]


@dataclass(slots=True)
class CacheTicket:
    """One request's dealings with the cache."""

    key: CacheKey
    directives: CacheDirectives
    ttl_seconds: float
    #: What ``x-relay-cache`` says (``miss`` until a lookup hits).
    status: CacheStatus = "miss"

    @property
    def may_read(self) -> bool:
        return not self.directives.no_cache

    @property
    def may_store(self) -> bool:
        return not self.directives.no_store and self.status != "bypass"


class ExactCache:
    def __init__(
        self,
        config: CacheConfig,
        *,
        metrics: CacheMetrics,
        redis_url: str | None = None,
        redis_cluster: bool = False,
        redis_key_prefix: str = "relay:",
    ) -> None:
        self.metrics = metrics
        self._redis_url = redis_url
        self._redis_cluster = redis_cluster
        self._redis_key_prefix = redis_key_prefix
        self.config = config
        self.store: CacheStore | None = None
        self._fallback: MemoryStore | None = None
        self._down_until = 0.0
        self._retired: list[CacheStore] = []
        self.configure(config)

    def configure(self, config: CacheConfig) -> None:
        """Takes new settings; the store is rebuilt only when its own settings changed."""
        old, self.config = self.config, config
        if self.store is not None and _store_settings(old) == _store_settings(config):
            return
        if self.store is not None:
            self._retired.append(self.store)
        self.store = self._build_store(config) if config.enabled else None
        self._fallback = None
        self._down_until = 0.0

    def _build_store(self, c: CacheConfig) -> CacheStore:
        sealer = (
            Sealer(c.raw_keys(), max_entry_bytes=c.max_entry_bytes) if c.encryption_keys else None
        )
        if self._redis_url and c.redis:
            return RedisStore(
                self._redis_url,
                cluster=self._redis_cluster,
                key_prefix=self._redis_key_prefix + "gw:cache:",
                connect_timeout=c.redis_connect_timeout_seconds,
                socket_timeout=c.redis_socket_timeout_seconds,
                sealer=sealer,
            )
        if c.persist:
            assert sealer is not None  # CacheConfig refuses persist without a key
            return SqliteStore(c.path, sealer)
        return MemoryStore(c.memory_max_bytes)

    async def close(self) -> None:
        for store in [*self._retired, self.store, self._fallback]:
            if store is not None:
                try:
                    await store.close()
                except Exception:  # closing a dead Redis connection may fail; nothing to keep
                    log.debug("closing cache store %s failed", store.name, exc_info=True)
        self._retired.clear()

    # --- per request ---------------------------------------------------------------------------

    def ticket(
        self,
        *,
        principal: Principal,
        family: ApiFamily,
        model: str,
        upstream_model: str,
        body: dict[str, Any],
        headers: Mapping[str, str],
    ) -> CacheTicket | None:
        """The request's ticket, or ``None`` when the cache is off (for everyone, this key or
        this model). A malformed ``Cache-Control`` is an ``InvalidRequestError``."""
        c = self.config
        if not c.enabled or self.store is None:
            return None
        ttl = c.ttl_seconds
        for override in (c.models.get(model), c.keys.get(principal.key_id or "")):
            if override is not None:
                if not override.enabled:
                    return None
                ttl = override.ttl_seconds or ttl
        directives = parse_cache_control(headers)
        key = request_cache_key(
            family,
            body,
            upstream_model=upstream_model,
            scope=cache_scope(principal, c.scope),
        )
        return CacheTicket(key, directives, ttl)

    def _live_store(self, ticket: CacheTicket) -> CacheStore | None:
        """The store to use now, or ``None`` (the ticket becomes a ``bypass``)."""
        if self.store is None:
            ticket.status = "bypass"
            return None
        if time.monotonic() < self._down_until:
            if self.config.redis_outage == "memory":
                if self._fallback is None:
                    self._fallback = MemoryStore(self.config.memory_max_bytes)
                return self._fallback
            ticket.status = "bypass"
            return None
        return self.store

    def _failed(self, store: CacheStore, ticket: CacheTicket, exc: Exception) -> None:
        self.metrics.store_errors.labels(store.name).inc()
        if store is self.store:
            self._down_until = time.monotonic() + self.config.redis_retry_seconds
            log.warning(
                "gateway cache: %s store failed (%s); %s for %.1fs",
                store.name,
                exc,
                "in-process fallback" if self.config.redis_outage == "memory" else "bypassed",
                self.config.redis_retry_seconds,
            )
        if self.config.redis_outage != "memory":
            ticket.status = "bypass"

    def shared_store(self) -> RedisStore | None:
        """The Redis store when entries are shared by replicas and it is not skipped after a
        failure (``None`` otherwise)."""
        if isinstance(self.store, RedisStore) and time.monotonic() >= self._down_until:
            return self.store
        return None

    async def lookup(self, ticket: CacheTicket) -> CachedAnswer | None:
        """The fresh entry of the ticket's key, or ``None`` (a miss, or a bypass)."""
        if not ticket.may_read:
            return None
        store = self._live_store(ticket)
        if store is None:
            return None
        try:
            data = await store.get(ticket.key.digest)
        except CacheStoreUnavailableError as exc:
            self._failed(store, ticket, exc)
            return None
        answer = decode_answer(data) if data is not None else None
        if answer is None or not answer.fresh(time.time(), ticket.directives.max_age):
            return None
        ticket.status = "hit"
        return answer

    async def save(self, ticket: CacheTicket, answer: CachedAnswer) -> bool:
        """Stores a complete answer; ``False`` when it was not stored (no-store, too large,
        store unavailable)."""
        if not ticket.may_store or answer.size() > self.config.max_entry_bytes:
            return False
        store = self._live_store(ticket)
        if store is None:
            return False
        answer.expires_at = answer.created_at + ticket.ttl_seconds
        try:
            await store.put(ticket.key.digest, encode_answer(answer), ticket.ttl_seconds)
        except CacheStoreUnavailableError as exc:
            self._failed(store, ticket, exc)
            return False
        return True


def _store_settings(c: CacheConfig) -> tuple[object, ...]:
    return (
        c.enabled,
        c.persist,
        c.path,
        tuple(k.get_secret_value() for k in c.encryption_keys),
        c.redis,
        c.redis_connect_timeout_seconds,
        c.redis_socket_timeout_seconds,
        c.memory_max_bytes,
        c.max_entry_bytes,
    )


__all__ = ["CacheStatus", "CacheTicket", "ExactCache"]
