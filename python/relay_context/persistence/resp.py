"""A lean Redis connection for the gateway cache's hot path: ``GET`` and ``SET ... PX``.

redis-py's asyncio client spends ~440k instructions of this process on one ``GET`` (command
packing, the pool's lock, the retry wrapper, response callbacks, ``wait_for``'s task): about a
third of an exact-cache hit. :class:`RespConnection` spends ~93k, most of it the event loop's
own round trip: one socket, commands pipelined in the order they are sent, each reply answering
the oldest call still waiting. It reads the RESP2 replies those commands give (simple string,
error, integer, bulk string, nil) and nothing else; everything else Relay asks of Redis goes
through redis-py (:mod:`relay_context.persistence.redis`).

Every call has a deadline: connecting (with ``AUTH`` and ``SELECT``) within
``connect_timeout`` and each reply within ``socket_timeout``. A call that misses its deadline
closes the connection (a server that does not answer in time is treated as gone, as redis-py
does) and raises ``TimeoutError``; a refused or dropped connection raises ``ConnectionError``;
an error reply raises :class:`RespReplyError`. The next call connects again.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import urllib.parse
from dataclasses import dataclass

from relay_context.checks import check_int
from relay_context.errors import InvalidArgumentError

#: Largest bulk reply accepted; a larger declared length is treated as a broken stream.
MAX_REPLY_BYTES = 512 * 1024 * 1024


class RespReplyError(Exception):
    """Redis answered a command with an error reply (``-ERR ...``, ``-WRONGTYPE ...``)."""


@dataclass(frozen=True)
class RespAddress:
    """Where a plain (non-cluster) Redis listens, and how to log in."""

    host: str
    port: int
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False

    @classmethod
    def from_url(cls, url: str) -> RespAddress | None:
        """The address of a ``redis://`` or ``rediss://`` URL (``[user:password@]host[:port]
        [/db]``, or ``?db=N``); ``None`` for other schemes (a Unix socket), which this
        connection does not speak."""
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("redis", "rediss") or not parts.hostname:
            return None
        db_text = parts.path.lstrip("/") or urllib.parse.parse_qs(parts.query).get("db", ["0"])[0]
        try:
            db = int(db_text)
            port = parts.port or 6379
        except ValueError:
            return None  # not a URL this connection understands: redis-py says what is wrong
        unquote = urllib.parse.unquote
        return cls(
            host=parts.hostname,
            port=port,
            db=db,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            tls=parts.scheme == "rediss",
        )


def pack_command(*parts: bytes) -> bytes:
    """A command as RESP2 sends it: an array of bulk strings."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


#: The nil reply (``$-1``), told apart from an empty bulk string.
_NIL = object()


class _RespProtocol(asyncio.Protocol):
    """One connection: replies are matched to the waiting calls in order."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiters: collections.deque[asyncio.Future[object]] = collections.deque()
        self.buffer = bytearray()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        waiters = self.waiters
        while buffer:
            try:
                reply = self._next_reply()
            except ValueError as exc:  # not RESP: nothing after this can be matched
                self.close(ConnectionError(f"redis sent a malformed reply: {exc}"))
                return
            if reply is None:
                return  # incomplete: wait for more bytes
            if not waiters:
                self.close(ConnectionError("redis sent a reply nobody asked for"))
                return
            waiter = waiters.popleft()
            if not waiter.done():  # a cancelled call's reply is read and dropped
                waiter.set_result(reply[0])

    def _next_reply(self) -> tuple[object] | None:
        """The first complete reply in the buffer, removed from it; ``None`` if incomplete."""
        buffer = self.buffer
        end = buffer.find(b"\r\n")
        if end < 0:
            if len(buffer) > 64:  # no header is this long
                raise ValueError("no line end in a reply header")
            return None
        kind = buffer[0]
        value: object
        if kind == 0x24:  # $: bulk string, or nil
            length = int(buffer[1:end])
            if length < 0:
                value, consumed = _NIL, end + 2
            else:
                if length > MAX_REPLY_BYTES:
                    raise ValueError(f"a bulk reply of {length} bytes")
                stop = end + 2 + length
                if len(buffer) < stop + 2:
                    return None
                value, consumed = bytes(buffer[end + 2 : stop]), stop + 2
        elif kind == 0x2B:  # +: simple string
            value, consumed = bytes(buffer[1:end]), end + 2
        elif kind == 0x3A:  # :: integer
            value, consumed = int(buffer[1:end]), end + 2
        elif kind == 0x2D:  # -: error
            value = RespReplyError(bytes(buffer[1:end]).decode("utf-8", "replace"))
            consumed = end + 2
        else:
            raise ValueError(f"reply type {chr(kind)!r}")
        del buffer[:consumed]
        return (value,)

    def connection_lost(self, exc: Exception | None) -> None:
        self.close(ConnectionError(f"redis connection lost: {exc!r}" if exc else "closed"))

    def close(self, reason: Exception) -> None:
        """Fails every waiting call with ``reason`` and closes the socket."""
        self.closed = True
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(reason)
        if self.transport is not None:
            self.transport.close()


def _expire(waiter: asyncio.Future[object]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("redis did not answer in time"))


class RespConnection:
    """One pipelined connection to a plain Redis (see the module docstring). Connects on first
    use; safe to share between the tasks of one event loop."""

    def __init__(
        self, address: RespAddress, *, connect_timeout: float, socket_timeout: float
    ) -> None:
        if not (connect_timeout > 0 and socket_timeout > 0):
            raise InvalidArgumentError("connect_timeout and socket_timeout must be > 0")
        self.address = address
        self.connect_timeout = connect_timeout
        self.socket_timeout = socket_timeout
        self._protocol: _RespProtocol | None = None
        self._connecting: asyncio.Lock | None = None

    async def get(self, key: str) -> bytes | None:
        """``GET key``: the value, or ``None`` when there is none."""
        value = await self._command(pack_command(b"GET", key.encode("utf-8", "surrogatepass")))
        if value is _NIL:
            return None
        if not isinstance(value, bytes):
            raise RespReplyError(f"GET answered {value!r}")
        return value

    async def set(self, key: str, value: bytes, *, px: int) -> None:
        """``SET key value PX px``: stored for ``px`` milliseconds (>= 1)."""
        check_int(px, "px", minimum=1)
        reply = await self._command(
            pack_command(
                b"SET", key.encode("utf-8", "surrogatepass"), bytes(value), b"PX", b"%d" % px
            )
        )
        if reply != b"OK":
            raise RespReplyError(f"SET answered {reply!r}")

    async def close(self) -> None:
        protocol, self._protocol = self._protocol, None
        if protocol is not None and not protocol.closed:
            protocol.close(ConnectionError("the connection was closed"))

    async def _command(self, packed: bytes) -> object:
        protocol = self._protocol
        if protocol is None or protocol.closed:
            protocol = await self._connect()
        return await self._send(protocol, packed)

    async def _send(self, protocol: _RespProtocol, packed: bytes) -> object:
        if protocol.closed:
            raise ConnectionError("redis connection lost")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[object] = loop.create_future()
        protocol.waiters.append(waiter)
        assert protocol.transport is not None
        protocol.transport.write(packed)
        # A timer on the reply itself (not asyncio.wait_for's task per call, which would cost
        # as much as the rest of the call).
        timer = loop.call_later(self.socket_timeout, _expire, waiter)
        try:
            reply = await waiter
        except TimeoutError:
            # Not answered in time: the replies still owed would answer later calls out of
            # step with no way to tell, so the connection goes (and the next call connects).
            protocol.close(TimeoutError("redis did not answer in time"))
            if self._protocol is protocol:
                self._protocol = None
            raise
        finally:
            timer.cancel()
        if isinstance(reply, RespReplyError):
            raise reply
        return reply

    async def _connect(self) -> _RespProtocol:
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:  # one connect at a time; the others use its result
            current = self._protocol
            if current is not None and not current.closed:
                return current
            a = self.address
            loop = asyncio.get_running_loop()
            context = ssl.create_default_context() if a.tls else None
            _, protocol = await asyncio.wait_for(
                loop.create_connection(_RespProtocol, a.host, a.port, ssl=context),
                self.connect_timeout,
            )
            try:
                if a.password is not None:
                    login: list[bytes] = [b"AUTH"]
                    if a.username is not None:
                        login.append(a.username.encode())
                    await self._send(protocol, pack_command(*login, a.password.encode()))
                if a.db:
                    await self._send(protocol, pack_command(b"SELECT", b"%d" % a.db))
            except BaseException:
                protocol.close(ConnectionError("redis login failed"))
                raise
            self._protocol = protocol
            return protocol


__all__ = ["RespAddress", "RespConnection", "RespReplyError", "pack_command"]
