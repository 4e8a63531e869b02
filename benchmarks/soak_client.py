"""The soak's HTTP/1.1 client: keep-alive connections on asyncio protocols, answers parsed by
httptools (uvicorn's C parser).

httpx costs about 3.8 ms of CPU per request here (its pool, its models, its streams); at the
soak's ~230 requests/s that was a whole core, and the load generator, not the server, set the
pace of a 1M-request run. This client does only what the soak needs: send a request's bytes on
an idle connection (or a new one), read the answer to its end, and give back its status and the
last bytes of its body (where a stream's error event would be).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httptools


class ConnectionClosedError(Exception):
    """The server closed the connection before the answer was complete.

    ``answered`` says whether any of the answer had arrived: before that, the request may be
    retried (the keep-alive race every HTTP/1.1 client has), after it the failure is the server's.
    """

    def __init__(self, answered: bool) -> None:
        super().__init__("connection closed " + ("mid-answer" if answered else "before an answer"))
        self.answered = answered


class _Connection(asyncio.Protocol):
    def __init__(self, pool: HttpPool) -> None:
        self.pool = pool
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.answer: asyncio.Future[tuple[int, bytes]] | None = None
        self.tail = b""
        self.answered = False
        self.closed = False
        self.idle_since = 0.0

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.answered = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionClosedError(self.answered))

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        self.tail = (self.tail + body)[-512:]

    def on_message_complete(self) -> None:
        answer, self.answer = self.answer, None
        keep = self.parser.should_keep_alive()
        if answer is not None and not answer.done():
            answer.set_result((self.parser.get_status_code(), self.tail))
        if keep and not self.closed:
            self.idle_since = time.monotonic()
            self.pool.idle.append(self)
        else:
            self.close()

    def send(self, request: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None
        assert self.answer is None
        self.answer = asyncio.get_running_loop().create_future()
        self.tail = b""
        self.answered = False
        self.transport.write(request)
        return self.answer

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    def _fail(self, exc: Exception) -> None:
        answer, self.answer = self.answer, None
        if answer is not None and not answer.done():
            answer.set_exception(exc)


class HttpPool:
    """Keep-alive connections to one server; a request takes an idle one or opens one.

    An idle connection older than ``keepalive_expiry`` is closed rather than reused, before the
    server's own keep-alive timeout would close it under a request being sent.
    """

    def __init__(
        self, host: str, port: int, headers: dict[str, str], *, keepalive_expiry: float = 2.0
    ) -> None:
        self.host = host
        self.port = port
        self.keepalive_expiry = keepalive_expiry
        self.idle: list[_Connection] = []
        fixed = {"host": f"{host}:{port}", **headers}
        self._head = "".join(f"{k}: {v}\r\n" for k, v in fixed.items()).encode()

    def encode(self, method: str, path: str, body: Any | None) -> bytes:
        """The bytes of one request (JSON body if any)."""
        start = f"{method} {path} HTTP/1.1\r\n".encode()
        if body is None:
            return start + self._head + b"\r\n"
        data = json.dumps(body, separators=(",", ":")).encode()
        length = f"content-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n"
        return start + self._head + length.encode() + data

    async def _connection(self) -> _Connection:
        now = time.monotonic()
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed and now - conn.idle_since < self.keepalive_expiry:
                return conn
            conn.close()
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(lambda: _Connection(self), self.host, self.port)
        return conn

    async def request(self, request: bytes, timeout: float) -> tuple[int, bytes]:
        """(status, last bytes of the body) of the answer to ``request``."""
        conn = await self._connection()
        try:
            return await asyncio.wait_for(conn.send(request), timeout)
        except BaseException:
            conn.close()
            raise

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()


__all__ = ["ConnectionClosedError", "HttpPool"]
