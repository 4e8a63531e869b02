"""``AsyncHandoffClient``: the asyncio twin of :class:`~relay_context.handoff_client.client.
HandoffClient` (httpx's async client, websockets' asyncio client), same methods, awaited."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from relay_context.errors import DecryptionError, InvalidArgumentError, RelayError
from relay_context.handoff_client import crypto, protocol
from relay_context.handoff_client.pointers import Pointer
from relay_context.handoff_client.protocol import ChannelMessage

FATAL_CLOSE_CODES = frozenset({1008})


class AsyncChannelSubscription:
    """``async with client.subscription(ch) as events: async for message in events``;
    reconnects and resumes after the last seen sequence id."""

    def __init__(
        self,
        client: AsyncHandoffClient,
        channel: str,
        *,
        after: int | None,
        reconnect: bool,
        max_delay: float,
    ) -> None:
        self.client = client
        self.channel = channel
        self.last = after
        self.reconnect = reconnect
        self.max_delay = max_delay
        self._socket: ClientConnection | None = None
        self._closed = False

    async def _connect(self) -> ClientConnection:
        url = protocol.ws_url(self.client.base_url, self.channel, self.last)
        try:
            socket = await connect(
                url,
                additional_headers=protocol.auth_headers(self.client.api_key),
                open_timeout=self.client.timeout,
            )
        except InvalidStatus as exc:
            raise InvalidArgumentError(
                f"the server refused the subscription to {self.channel!r}: {exc}"
            ) from None
        try:
            hello = json.loads(await asyncio.wait_for(socket.recv(), self.client.timeout))
        except ConnectionClosed as exc:
            await socket.close()
            raise InvalidArgumentError(
                f"the server refused the subscription to {self.channel!r}: {exc.rcvd}"
            ) from None
        if self.last is None and isinstance(hello, dict):
            self.last = int(hello.get("seq", 0))
        self._socket = socket
        return socket

    async def __aenter__(self) -> AsyncChannelSubscription:
        if self._socket is None:
            await self._connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        self._closed = True
        socket, self._socket = self._socket, None
        if socket is not None:
            await socket.close()

    def drop_connection(self) -> None:
        """Cut the current connection as a network failure would (tests, failover)."""
        if self._socket is not None and self._socket.transport is not None:
            self._socket.transport.abort()

    async def __aiter__(self) -> AsyncIterator[ChannelMessage]:
        delay = 0.05
        while not self._closed:
            try:
                socket = self._socket or await self._connect()
                delay = 0.05
                async for text in socket:
                    message = protocol.parse_frame(text)
                    if message is None:
                        continue
                    if self.last is not None and message.seq <= self.last:
                        continue
                    self.last = message.seq
                    yield message
                close = socket.close_code
            except ConnectionClosed as exc:
                close = exc.rcvd.code if exc.rcvd is not None else None
            except (OSError, asyncio.TimeoutError):
                close = None
            self._socket = None
            if self._closed:
                return
            if close in FATAL_CLOSE_CODES:
                raise RelayError(f"the server closed the subscription to {self.channel!r}")
            if not self.reconnect:
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.max_delay)


class AsyncHandoffClient:
    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
    ) -> None:
        self.base_url = (base_url or protocol.default_base_url()).rstrip("/")
        self.api_key = api_key if api_key is not None else protocol.default_api_key()
        self.timeout = timeout
        self._http = httpx.AsyncClient(headers=protocol.auth_headers(self.api_key), timeout=timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncHandoffClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def _check(self, response: httpx.Response) -> httpx.Response:
        protocol.raise_for(response.status_code, response.content)
        return response

    async def push(
        self,
        data: str | bytes,
        channel: str | None = None,
        encrypted: bool | str = False,
        metadata: dict[str, Any] | None = None,
        ttl: int | None = None,
        *,
        encrypt_metadata: bool = False,
        content_type: str | None = None,
    ) -> str:
        # Encryption is CPU work: off the event loop for anything but small payloads.
        prepared = await asyncio.to_thread(
            protocol.prepare_push,
            data,
            channel=channel,
            encrypted=encrypted,
            metadata=metadata,
            ttl=ttl,
            encrypt_metadata=encrypt_metadata,
            content_type=content_type,
        )
        response = self._check(
            await self._http.post(
                f"{self.base_url}/api/v1/handoff",
                content=prepared.body,
                params=prepared.params,
                headers=prepared.headers,
            )
        )
        answer = response.json()
        protocol.check_stored_under(answer, prepared.payload_id)
        url = str(answer["url"])
        if prepared.fragment_key is None:
            return url
        return Pointer.parse(url).with_key(prepared.fragment_key)

    async def pull(self, url: str) -> str | bytes:
        pointer = Pointer.parse(url)
        response = self._check(await self._http.get(f"{pointer.base}/api/v1/handoff/{pointer.id}"))
        return await asyncio.to_thread(
            protocol.open_payload,
            response.content,
            response.headers.get("content-type", ""),
            pointer.key,
            response.headers.get("x-relay-encrypted") == "true",
            pointer.id,
        )

    async def push_file(
        self,
        path: str | os.PathLike[str],
        channel: str | None = None,
        encrypted: bool = False,
        metadata: dict[str, Any] | None = None,
        ttl: int | None = None,
        *,
        content_type: str = "application/octet-stream",
        chunk_bytes: int = crypto.DEFAULT_CHUNK_BYTES,
    ) -> str:
        """:meth:`HandoffClient.push_file`, awaited: reads and encrypts off the event loop."""
        params: dict[str, str] = {}
        headers = {"Content-Type": content_type}
        key: bytes | None = None
        payload_id = crypto.new_payload_id()
        if encrypted:
            key = crypto.generate_key()
            headers[protocol.PAYLOAD_ID_HEADER] = payload_id
            headers["Content-Type"] = crypto.ENCRYPTED_BYTES
            params["encrypted"] = "true"
        if channel is not None:
            params["channel"] = channel
        if ttl is not None:
            params["ttl"] = str(ttl)
        if metadata:
            headers["X-Relay-Metadata"] = json.dumps(metadata, separators=(",", ":"))

        async def body() -> AsyncIterator[bytes]:
            handle = await asyncio.to_thread(open, path, "rb")
            try:
                plain = iter(lambda: handle.read(chunk_bytes), b"")
                pieces = (
                    crypto.encrypt_chunks(
                        key, plain, payload_id=payload_id, chunk_bytes=chunk_bytes
                    )
                    if key
                    else plain
                )
                while True:
                    piece = await asyncio.to_thread(next, pieces, b"")
                    if not piece:  # pieces are never empty: the end
                        return
                    yield piece
            finally:
                handle.close()

        response = self._check(
            await self._http.post(
                f"{self.base_url}/api/v1/handoff", content=body(), params=params, headers=headers
            )
        )
        answer = response.json()
        protocol.check_stored_under(answer, payload_id if key is not None else None)
        url = str(answer["url"])
        return url if key is None else Pointer.parse(url).with_key(crypto.key_to_text(key))

    async def pull_to(self, url: str, path: str | os.PathLike[str]) -> int:
        """:meth:`HandoffClient.pull_to`, awaited."""
        pointer = Pointer.parse(url)
        written = 0
        async with self._http.stream("GET", f"{pointer.base}/api/v1/handoff/{pointer.id}") as r:
            if r.status_code >= 400:
                await r.aread()
                self._check(r)
            kind = r.headers.get("content-type", "")
            decryptor = (
                crypto.Decryptor(crypto.key_from_text(pointer.key), pointer.id)
                if pointer.key and kind.startswith("application/vnd.relay.e2e")
                else None
            )
            if decryptor is None and r.headers.get("x-relay-encrypted") == "true":
                raise DecryptionError(
                    "the payload is end-to-end encrypted; the URL has no Relay #key="
                )
            handle = await asyncio.to_thread(open, path, "wb")
            try:
                async for chunk in r.aiter_bytes():
                    out = decryptor.feed(chunk) if decryptor is not None else chunk
                    written += await asyncio.to_thread(handle.write, out)
                if decryptor is not None:
                    written += await asyncio.to_thread(handle.write, decryptor.finish())
            finally:
                handle.close()
        return written

    async def peek(self, url: str) -> dict[str, Any]:
        pointer = Pointer.parse(url)
        response = self._check(await self._http.get(f"{pointer.base}/peek/{pointer.id}"))
        metadata: dict[str, Any] = response.json()
        return crypto.decrypt_metadata(protocol.metadata_key(pointer.key), metadata)

    async def info(self, url: str) -> dict[str, Any]:
        pointer = Pointer.parse(url)
        response = self._check(
            await self._http.get(f"{pointer.base}/api/v1/handoff/{pointer.id}/info")
        )
        info: dict[str, Any] = response.json()
        return info

    async def delete(self, url: str) -> None:
        pointer = Pointer.parse(url)
        self._check(await self._http.delete(f"{pointer.base}/api/v1/handoff/{pointer.id}"))

    async def publish(self, channel: str, msg: Any) -> int:
        response = self._check(
            await self._http.post(f"{self.base_url}/publish/{channel}", json={"message": msg})
        )
        return int(response.json()["seq"])

    def subscription(
        self,
        channel: str,
        *,
        after: int | None = None,
        reconnect: bool = True,
        max_delay: float = 30.0,
    ) -> AsyncChannelSubscription:
        return AsyncChannelSubscription(
            self, channel, after=after, reconnect=reconnect, max_delay=max_delay
        )


AsyncContextRelay = AsyncHandoffClient

__all__ = ["AsyncChannelSubscription", "AsyncContextRelay", "AsyncHandoffClient"]
