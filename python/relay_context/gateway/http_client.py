"""A lean HTTP/1.1 client for the gateway's upstream calls: asyncio transports, httptools' C
response parser, keep-alive connections pooled per origin.

Why not httpx: on the gateway's hot path httpx cost more than everything else Relay does for a
request (profiled under ``relay serve``: building its ``Request`` and ``Headers``, h11's
pure-Python parsing and the anyio layers were ~40 % of the process's CPU for a small chat
completion). This client does one thing — POST a body, read the answer, whole or as it comes —
in one ``write`` per request and a C parser, with explicit connect / read / pool timeouts.

* :class:`ConnectionPool` (one per upstream base URL): at most ``max_connections``; a caller
  waits up to ``pool_timeout`` for one; idle connections are reused newest first and dropped
  after ``keepalive_expiry``. A request that fails on a reused connection before any byte of
  the answer arrived (the server closed it while idle) is sent once more on a new connection.
* :class:`UpstreamResponse`: ``status_code``, ``headers`` (lower-case names), then either
  :meth:`~UpstreamResponse.aread` / ``content`` or :meth:`~UpstreamResponse.aiter_raw`
  (the body as it arrives, transfer coding removed), and :meth:`~UpstreamResponse.aclose`.
  ``gzip`` / ``deflate`` content codings are decoded.
* Failures are :class:`HttpClientError` subclasses: :class:`ConnectTimeoutError`,
  :class:`ReadTimeoutError`, :class:`PoolTimeoutError`, :class:`ConnectionFailedError`,
  :class:`ConnectionCutError` (closed mid-answer), :class:`ProtocolViolationError`.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools

from relay_context.gateway.sse_reader import SseEvent, read_event_batches

#: Body bytes buffered from the socket before reading pauses (until the consumer catches up).
HIGH_WATER_BYTES = 1 << 20


class HttpClientError(Exception):
    """The upstream could not be reached, or its answer could not be read."""


class ConnectTimeoutError(HttpClientError):
    pass


class ReadTimeoutError(HttpClientError):
    pass


class PoolTimeoutError(HttpClientError):
    pass


class ConnectionFailedError(HttpClientError):
    pass


class ConnectionCutError(HttpClientError):
    pass


class ProtocolViolationError(HttpClientError):
    pass


TIMEOUT_ERRORS = (ConnectTimeoutError, ReadTimeoutError, PoolTimeoutError)


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str
    port: int
    #: The base URL's path, prefixed to every request's path (``/v1``).
    prefix: str

    @classmethod
    def parse(cls, base_url: str) -> Origin:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

    @property
    def host_header(self) -> str:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == default else f"{host}:{self.port}"


class ResponseHeaders(Mapping[str, str]):
    """The answer's headers by lower-case name (repeated ones joined with ``, ``)."""

    __slots__ = ("_items",)

    def __init__(self, items: dict[str, str]) -> None:
        self._items = items

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()]

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        return self._items.get(name.lower(), default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


class _Connection(asyncio.Protocol):
    """One keep-alive connection; serves one request at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._parser: httptools.HttpResponseParser | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._headers: dict[str, str] = {}
        self._head_done = False
        self._body: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._complete = False
        self._received_any = False
        self._error: HttpClientError | None = None
        self._paused = False
        self.keep_alive = True

    # --- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        if self._parser is None:  # bytes while idle: the server is not speaking HTTP to us
            self.closed = True
            if self.transport is not None:
                self.transport.close()
            return
        self._received_any = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ProtocolViolationError(f"invalid HTTP answer: {exc}"))
            if self.transport is not None:
                self.transport.close()
            return
        if self._buffered > HIGH_WATER_BYTES and not self._paused and self.transport:
            self._paused = True
            self.transport.pause_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._parser is not None and not self._complete:
            if self._head_done and not self._has_framing():
                self._complete = True  # a body delimited by the close
            else:
                self._fail(ConnectionCutError("the upstream closed the connection mid-answer"))
        self._wake()

    # --- httptools callbacks ---------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        previous = self._headers.get(key)
        self._headers[key] = text if previous is None else f"{previous}, {text}"

    def on_headers_complete(self) -> None:
        self._head_done = True
        assert self._parser is not None
        self.keep_alive = self._parser.should_keep_alive()
        self._wake()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)
        self._buffered += len(body)
        self._wake()

    def on_message_complete(self) -> None:
        self._complete = True
        self._wake()

    # --- the request -----------------------------------------------------------------------
    def _has_framing(self) -> bool:
        return "content-length" in self._headers or "chunked" in self._headers.get(
            "transfer-encoding", ""
        )

    def _fail(self, error: HttpClientError) -> None:
        if self._error is None:
            self._error = error
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self, timeout: float) -> None:
        waiter = self.loop.create_future()
        self._waiter = waiter
        timer = self.loop.call_later(timeout, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def send(self, data: bytes) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._headers = {}
        self._head_done = self._complete = self._received_any = False
        self._body.clear()
        self._buffered = 0
        self._error = None
        assert self.transport is not None
        self.transport.write(data)

    async def read_head(self, read_timeout: float) -> tuple[int, dict[str, str]]:
        while not self._head_done:
            if self._error is not None:
                raise self._error
            if self.closed:
                raise ConnectionCutError("the upstream closed the connection before answering")
            try:
                await self._wait(read_timeout)
            except TimeoutError:
                raise ReadTimeoutError(f"no answer within {read_timeout:g} s") from None
        assert self._parser is not None
        return self._parser.get_status_code(), self._headers

    async def next_body_chunk(self, read_timeout: float) -> bytes | None:
        """The next piece of the body, ``None`` at its end."""
        while True:
            if self._body:
                chunk = self._body.popleft()
                self._buffered -= len(chunk)
                if self._paused and self._buffered < HIGH_WATER_BYTES // 2 and self.transport:
                    self._paused = False
                    self.transport.resume_reading()
                return chunk
            if self._complete:
                return None
            if self._error is not None:
                raise self._error
            if self.closed:
                raise ConnectionCutError("the upstream closed the connection mid-answer")
            try:
                await self._wait(read_timeout)
            except TimeoutError:
                raise ReadTimeoutError(f"no data within {read_timeout:g} s") from None

    @property
    def answer_started(self) -> bool:
        return self._received_any

    @property
    def reusable(self) -> bool:
        return self._complete and self.keep_alive and not self.closed and self._error is None

    def idle(self) -> None:
        """Done with its request: bytes that arrive now are not an answer to anything."""
        self._parser = None
        self.idle_since = time.monotonic()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class AnswerBody:
    """An answer's body, given :meth:`aiter_raw`: read whole (once) by :meth:`aread` and then
    ``content``, or split into Server-Sent Events by :meth:`event_batches`."""

    _content: bytes | None

    def aiter_raw(self) -> AsyncIterator[bytes]:
        raise NotImplementedError

    @property
    def content(self) -> bytes:
        if self._content is None:
            raise RuntimeError("the body has not been read (await aread())")
        return self._content

    async def aread(self) -> bytes:
        if self._content is None:
            self._content = b"".join([chunk async for chunk in self.aiter_raw()])
        return self._content

    def event_batches(self) -> AsyncIterator[list[SseEvent]]:
        """The body's Server-Sent Events, as the complete events each read brought."""
        return read_event_batches(self.aiter_raw())


class UpstreamResponse(AnswerBody):
    """An answer whose head has arrived; read or stream its body, then :meth:`aclose`."""

    def __init__(
        self,
        pool: ConnectionPool,
        connection: _Connection,
        status_code: int,
        headers: dict[str, str],
    ) -> None:
        self.status_code = status_code
        self.headers = ResponseHeaders(headers)
        self._pool = pool
        self._connection: _Connection | None = connection
        self._content: bytes | None = None
        coding = headers.get("content-encoding", "").strip().lower()
        self._decoder = (
            zlib.decompressobj(16 + zlib.MAX_WBITS)
            if coding == "gzip"
            else zlib.decompressobj()
            if coding == "deflate"
            else None
        )

    async def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body as it arrives (content coding removed)."""
        connection = self._connection
        if connection is None:
            return
        read_timeout = self._pool.read_timeout
        try:
            while True:
                chunk = await connection.next_body_chunk(read_timeout)
                if chunk is None:
                    break
                if self._decoder is not None:
                    try:
                        chunk = self._decoder.decompress(chunk)
                    except zlib.error as exc:
                        raise ProtocolViolationError(f"undecodable body: {exc}") from exc
                if chunk:
                    yield chunk
            if self._decoder is not None:
                tail = self._decoder.flush()
                if tail:
                    yield tail
        finally:
            await self.aclose()

    async def aclose(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._pool.release(connection)


class ConnectionPool:
    """Keep-alive connections to one origin (see the module's docstring)."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        pool_timeout: float,
        max_connections: int,
        keepalive_expiry: float = 60.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.origin = Origin.parse(base_url)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.pool_timeout = pool_timeout
        self.max_connections = max_connections
        self.keepalive_expiry = keepalive_expiry
        self._ssl = ssl_context if self.origin.scheme == "https" else None
        if self.origin.scheme == "https" and self._ssl is None:
            self._ssl = default_ssl_context()
        self._idle: list[_Connection] = []
        self._open = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._closed = False
        self._host_line = f"host: {self.origin.host_header}\r\n".encode("latin-1")

    async def post(self, path: str, body: bytes, headers: Mapping[str, str]) -> UpstreamResponse:
        """Sends ``POST prefix+path`` and returns once the answer's head has arrived."""
        head = [f"POST {self.origin.prefix}{path} HTTP/1.1\r\n".encode("latin-1"), self._host_line]
        for name, value in headers.items():
            if name.lower() in _OWN_HEADERS:
                continue
            head.append(f"{name}: {value}\r\n".encode("latin-1"))
        head.append(f"content-length: {len(body)}\r\n\r\n".encode("latin-1"))
        data = b"".join(head) + body
        for attempt in (0, 1):
            connection, reused = await self._acquire()
            connection.send(data)
            try:
                status, response_headers = await connection.read_head(self.read_timeout)
            except HttpClientError as exc:
                connection.close()
                self.release(connection)
                stale = reused and not connection.answer_started
                if attempt == 0 and stale and not isinstance(exc, ReadTimeoutError):
                    continue  # closed by the server while idle: once more on a new connection
                raise
            except BaseException:  # cancelled (the client went away): the answer is not read
                connection.close()
                self.release(connection)
                raise
            return UpstreamResponse(self, connection, status, response_headers)
        raise AssertionError("unreachable")

    async def _acquire(self) -> tuple[_Connection, bool]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.pool_timeout
        while True:
            now = time.monotonic()
            while self._idle:
                connection = self._idle.pop()
                if not connection.closed and now - connection.idle_since < self.keepalive_expiry:
                    return connection, True
                connection.close()
                self._open -= 1
            if self._open < self.max_connections:
                self._open += 1
                try:
                    return await self._connect(), False
                except BaseException:
                    self._open -= 1
                    self._wake_waiter()
                    raise
            waiter = loop.create_future()
            self._waiters.append(waiter)
            timer = loop.call_later(max(0.0, deadline - loop.time()), _expire, waiter)
            try:
                await waiter
            except TimeoutError:
                raise PoolTimeoutError(
                    f"no connection free within {self.pool_timeout:g} s"
                ) from None
            finally:
                timer.cancel()
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Connection(loop),
                    self.origin.host,
                    self.origin.port,
                    ssl=self._ssl,
                    server_hostname=self.origin.host if self._ssl is not None else None,
                ),
                self.connect_timeout,
            )
        except TimeoutError:
            raise ConnectTimeoutError(
                f"no connection to {self.origin.host}:{self.origin.port} within "
                f"{self.connect_timeout:g} s"
            ) from None
        except (OSError, ssl.SSLError) as exc:
            raise ConnectionFailedError(
                f"cannot connect to {self.origin.host}:{self.origin.port}: {exc}"
            ) from exc
        return protocol

    def release(self, connection: _Connection) -> None:
        """Back to the idle list when it may carry another request, else closed."""
        if connection.reusable and not self._closed:
            connection.idle()
            self._idle.append(connection)
        else:
            connection.close()
            self._open -= 1
        self._wake_waiter()

    def _wake_waiter(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def aclose(self) -> None:
        self._closed = True
        for connection in self._idle:
            connection.close()
        self._open -= len(self._idle)
        self._idle = []


#: Headers the pool writes itself.
_OWN_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


_default_ssl: ssl.SSLContext | None = None


def default_ssl_context() -> ssl.SSLContext:
    """Verifying TLS with certifi's roots when installed (as httpx does), else the system's."""
    global _default_ssl
    if _default_ssl is None:
        try:
            import certifi

            _default_ssl = ssl.create_default_context(cafile=certifi.where())
        except ImportError:
            _default_ssl = ssl.create_default_context()
    return _default_ssl


__all__ = [
    "TIMEOUT_ERRORS",
    "AnswerBody",
    "ConnectTimeoutError",
    "ConnectionCutError",
    "ConnectionFailedError",
    "ConnectionPool",
    "HttpClientError",
    "Origin",
    "PoolTimeoutError",
    "ProtocolViolationError",
    "ReadTimeoutError",
    "ResponseHeaders",
    "UpstreamResponse",
]
