"""``HandoffClient``: the blocking client (httpx, websockets' sync client).

>>> relay = HandoffClient("http://127.0.0.1:8080", api_key="relay_...")
>>> url = relay.push(report, channel="reviews", metadata={"pr": 441}, encrypted=True)
>>> relay.pull(url)            # decrypted locally with the key in the URL's fragment
>>> relay.peek(url)            # {"pr": 441}
>>> for message in relay.events("reviews", after=0): ...

``base_url`` and ``api_key`` default to ``RELAY_URL`` / ``RELAY_API_KEY`` (or ContextRelay's
``CONTEXTRELAY_URL`` / ``CONTEXTRELAY_API_KEY``).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import Any, BinaryIO

import httpx
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from relay_context.errors import DecryptionError, InvalidArgumentError, RelayError
from relay_context.handoff_client import crypto, protocol
from relay_context.handoff_client.pointers import Pointer
from relay_context.handoff_client.protocol import ChannelMessage

#: Close codes after which reconnecting cannot help (bad channel, credentials).
FATAL_CLOSE_CODES = frozenset({1008})


class ChannelSubscription:
    """A channel's events, in order; reconnects with backoff and resumes after the last seen
    sequence id (so nothing within the server's retention window is missed)."""

    def __init__(
        self,
        client: HandoffClient,
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
        self._closed = threading.Event()

    def _connect(self) -> ClientConnection:
        url = protocol.ws_url(self.client.base_url, self.channel, self.last)
        try:
            socket = connect(
                url,
                additional_headers=protocol.auth_headers(self.client.api_key),
                open_timeout=self.client.timeout,
                # Held across iterations, not a ``with`` block (websockets 17 asks to say so).
                legacy=True,
            )
        except InvalidStatus as exc:
            raise InvalidArgumentError(
                f"the server refused the subscription to {self.channel!r}: {exc}"
            ) from None
        try:
            hello = json.loads(socket.recv(timeout=self.client.timeout))
        except ConnectionClosed as exc:
            socket.close()
            raise InvalidArgumentError(
                f"the server refused the subscription to {self.channel!r}: {exc.rcvd}"
            ) from None
        if self.last is None and isinstance(hello, dict):
            self.last = int(hello.get("seq", 0))
        self._socket = socket
        return socket

    def open(self) -> ChannelSubscription:
        if self._socket is None:
            self._connect()
        return self

    def __enter__(self) -> ChannelSubscription:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._closed.set()
        socket, self._socket = self._socket, None
        if socket is not None:
            socket.close()

    def close_when(self, stop: threading.Event) -> None:
        """Close (ending the iteration) once ``stop`` is set, from a helper thread."""

        def watch() -> None:
            stop.wait()
            self.close()

        threading.Thread(target=watch, daemon=True, name="handoff-stop").start()

    def drop_connection(self) -> None:
        """Cut the current connection as a network failure would (tests, failover)."""
        socket = self._socket
        if socket is not None:
            socket.socket.close()

    def __iter__(self) -> Iterator[ChannelMessage]:
        delay = 0.05
        while not self._closed.is_set():
            try:
                socket = self._socket or self._connect()
                delay = 0.05
                for text in socket:
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
            except (OSError, TimeoutError):
                close = None
            self._socket = None
            if self._closed.is_set():
                return
            if close in FATAL_CLOSE_CODES:
                raise RelayError(f"the server closed the subscription to {self.channel!r}")
            if not self.reconnect:
                return
            time.sleep(delay)
            delay = min(delay * 2, self.max_delay)


class HandoffClient:
    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = (base_url or protocol.default_base_url()).rstrip("/")
        self.api_key = api_key if api_key is not None else protocol.default_api_key()
        self.timeout = timeout
        self._http = httpx.Client(
            headers=protocol.auth_headers(self.api_key), timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> HandoffClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _check(self, response: httpx.Response) -> httpx.Response:
        protocol.raise_for(response.status_code, response.content)
        return response

    # --- payloads ------------------------------------------------------------------------------
    def push(
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
        """Store ``data``; its pointer URL (with ``#key=...`` when ``encrypted``: ``True`` for
        AES-256-GCM, ``"fernet"`` for ContextRelay's scheme)."""
        prepared = protocol.prepare_push(
            data,
            channel=channel,
            encrypted=encrypted,
            metadata=metadata,
            ttl=ttl,
            encrypt_metadata=encrypt_metadata,
            content_type=content_type,
        )
        response = self._check(
            self._http.post(
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

    def pull(self, url: str) -> str | bytes:
        """The payload (``str`` for text), decrypted locally when the URL carries a key."""
        pointer = Pointer.parse(url)
        response = self._check(self._http.get(f"{pointer.base}/api/v1/handoff/{pointer.id}"))
        return protocol.open_payload(
            response.content,
            response.headers.get("content-type", ""),
            pointer.key,
            response.headers.get("x-relay-encrypted") == "true",
            pointer.id,
        )

    def push_file(
        self,
        source: str | os.PathLike[str] | BinaryIO,
        channel: str | None = None,
        encrypted: bool = False,
        metadata: dict[str, Any] | None = None,
        ttl: int | None = None,
        *,
        content_type: str = "application/octet-stream",
        chunk_bytes: int = crypto.DEFAULT_CHUNK_BYTES,
    ) -> str:
        """Stream a file (a path or a binary file object) to the relay, encrypting it chunk by
        chunk when ``encrypted``: memory stays near ``chunk_bytes`` whatever the file's size."""
        handle = source if hasattr(source, "read") else open(source, "rb")  # noqa: SIM115
        assert not isinstance(handle, (str, os.PathLike))
        try:
            pieces: Iterator[bytes] = iter(lambda: handle.read(chunk_bytes), b"")
            params: dict[str, str] = {}
            headers = {"Content-Type": content_type}
            fragment: str | None = None
            payload_id: str | None = None
            if encrypted:
                key = crypto.generate_key()
                fragment = crypto.key_to_text(key)
                payload_id = crypto.new_payload_id()
                pieces = crypto.encrypt_chunks(
                    key, pieces, payload_id=payload_id, chunk_bytes=chunk_bytes
                )
                headers[protocol.PAYLOAD_ID_HEADER] = payload_id
                headers["Content-Type"] = crypto.ENCRYPTED_BYTES
                params["encrypted"] = "true"
            if channel is not None:
                params["channel"] = channel
            if ttl is not None:
                params["ttl"] = str(ttl)
            if metadata:
                headers["X-Relay-Metadata"] = json.dumps(metadata, separators=(",", ":"))
            response = self._check(
                self._http.post(
                    f"{self.base_url}/api/v1/handoff",
                    content=pieces,
                    params=params,
                    headers=headers,
                )
            )
        finally:
            if handle is not source:
                handle.close()
        answer = response.json()
        protocol.check_stored_under(answer, payload_id)
        url = str(answer["url"])
        return url if fragment is None else Pointer.parse(url).with_key(fragment)

    def pull_to(self, url: str, target: str | os.PathLike[str] | BinaryIO) -> int:
        """Stream a payload into a file (a path or a binary file object), decrypting it chunk
        by chunk when the URL carries a Relay key; the bytes written."""
        pointer = Pointer.parse(url)
        handle = target if hasattr(target, "write") else open(target, "wb")  # noqa: SIM115
        assert not isinstance(handle, (str, os.PathLike))
        written = 0
        try:
            with self._http.stream("GET", f"{pointer.base}/api/v1/handoff/{pointer.id}") as r:
                if r.status_code >= 400:
                    r.read()
                    self._check(r)
                decryptor = (
                    crypto.Decryptor(crypto.key_from_text(pointer.key), pointer.id)
                    if (
                        pointer.key
                        and r.headers.get("content-type", "").startswith(
                            "application/vnd.relay.e2e"
                        )
                    )
                    else None
                )
                if decryptor is None and r.headers.get("x-relay-encrypted") == "true":
                    raise DecryptionError(
                        "the payload is end-to-end encrypted; the URL has no Relay #key="
                    )
                for chunk in r.iter_bytes():
                    out = decryptor.feed(chunk) if decryptor is not None else chunk
                    written += handle.write(out)
                if decryptor is not None:
                    written += handle.write(decryptor.finish())
        finally:
            if handle is not target:
                handle.close()
        return written

    def peek(self, url: str) -> dict[str, Any]:
        """The metadata as pushed (decrypted if it was encrypted), without the payload."""
        pointer = Pointer.parse(url)
        response = self._check(self._http.get(f"{pointer.base}/peek/{pointer.id}"))
        metadata: dict[str, Any] = response.json()
        from relay_context.handoff_client.crypto import decrypt_metadata

        return decrypt_metadata(protocol.metadata_key(pointer.key), metadata)

    def info(self, url: str) -> dict[str, Any]:
        """Relay's facts: size, sha256, created/expires, encrypted, content type, metadata."""
        pointer = Pointer.parse(url)
        response = self._check(self._http.get(f"{pointer.base}/api/v1/handoff/{pointer.id}/info"))
        info: dict[str, Any] = response.json()
        return info

    def delete(self, url: str) -> None:
        pointer = Pointer.parse(url)
        self._check(self._http.delete(f"{pointer.base}/api/v1/handoff/{pointer.id}"))

    # --- channels ------------------------------------------------------------------------------
    def publish(self, channel: str, msg: Any) -> int:
        """A signal on ``channel`` without a payload; its sequence id."""
        response = self._check(
            self._http.post(f"{self.base_url}/publish/{channel}", json={"message": msg})
        )
        return int(response.json()["seq"])

    def subscription(
        self,
        channel: str,
        *,
        after: int | None = None,
        reconnect: bool = True,
        max_delay: float = 30.0,
    ) -> ChannelSubscription:
        """``with relay.subscription(ch) as events: for message in events: ...`` (connected
        once the ``with`` is entered: what is published afterwards is received)."""
        return ChannelSubscription(
            self, channel, after=after, reconnect=reconnect, max_delay=max_delay
        )

    def events(self, channel: str, *, after: int | None = None) -> Iterator[ChannelMessage]:
        with self.subscription(channel, after=after) as events:
            yield from events

    def subscribe(
        self,
        channel: str,
        fn: Callable[[str], None],
        *,
        after: int | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        """Call ``fn(url)`` for each payload pushed to ``channel`` (blocking; run it in a
        thread). Reconnects and resumes by itself; returns when ``stop`` is set."""
        with self.subscription(channel, after=after) as events:
            if stop is not None:
                events.close_when(stop)
            for message in events:
                if message.url is not None:
                    fn(message.url)


#: The ContextRelay SDK's name for the client.
ContextRelay = HandoffClient

__all__ = ["ChannelSubscription", "ContextRelay", "HandoffClient"]
