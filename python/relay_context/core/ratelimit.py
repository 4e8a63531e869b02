"""Rate limiting per key: in-process, or shared by every process through Redis.

>>> limiter = SlidingWindowRateLimiter(requests=100, window_seconds=60)        # in-process
>>> limiter = SlidingWindowRateLimiter("redis://localhost:6379/0", requests=100, window_seconds=60)
>>> allowed, info = await limiter.is_allowed("user-1")
>>> info
{'remaining': 99, 'reset_at': 1700000060.0, 'retry_after': 0.0, 'limit': 100, 'source': 'redis'}

The decisions are taken in C++ (``relay_context._core.ratelimit``): a sharded in-process store
with bounded memory, or one atomic Lua script per decision on Redis that reads the server's
clock. See ``docs/ratelimit.md`` for the algorithms, the guarantees and the outage policy.
"""

from __future__ import annotations

import asyncio
import functools
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, TypedDict, TypeVar
from urllib.parse import quote

from relay_context import _core
from relay_context.checks import check_int
from relay_context.errors import InputTypeError, InvalidArgumentError

Algorithm = Literal["sliding_log", "sliding_counter", "token_bucket"]
OnRedisError = Literal["fallback", "open", "closed", "raise"]
#: Who decided: the in-process store, Redis, the in-process fallback during a Redis outage, or
#: the outage policy itself (``"open"`` / ``"closed"``).
Source = Literal["memory", "redis", "fallback", "policy"]
_T = TypeVar("_T")

_ALGORITHMS: dict[str, _core.ratelimit.Algorithm] = {
    "sliding_log": _core.ratelimit.Algorithm.SLIDING_LOG,
    "sliding_counter": _core.ratelimit.Algorithm.SLIDING_COUNTER,
    "token_bucket": _core.ratelimit.Algorithm.TOKEN_BUCKET,
}
_POLICIES: dict[str, _core.ratelimit.FailurePolicy] = {
    "fallback": _core.ratelimit.FailurePolicy.FALLBACK,
    "open": _core.ratelimit.FailurePolicy.OPEN,
    "closed": _core.ratelimit.FailurePolicy.CLOSED,
    "raise": _core.ratelimit.FailurePolicy.RAISE,
}

DEFAULT_KEY_PREFIX = "relay:rl:"
DEFAULT_MAX_KEYS = 1_000_000

#: A ``redis://`` / ``unix://`` URL, or a redis-py client whose connection settings are reused.
RedisTarget = str | Any | None


class RateLimitInfo(TypedDict):
    """Details of one decision."""

    #: Requests still admitted right after this decision.
    remaining: int
    #: Unix time (seconds) at which the key's whole quota is back.
    reset_at: float
    #: Seconds to wait before a request would be admitted; 0.0 when this one was.
    retry_after: float
    #: The limit (requests per window, or the burst of a token bucket).
    limit: int
    #: Who decided; see :data:`Source`.
    source: Source
    #: Unix time (seconds) of the decision by the deciding clock: Redis's ``TIME`` with Redis.
    decided_at: float


@dataclass(frozen=True)
class BatchDecisions:
    """Decisions of a batch, column-wise (cheap for large batches); index it for one decision."""

    allowed: list[bool]
    remaining: list[int]
    reset_at: list[float]
    retry_after: list[float]
    decided_at: list[float]
    limit: int
    #: Who decided the batch. On a Redis Cluster with a node down a batch can be mixed: then
    #: this names the degraded source and :attr:`sources` gives each entry's.
    source: Source
    #: Each entry's source when they differ; empty when every entry is :attr:`source`.
    sources: Sequence[Source] = ()

    def __len__(self) -> int:
        return len(self.allowed)

    def __getitem__(self, index: int) -> tuple[bool, RateLimitInfo]:
        return self.allowed[index], {
            "remaining": self.remaining[index],
            "reset_at": self.reset_at[index],
            "retry_after": self.retry_after[index],
            "limit": self.limit,
            "source": self.sources[index] if self.sources else self.source,
            "decided_at": self.decided_at[index],
        }

    def __iter__(self) -> Iterator[tuple[bool, RateLimitInfo]]:
        return (self[i] for i in range(len(self)))

    @property
    def admitted(self) -> int:
        """How many of the batch's requests were admitted."""
        return sum(self.allowed)


#: The largest count (requests, keys, connections) a limiter accepts.
MAX_COUNT = 1_000_000_000


def _check_positive_seconds(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputTypeError(f"{name} must be a number of seconds, not {type(value).__name__}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0:
        raise InvalidArgumentError(f"{name} must be a positive number of seconds, got {value!r}")
    return seconds


def _microseconds(seconds: float, name: str) -> int:
    us = round(seconds * 1_000_000)
    if us < 1:
        raise InvalidArgumentError(f"{name} must be at least one microsecond, got {seconds!r}")
    return us


def _timeout_us(value: object, name: str) -> int:
    return _microseconds(_check_positive_seconds(value, name), name)


def _shards_for(max_keys: int) -> int:
    # Enough shards that threads rarely meet on a lock; few enough that each holds a useful
    # share of max_keys (the per-shard bound is max_keys / shards, rounded up).
    return 64 if max_keys >= 65_536 else 8 if max_keys >= 1024 else 1


def _check_key(key: object) -> str:
    if not isinstance(key, str):
        raise InputTypeError(f"rate-limit key must be a str, not {type(key).__name__}")
    return key


def _keys_list(keys: Sequence[str]) -> list[str]:
    if isinstance(keys, (str, bytes)):
        raise InputTypeError("keys must be a sequence of str, not a single string")
    return keys if type(keys) is list else list(keys)


def redis_url_of(target: RedisTarget) -> str | None:
    """The URL for ``target``: a URL string as is, ``None`` as is, or the connection settings of
    a redis-py client (``redis.Redis``, ``redis.asyncio.Redis``) as a URL."""
    if target is None or isinstance(target, str):
        return target
    pool = getattr(target, "connection_pool", None)
    kwargs = getattr(pool, "connection_kwargs", None)
    if not isinstance(kwargs, dict):
        raise InputTypeError(
            "redis_url must be a redis:// URL, a redis-py client or None, "
            f"not {type(target).__name__}"
        )
    if "SSL" in getattr(getattr(pool, "connection_class", None), "__name__", ""):
        raise InvalidArgumentError(
            "the redis-py client connects with TLS, which the rate limiter does not support"
        )
    username = kwargs.get("username") or ""
    password = kwargs.get("password") or ""
    credentials = ""
    if password:
        credentials = f"{quote(str(username), safe='')}:{quote(str(password), safe='')}@"
    db = int(kwargs.get("db") or 0)
    if kwargs.get("path"):
        return f"unix://{credentials}{kwargs['path']}?db={db}"
    host = str(kwargs.get("host") or "127.0.0.1")
    if ":" in host:
        host = f"[{host}]"
    return f"redis://{credentials}{host}:{int(kwargs.get('port') or 6379)}/{db}"


class RateLimiter:
    """A rate limiter per key. Use :class:`SlidingWindowRateLimiter` or
    :class:`TokenBucketRateLimiter`; both share these methods.

    Without ``redis_url`` the limits hold per process (thread-safe, sharded locks, at most
    ``max_keys`` keys; idle keys are dropped). With it they hold across every process that uses
    the same Redis and ``key_prefix``; ``on_redis_error`` says what decides while Redis is down:

    - ``"fallback"`` (default): an in-process limiter with the same limits (per process),
    - ``"open"``: admit everything, ``"closed"``: deny everything,
    - ``"raise"``: raise :class:`~relay_context.errors.BackendUnavailableError`.

    Redis is retried with exponential backoff (``retry_backoff`` doubling up to
    ``retry_backoff_max`` seconds) and takes over again as soon as it answers. An unreachable
    Redis at construction raises ``BackendUnavailableError`` under ``"raise"`` and ``"closed"``
    (a wrong URL shows at start rather than as refused traffic); ``"fallback"`` and ``"open"``
    start degraded.
    """

    def __init__(
        self,
        redis_url: RedisTarget,
        *,
        algorithm: Algorithm,
        limit: int,
        window_us: int,
        key_prefix: str,
        on_redis_error: OnRedisError,
        connect_timeout: float,
        command_timeout: float,
        max_connections: int,
        retry_backoff: float,
        retry_backoff_max: float,
        max_keys: int,
    ) -> None:
        if not isinstance(algorithm, str) or algorithm not in _ALGORITHMS:
            raise InvalidArgumentError(
                f"algorithm must be one of {sorted(_ALGORITHMS)}, got {algorithm!r}"
            )
        if not isinstance(on_redis_error, str) or on_redis_error not in _POLICIES:
            raise InvalidArgumentError(
                f"on_redis_error must be one of {sorted(_POLICIES)}, got {on_redis_error!r}"
            )
        if not isinstance(key_prefix, str):
            raise InputTypeError(f"key_prefix must be a str, not {type(key_prefix).__name__}")
        check_int(max_keys, "max_keys", minimum=1, maximum=MAX_COUNT)
        check_int(max_connections, "max_connections", minimum=1, maximum=MAX_COUNT)
        url = redis_url_of(redis_url)
        self._algorithm: Algorithm = algorithm
        self._limit = limit
        self._window_us = window_us
        self._on_redis_error: OnRedisError = on_redis_error
        self._url = url
        self._max_connections = max_connections
        self._executor: ThreadPoolExecutor | None = None
        self._executor_lock = threading.Lock()
        self._local: _core.ratelimit.LocalLimiter | None = None
        self._redis: _core.ratelimit.RedisLimiter | None = None
        self._decide: Callable[[str], _core.ratelimit.DecisionTuple]
        self._decide_batch: Callable[[list[str]], _core.ratelimit.BatchTuple]
        if url is None:
            self._local = _core.ratelimit.LocalLimiter(
                _ALGORITHMS[algorithm], limit, window_us, max_keys, _shards_for(max_keys)
            )
            self._decide = self._local.decide
            self._decide_batch = self._local.decide_batch
        else:
            self._redis = _core.ratelimit.RedisLimiter(
                _ALGORITHMS[algorithm],
                limit,
                window_us,
                url,
                key_prefix,
                _timeout_us(connect_timeout, "connect_timeout"),
                _timeout_us(command_timeout, "command_timeout"),
                max_connections,
                _POLICIES[on_redis_error],
                _timeout_us(retry_backoff, "retry_backoff"),
                _timeout_us(retry_backoff_max, "retry_backoff_max"),
                max_keys,
            )
            self._decide = self._redis.decide
            self._decide_batch = self._redis.decide_batch

    # --- decisions -------------------------------------------------------------------------

    def is_allowed_sync(self, key: str) -> tuple[bool, RateLimitInfo]:
        """Decides one request for ``key`` and records it when admitted."""
        if type(key) is not str:
            _check_key(key)
        allowed, remaining, reset_at, retry_after, decided_at, source = self._decide(key)
        return allowed, {
            "remaining": remaining,
            "reset_at": reset_at,
            "retry_after": retry_after,
            "limit": self._limit,
            "source": source,  # type: ignore[typeddict-item]
            "decided_at": decided_at,
        }

    async def is_allowed(self, key: str) -> tuple[bool, RateLimitInfo]:
        """Awaitable :meth:`is_allowed_sync`. With Redis the round trip runs in a worker thread
        (the GIL is released), so the event loop keeps running."""
        if self._redis is None:
            return self.is_allowed_sync(key)
        return await self._off_loop(self.is_allowed_sync, key)

    def is_allowed_batch_sync(self, keys: Sequence[str]) -> BatchDecisions:
        """Decides one request per entry of ``keys`` in one call (a key may repeat: several
        requests of that key, in order). In-process it runs without the GIL; with Redis it is
        one pipelined round trip."""
        key_list = _keys_list(keys)
        try:
            allowed, remaining, reset_at, retry_after, decided_at, source, sources = (
                self._decide_batch(key_list)
            )
        except TypeError:
            for key in key_list:
                _check_key(key)
            raise
        return BatchDecisions(
            allowed,
            remaining,
            reset_at,
            retry_after,
            decided_at,
            self._limit,
            source,  # type: ignore[arg-type]
            sources,  # type: ignore[arg-type]
        )

    async def is_allowed_batch(self, keys: Sequence[str]) -> BatchDecisions:
        """Awaitable :meth:`is_allowed_batch_sync`, off the event loop."""
        return await self._off_loop(self.is_allowed_batch_sync, keys)

    def reset_sync(self, key: str) -> None:
        """Forgets ``key``: its whole quota is back (in Redis and in the fallback)."""
        _check_key(key)
        if self._redis is not None:
            self._redis.reset(key)
        elif self._local is not None:
            self._local.reset(key)

    async def reset(self, key: str) -> None:
        """Awaitable :meth:`reset_sync`."""
        if self._redis is None:
            self.reset_sync(key)
        else:
            await self._off_loop(self.reset_sync, key)

    async def _off_loop(self, fn: Callable[[Any], _T], arg: Any) -> _T:
        # One worker thread per pooled connection, so that as many Redis round trips as the
        # pool allows can be in flight from one event loop (the C++ call releases the GIL).
        if self._executor is None:
            with self._executor_lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(
                        max_workers=self._max_connections, thread_name_prefix="relay-ratelimit"
                    )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, arg))

    def close(self) -> None:
        """Stops the worker threads of the async methods (they start again when needed)."""
        with self._executor_lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)

    # --- introspection ---------------------------------------------------------------------

    @property
    def limit(self) -> int:
        return self._limit

    @property
    def algorithm(self) -> Algorithm:
        return self._algorithm

    @property
    def backend(self) -> Literal["memory", "redis"]:
        return "memory" if self._redis is None else "redis"

    @property
    def redis_available(self) -> bool | None:
        """``None`` in-process; otherwise ``False`` while Redis is considered down."""
        return None if self._redis is None else self._redis.available

    @property
    def last_redis_error(self) -> str | None:
        return None if self._redis is None else self._redis.last_error()

    def cluster_stats(self) -> dict[str, int | bool]:
        """How the Redis client has met Redis Cluster: ``cluster`` (a ``MOVED`` was seen and
        commands are routed by slot), ``nodes`` it holds a pool for, and the ``moved``, ``ask``,
        ``tryagain`` replies followed and ``slot_refreshes`` (``CLUSTER SLOTS`` loads). Empty
        in-process."""
        return {} if self._redis is None else self._redis.cluster_stats()

    def stats(self) -> dict[str, int]:
        """Keys tracked in process and evictions (idle ones are lossless, active ones happen
        only at ``max_keys``). Empty with Redis."""
        return {} if self._local is None else self._local.stats()


class SlidingWindowRateLimiter(RateLimiter):
    """At most ``requests`` per key in any window of ``window_seconds``.

    ``algorithm="sliding_log"`` (default) is exact: one timestamp per admitted request, so a key
    costs up to ``requests`` timestamps (8 bytes each in process, a sorted-set entry in Redis).
    ``"sliding_counter"`` costs O(1) per key and approximates the window from the current and
    the previous fixed windows; it never admits more than ``requests`` in one fixed window but
    can admit up to twice that in a sliding one when traffic bunches at a window's end.
    """

    def __init__(
        self,
        redis_url: RedisTarget = None,
        requests: int = 100,
        window_seconds: float = 60,
        *,
        algorithm: Literal["sliding_log", "sliding_counter"] = "sliding_log",
        key_prefix: str = DEFAULT_KEY_PREFIX,
        on_redis_error: OnRedisError = "fallback",
        connect_timeout: float = 1.0,
        command_timeout: float = 0.5,
        max_connections: int = 50,
        retry_backoff: float = 0.1,
        retry_backoff_max: float = 5.0,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        if algorithm not in ("sliding_log", "sliding_counter"):
            raise InvalidArgumentError(
                "algorithm must be 'sliding_log' or 'sliding_counter' "
                f"(TokenBucketRateLimiter is the token bucket), got {algorithm!r}"
            )
        limit = check_int(requests, "requests", minimum=1, maximum=MAX_COUNT)
        window = _check_positive_seconds(window_seconds, "window_seconds")
        self.window_seconds = window
        super().__init__(
            redis_url,
            algorithm=algorithm,
            limit=limit,
            window_us=_microseconds(window, "window_seconds"),
            key_prefix=key_prefix,
            on_redis_error=on_redis_error,
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
            max_connections=max_connections,
            retry_backoff=retry_backoff,
            retry_backoff_max=retry_backoff_max,
            max_keys=max_keys,
        )

    @classmethod
    def from_settings(cls, settings: Any = None, **overrides: Any) -> SlidingWindowRateLimiter:
        """Built from :class:`~relay_context.config.settings.Settings` (``REDIS_URL``,
        ``RATE_LIMIT_REQUESTS``, ``RATE_LIMIT_WINDOW_SECONDS``, ``REDIS_MAX_CONNECTIONS``)."""
        if settings is None:
            from relay_context.config.settings import get_settings

            settings = get_settings()
        kwargs: dict[str, Any] = {
            "redis_url": settings.redis_url,
            "requests": settings.rate_limit_requests,
            "window_seconds": settings.rate_limit_window_seconds,
            "max_connections": settings.redis_max_connections,
        }
        kwargs.update(overrides)
        return cls(**kwargs)

    def __repr__(self) -> str:
        where = "in-process" if self._url is None else "redis"
        return (
            f"SlidingWindowRateLimiter(requests={self._limit}, "
            f"window_seconds={self.window_seconds}, algorithm={self._algorithm!r}, {where})"
        )


class TokenBucketRateLimiter(RateLimiter):
    """Smooth traffic: ``requests_per_second`` on average, with bursts of up to ``burst``.

    Each key holds a bucket of ``burst`` tokens refilled at ``requests_per_second``; a request
    takes one token. ``requests_per_second=0.2, burst=1`` is one request every five seconds.
    """

    def __init__(
        self,
        redis_url: RedisTarget = None,
        requests_per_second: float = 10.0,
        burst: int = 20,
        *,
        key_prefix: str = DEFAULT_KEY_PREFIX,
        on_redis_error: OnRedisError = "fallback",
        connect_timeout: float = 1.0,
        command_timeout: float = 0.5,
        max_connections: int = 50,
        retry_backoff: float = 0.1,
        retry_backoff_max: float = 5.0,
        max_keys: int = DEFAULT_MAX_KEYS,
    ) -> None:
        rate = _check_positive_seconds(requests_per_second, "requests_per_second")
        capacity = check_int(burst, "burst", minimum=1, maximum=MAX_COUNT)
        self.requests_per_second = rate
        super().__init__(
            redis_url,
            algorithm="token_bucket",
            limit=capacity,
            # The bucket refills completely in burst / rate seconds.
            window_us=_microseconds(capacity / rate, "burst / requests_per_second"),
            key_prefix=key_prefix,
            on_redis_error=on_redis_error,
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
            max_connections=max_connections,
            retry_backoff=retry_backoff,
            retry_backoff_max=retry_backoff_max,
            max_keys=max_keys,
        )

    def __repr__(self) -> str:
        where = "in-process" if self._url is None else "redis"
        return (
            f"TokenBucketRateLimiter(requests_per_second={self.requests_per_second}, "
            f"burst={self._limit}, {where})"
        )


__all__ = [
    "Algorithm",
    "BatchDecisions",
    "OnRedisError",
    "RateLimitInfo",
    "RateLimiter",
    "SlidingWindowRateLimiter",
    "Source",
    "TokenBucketRateLimiter",
    "redis_url_of",
]
