"""One connection pool per upstream (:mod:`relay_context.gateway.http_client`: HTTP/1.1,
keep-alive, explicit connect / read / pool timeouts), and one call to it.

A call's non-2xx answer becomes :class:`UpstreamError` (with the upstream's own message and
``retry-after``); a connection failure, timeout or cut becomes
:class:`UpstreamUnavailableError`. Nothing here retries: the pipeline decides.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from relay_context.gateway.errors import UpstreamError, UpstreamUnavailableError
from relay_context.gateway.http_client import (
    TIMEOUT_ERRORS,
    ConnectionPool,
    HttpClientError,
    UpstreamResponse,
)
from relay_context.gateway.retry_policy import parse_retry_after
from relay_context.gateway.routing import Provider
from relay_context.gateway.sse_reader import SseEvent


class UpstreamAnswer(Protocol):
    """An upstream's answer as the pipeline reads it: this pool's own
    (:class:`~relay_context.gateway.http_client.UpstreamResponse`), or a waiter's view of a
    shared call (:class:`~relay_context.gateway.coalescing.FlightAnswer`)."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def content(self) -> bytes: ...

    async def aread(self) -> bytes: ...

    def aiter_raw(self) -> AsyncIterator[bytes]: ...

    def event_batches(self) -> AsyncIterator[list[SseEvent]]:
        """The body's Server-Sent Events, as the complete events each read brought."""
        ...

    async def aclose(self) -> None: ...


#: What reading an answer may raise when the upstream fails mid-answer.
ANSWER_READ_ERRORS = (HttpClientError,)

#: How long a call may wait for a pooled connection, in seconds.
POOL_TIMEOUT_SECONDS = 30.0
KEEPALIVE_EXPIRY_SECONDS = 60.0


@dataclass(frozen=True)
class PoolSettings:
    connect_timeout: float
    read_timeout: float
    max_connections: int


@dataclass
class UpstreamPool:
    settings: PoolSettings
    _clients: dict[str, ConnectionPool] = field(default_factory=dict)
    _retired: list[ConnectionPool] = field(default_factory=list)

    def reconfigure(self, settings: PoolSettings) -> None:
        if settings != self.settings:
            self._retired.extend(self._clients.values())
            self._clients = {}
            self.settings = settings

    def client(self, provider: Provider) -> ConnectionPool:
        client = self._clients.get(provider.base_url)
        if client is None:
            s = self.settings
            client = ConnectionPool(
                provider.base_url,
                connect_timeout=s.connect_timeout,
                read_timeout=s.read_timeout,
                pool_timeout=POOL_TIMEOUT_SECONDS,
                max_connections=s.max_connections,
                keepalive_expiry=KEEPALIVE_EXPIRY_SECONDS,
            )
            self._clients[provider.base_url] = client
        return client

    async def close(self) -> None:
        for client in [*self._clients.values(), *self._retired]:
            with contextlib.suppress(Exception):
                await client.aclose()
        self._clients = {}
        self._retired = []


def upstream_error_message(raw: bytes) -> tuple[str, str | None]:
    """The message and type of an upstream's error body (OpenAI or Anthropic shape)."""
    try:
        body = json.loads(raw)
    except ValueError:
        text = raw.decode("utf-8", "replace").strip()
        return (text[:500] or "upstream error"), None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or "upstream error"), error.get("type")
    if isinstance(error, str):
        return error, None
    if isinstance(body, dict) and "message" in body:
        return str(body["message"]), None
    return "upstream error", None


async def call_upstream(
    pool: UpstreamPool,
    provider: Provider,
    path: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    stream: bool,
) -> UpstreamResponse:
    """POST ``body`` to ``provider``'s ``path``; a 2xx response (its body unread when
    ``stream``; close it), else raises."""
    try:
        response = await pool.client(provider).post(path, body, headers)
    except TIMEOUT_ERRORS as exc:
        raise UpstreamUnavailableError(
            f"upstream {provider.name} timed out ({type(exc).__name__}: {exc})",
            provider=provider.name,
            timeout=True,
        ) from exc
    except HttpClientError as exc:
        raise UpstreamUnavailableError(
            f"upstream {provider.name} unreachable: {type(exc).__name__}: {exc}",
            provider=provider.name,
        ) from exc
    if response.status_code >= 400:
        try:
            raw = await response.aread()
        except HttpClientError:
            raw = b""
        finally:
            await response.aclose()
        message, kind = upstream_error_message(raw)
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        ms = parse_retry_after(response.headers.get("retry-after-ms"))
        if ms is not None:
            retry_after = ms / 1000
        raise UpstreamError(
            message,
            status=response.status_code,
            provider=provider.name,
            retry_after=retry_after,
            upstream_type=kind,
        )
    if not stream:
        try:
            await response.aread()
        except TIMEOUT_ERRORS as exc:
            raise UpstreamUnavailableError(
                f"upstream {provider.name} timed out reading the answer",
                provider=provider.name,
                timeout=True,
            ) from exc
        except HttpClientError as exc:
            raise UpstreamUnavailableError(
                f"upstream {provider.name} cut the answer: {type(exc).__name__}",
                provider=provider.name,
            ) from exc
        finally:
            await response.aclose()
    return response


__all__ = [
    "ANSWER_READ_ERRORS",
    "PoolSettings",
    "UpstreamAnswer",
    "UpstreamPool",
    "call_upstream",
    "upstream_error_message",
]
