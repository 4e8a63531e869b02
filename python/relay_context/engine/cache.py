"""``ContextCache``: hot context windows, in Redis when ``REDIS_URL`` is set, else in-process.

A cached window is opaque bytes (the engine serialises it) stored under the session id, a
*variant* (what the window was built for, e.g. a model and a budget) and a *version*: the
session's :attr:`~relay_context.engine.models.Session.cache_version`, which changes with every
write to the session. ``get`` returns a value only if it was stored for the version asked for,
so a window built from old messages is never served, even if it was stored after the write that
made it stale (a race no invalidation order can prevent). The session store additionally calls
``invalidate`` after every committed write, so stale windows do not sit in memory.

In Redis the windows are stored compressed (the codec the store uses, tag in each value) in one
hash per session (``<prefix>ctx:<session id>``, one field per variant) with a TTL. The engine
stores and reads whole windows (``set_window`` / ``get_window``): through Redis as JSON, while
the in-process cache keeps the window object itself (windows are immutable), so a hit costs no
parse and a miss no serialisation.
"""

from __future__ import annotations

import abc
import dataclasses
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from relay_context.checks import check_int
from relay_context.engine.codec import CodecSet, ContentCodec
from relay_context.engine.models import validate_session_id
from relay_context.engine.window import ContextWindow
from relay_context.errors import (
    BackendUnavailableError,
    CorruptFrameError,
    InputTypeError,
    InvalidArgumentError,
)
from relay_context.lifecycle import AsyncResource
from relay_context.persistence.redis import redis_client_for

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from relay_context.config.settings import Settings

VARIANT_MAX_LENGTH = 256


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    sets: int = 0
    invalidations: int = 0

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


def _check_key(session_id: str, version: str, variant: str) -> None:
    validate_session_id(session_id)
    for what, value in (("version", version), ("variant", variant)):
        if not isinstance(value, str):
            raise InputTypeError(f"cache {what} must be a str, got {type(value).__name__}")
        if len(value) > VARIANT_MAX_LENGTH or "\n" in value:
            raise InvalidArgumentError(
                f"cache {what} {value[:40]!r} must be at most {VARIANT_MAX_LENGTH} characters"
                " without newlines"
            )
    if not version:
        raise InvalidArgumentError("cache version is empty; pass Session.cache_version")


class ContextCache(AsyncResource, abc.ABC):
    """Versioned cache of context windows (bytes) per session and variant."""

    def __init__(self, default_ttl_seconds: int) -> None:
        self.default_ttl_seconds = check_int(default_ttl_seconds, "ttl_seconds", minimum=1)
        self.stats = CacheStats()

    async def get(self, session_id: str, version: str, variant: str = "") -> bytes | None:
        """The window stored for exactly this ``version`` and ``variant``, else ``None``."""
        _check_key(session_id, version, variant)
        value = await self._get(session_id, version, variant)
        if value is None:
            self.stats.misses += 1
        else:
            self.stats.hits += 1
        return value

    async def set(
        self,
        session_id: str,
        version: str,
        payload: bytes,
        *,
        variant: str = "",
        ttl_seconds: int | None = None,
    ) -> None:
        """Store ``payload`` for ``version``/``variant`` for ``ttl_seconds`` (default setting)."""
        _check_key(session_id, version, variant)
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise InputTypeError(f"payload must be bytes, got {type(payload).__name__}")
        await self._set(session_id, version, variant, bytes(payload), self._ttl(ttl_seconds))
        self.stats.sets += 1

    def _ttl(self, ttl_seconds: int | None) -> int:
        if ttl_seconds is None:
            return self.default_ttl_seconds
        return check_int(ttl_seconds, "ttl_seconds", minimum=1)

    async def get_window(
        self, session_id: str, version: str, variant: str = ""
    ) -> ContextWindow | None:
        """The window stored for exactly this ``version`` and ``variant`` (``from_cache``
        set), else ``None``. A payload that is not a window raises ``ValueError``."""
        payload = await self.get(session_id, version, variant)
        return None if payload is None else ContextWindow.from_json(payload, from_cache=True)

    async def set_window(
        self,
        session_id: str,
        version: str,
        window: ContextWindow,
        *,
        variant: str = "",
        ttl_seconds: int | None = None,
    ) -> None:
        """Store ``window`` for ``version``/``variant`` (as :meth:`set` of its JSON)."""
        await self.set(
            session_id, version, window.to_json(), variant=variant, ttl_seconds=ttl_seconds
        )

    async def invalidate(self, session_id: str) -> None:
        """Forget every window of the session (all variants and versions)."""
        validate_session_id(session_id)
        await self._invalidate(session_id)
        self.stats.invalidations += 1

    async def close(self) -> None:
        """Release connections. Idempotent."""

    @abc.abstractmethod
    async def _get(self, session_id: str, version: str, variant: str) -> bytes | None: ...

    @abc.abstractmethod
    async def _set(
        self, session_id: str, version: str, variant: str, payload: bytes, ttl: int
    ) -> None: ...

    @abc.abstractmethod
    async def _invalidate(self, session_id: str) -> None: ...


#: Bytes an in-process cache entry costs besides its payload (key tuple, strings, dict slots).
ENTRY_OVERHEAD_BYTES = 512
#: Bytes a window's message object costs besides its content (the object, its fields).
WINDOW_MESSAGE_OVERHEAD_BYTES = 200


def window_footprint(window: ContextWindow) -> int:
    """Estimated bytes a window object held by the in-process cache costs: its message
    contents and a fixed cost per message, plus its seq tuples (what its JSON would be, within
    a small factor, without making it)."""
    seqs = len(window.dropped_seqs) + len(window.kept_seqs) + len(window.deduplicated_seqs)
    return (
        sum(map(sys.getsizeof, [m.content for m in window.messages]))
        + WINDOW_MESSAGE_OVERHEAD_BYTES * len(window.messages)
        + 8 * seqs
    )


class InProcessContextCache(ContextCache):
    """A bounded LRU in this process: at most ``max_entries`` windows and ``max_bytes`` of them
    (payloads plus :data:`ENTRY_OVERHEAD_BYTES` each), each with a TTL. A window is as large as
    its budget, so a count alone bounds nothing.

    ``max_entries=0`` (or a ``max_bytes`` below one entry) disables caching (every ``get``
    misses); a window larger than ``max_bytes`` is not stored. Not shared between processes;
    the versioning keeps it correct anyway, each process just warms its own copy. Windows given
    to :meth:`set_window` are kept as objects, counted at :func:`window_footprint`.
    """

    def __init__(
        self,
        max_entries: int = 1024,
        *,
        max_bytes: int = 64 * 1024 * 1024,
        default_ttl_seconds: int = 300,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(default_ttl_seconds)
        if not isinstance(max_entries, int) or isinstance(max_entries, bool) or max_entries < 0:
            raise InvalidArgumentError(f"max_entries must be an int >= 0, got {max_entries!r}")
        self.max_entries = max_entries
        self.max_bytes = check_int(max_bytes, "max_bytes", minimum=0)
        self._clock = clock
        # (session id, variant) -> (version, payload or window, size counted, expiry on
        # self._clock); oldest use first.
        self._entries: OrderedDict[
            tuple[str, str], tuple[str, bytes | ContextWindow, int, float]
        ] = OrderedDict()
        self._variants: dict[str, set[str]] = {}
        #: Bytes held: payloads plus ENTRY_OVERHEAD_BYTES per entry.
        self.total_bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def _drop(self, key: tuple[str, str]) -> None:
        self.total_bytes -= self._entries.pop(key)[2]
        variants = self._variants[key[0]]
        variants.discard(key[1])
        if not variants:
            del self._variants[key[0]]

    def _lookup(self, session_id: str, version: str, variant: str) -> bytes | ContextWindow | None:
        key = (session_id, variant)
        entry = self._entries.get(key)
        if entry is None:
            return None
        stored_version, value, _, expires = entry
        if self._clock() >= expires:
            self._drop(key)
            return None
        if stored_version != version:
            return None
        self._entries.move_to_end(key)
        return value

    async def _get(self, session_id: str, version: str, variant: str) -> bytes | None:
        value = self._lookup(session_id, version, variant)
        return value.to_json() if isinstance(value, ContextWindow) else value

    async def _set(
        self, session_id: str, version: str, variant: str, payload: bytes, ttl: int
    ) -> None:
        self._store(session_id, version, variant, payload, len(payload), ttl)

    def _store(
        self,
        session_id: str,
        version: str,
        variant: str,
        value: bytes | ContextWindow,
        nbytes: int,
        ttl: int,
    ) -> None:
        key = (session_id, variant)
        if key in self._entries:
            self._drop(key)
        size = nbytes + ENTRY_OVERHEAD_BYTES
        if self.max_entries == 0 or size > self.max_bytes:
            return
        self._entries[key] = (version, value, size, self._clock() + ttl)
        self.total_bytes += size
        self._variants.setdefault(session_id, set()).add(variant)
        while len(self._entries) > self.max_entries or self.total_bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    async def get_window(
        self, session_id: str, version: str, variant: str = ""
    ) -> ContextWindow | None:
        _check_key(session_id, version, variant)
        value = self._lookup(session_id, version, variant)
        if value is None:
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        if isinstance(value, ContextWindow):
            return dataclasses.replace(value, from_cache=True)
        return ContextWindow.from_json(value, from_cache=True)

    async def set_window(
        self,
        session_id: str,
        version: str,
        window: ContextWindow,
        *,
        variant: str = "",
        ttl_seconds: int | None = None,
    ) -> None:
        _check_key(session_id, version, variant)
        if not isinstance(window, ContextWindow):
            raise InputTypeError(f"window must be a ContextWindow, got {type(window).__name__}")
        ttl = self._ttl(ttl_seconds)
        if window.from_cache:
            window = dataclasses.replace(window, from_cache=False)
        self._store(session_id, version, variant, window, window_footprint(window), ttl)
        self.stats.sets += 1

    async def _invalidate(self, session_id: str) -> None:
        for variant in list(self._variants.get(session_id, ())):
            self._drop((session_id, variant))


class RedisContextCache(ContextCache):
    """Windows in Redis, compressed, one hash per session under ``key_prefix``.

    Each value is ``<version>\\n<codec tag>\\n<blob>``; a value for another version is a miss.
    Redis being unreachable raises :class:`BackendUnavailableError`.
    """

    def __init__(
        self,
        client: Redis,
        *,
        key_prefix: str = "relay:",
        codec: ContentCodec | None = None,
        codec_tag: str | None = None,
        read_codecs: dict[str, ContentCodec] | None = None,
        default_ttl_seconds: int = 300,
        owns_client: bool = False,
    ) -> None:
        super().__init__(default_ttl_seconds)
        if not isinstance(key_prefix, str):
            raise InputTypeError(f"key_prefix must be a str, got {type(key_prefix).__name__}")
        self.client = client
        self.key_prefix = key_prefix
        self.codecs = CodecSet(codec, codec_tag, readers=read_codecs)
        self._owns_client = owns_client

    @classmethod
    def from_url(cls, url: str, *, max_connections: int = 50, **kwargs: Any) -> RedisContextCache:
        """A cache with its own connection pool to ``url`` (closed by :meth:`close`)."""
        from redis.asyncio import Redis

        client = Redis.from_url(url, max_connections=max_connections)
        return cls(client, owns_client=True, **kwargs)

    def key(self, session_id: str) -> str:
        return f"{self.key_prefix}ctx:{session_id}"

    async def _call(self, what: str, operation: Any) -> Any:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError

        try:
            return await operation
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise BackendUnavailableError(f"Redis unavailable during cache {what}: {exc}") from exc

    async def _get(self, session_id: str, version: str, variant: str) -> bytes | None:
        value = await self._call("get", self.client.hget(self.key(session_id), variant))
        if value is None:
            return None
        try:
            stored_version, tag, blob = bytes(value).split(b"\n", 2)
        except ValueError:
            raise CorruptFrameError(
                f"cached window of {session_id!r} at {self.key(session_id)} is malformed"
            ) from None
        if stored_version.decode("utf-8", "replace") != version:
            return None
        return self.codecs.decode(tag.decode("ascii", "replace"), blob)

    async def _set(
        self, session_id: str, version: str, variant: str, payload: bytes, ttl: int
    ) -> None:
        tag, blob = self.codecs.encode(payload)
        value = b"\n".join((version.encode(), tag.encode(), blob))
        key = self.key(session_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(key, variant, value)  # type: ignore[arg-type]  # redis accepts bytes values
        pipe.expire(key, ttl)
        await self._call("set", pipe.execute())

    async def _invalidate(self, session_id: str) -> None:
        await self._call("invalidate", self.client.delete(self.key(session_id)))

    async def close(self) -> None:
        if self._owns_client:
            self._owns_client = False
            await self.client.aclose()


def open_cache(
    settings: Settings,
    *,
    codec: ContentCodec | None = None,
    codec_tag: str | None = None,
    redis: Redis | None = None,
) -> ContextCache:
    """Redis when ``settings.redis_url`` is set, else the in-process LRU. ``redis``: the
    process's shared client (not closed by the cache); else the cache makes its own."""
    if settings.redis_url:
        owns = redis is None
        return RedisContextCache(
            redis_client_for(settings) if redis is None else redis,
            owns_client=owns,
            key_prefix=settings.redis_key_prefix,
            codec=codec,
            codec_tag=codec_tag,
            default_ttl_seconds=settings.context_cache_ttl_seconds,
        )
    return InProcessContextCache(
        settings.context_cache_entries,
        max_bytes=settings.context_cache_max_bytes,
        default_ttl_seconds=settings.context_cache_ttl_seconds,
    )


__all__ = [
    "CacheStats",
    "ContextCache",
    "InProcessContextCache",
    "RedisContextCache",
    "open_cache",
]
