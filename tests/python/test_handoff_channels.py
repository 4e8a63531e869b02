"""Channels over WebSocket and SSE: frames, resume after a killed connection, slow consumers,
bad channel names."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from handoff_support import handoff_service, handoff_settings
from relay_context.handoff_client import HandoffClient


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Any:
    settings = handoff_settings(
        tmp_path_factory.mktemp("channels"),
        handoff={"subscriber_queue_events": 8, "heartbeat_seconds": 0.5},
    )
    with handoff_service(settings) as running:
        yield running


def _ws(base: str, path: str) -> str:
    return base.replace("http://", "ws://") + path


def test_websocket_frames_carry_the_pointer(service: Any) -> None:
    base, _ = service
    with connect(_ws(base, "/ws/frames")) as ws, httpx.Client(base_url=base) as c:
        hello = json.loads(ws.recv(timeout=5))
        assert hello == {"type": "subscribed", "channel": "frames", "seq": 0}
        pushed = c.post("/push", json={"data": "x", "channel": "frames"}).json()
        frame = json.loads(ws.recv(timeout=5))
        assert frame["url"] == pushed["url"]
        assert frame["seq"] == 1
        assert frame["id"] == pushed["id"]
        assert isinstance(frame["ts"], int)
        c.post("/publish/frames", json={"message": "pipeline complete"})
        signal = json.loads(ws.recv(timeout=5))
        assert signal["type"] == "signal"
        assert signal["message"] == "pipeline complete"
        assert signal["seq"] == 2
        heartbeat = json.loads(ws.recv(timeout=5))  # idle: heartbeats every 0.5 s
        assert heartbeat == {"type": "heartbeat", "seq": 2}


def test_resume_after_a_killed_connection_loses_nothing(service: Any) -> None:
    base, _ = service
    relay = HandoffClient(base)
    received: list[int] = []
    with relay.subscription("resume") as events:
        iterator = iter(events)
        relay.push("first", channel="resume")
        received.append(next(iterator).seq)
        events.drop_connection()  # as a network failure would
        # Published while the subscriber is away.
        for i in range(5):
            relay.push(f"missed {i}", channel="resume")
        received += [next(iterator).seq for _ in range(5)]
    assert received == [1, 2, 3, 4, 5, 6]
    relay.close()


def _raw_websocket(base: str, path: str) -> socket.socket:
    """A WebSocket handshake on a socket with a tiny receive buffer, then nothing read: a
    consumer as slow as one can be (a client library would read into its own buffers)."""
    host, port = base.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: no autotuning
    sock.connect((host, int(port)))
    sock.sendall(
        f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade"
        "\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13"
        "\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def _close_code(sock: socket.socket) -> tuple[int, str]:
    """Read server frames (unmasked) until the close frame; its code and reason."""
    buffer = b""

    def take(n: int) -> bytes:
        nonlocal buffer
        while len(buffer) < n:
            data = sock.recv(1 << 20)
            if not data:
                raise ConnectionError("closed without a close frame")
            buffer += data
        out, buffer = buffer[:n], buffer[n:]
        return out

    while True:
        first, second = take(2)
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(take(2), "big")
        elif length == 127:
            length = int.from_bytes(take(8), "big")
        payload = take(length)
        if first & 0x0F == 0x8:
            return int.from_bytes(payload[:2], "big"), payload[2:].decode()


def test_a_slow_consumer_is_cut_with_a_clear_code(service: Any) -> None:
    base, state = service
    sock = _raw_websocket(base, "/ws/slow")
    sock.settimeout(30)
    with sock, httpx.Client(base_url=base) as c:
        big = "z" * 60_000
        # The server's queue for this subscriber holds 8 events; the socket buffers absorb
        # some megabytes first. Publish until the relay marks the subscriber overflowed.
        for _ in range(600):
            c.post("/publish/slow", content=json.dumps({"message": big}))
            subscribers = state.handoff.fanout._local.get("slow", ())
            if any(s.overflowed for s in subscribers):
                break
        else:
            pytest.fail("the subscriber was never cut")
        code, reason = _close_code(sock)
    assert code == 4008
    assert "after=" in reason


def _drain(ws: Any) -> None:
    while True:
        ws.recv(timeout=10)


def _first_frame(url: str) -> None:
    with connect(url) as ws:
        ws.recv(timeout=5)


def test_bad_channel_names_are_refused(service: Any) -> None:
    base, _ = service
    with pytest.raises((InvalidStatus, ConnectionClosed)):
        _first_frame(_ws(base, "/ws/bad%20name"))
    with pytest.raises((InvalidStatus, ConnectionClosed)):
        _first_frame(_ws(base, "/ws/ok?after=minus-one"))


def test_sse_resumes_from_last_event_id(service: Any) -> None:
    base, _ = service
    with httpx.Client(base_url=base, timeout=10) as c:
        for i in range(3):
            c.post("/publish/sse-channel", json={"message": i})
        seen: list[dict[str, Any]] = []
        with c.stream("GET", "/sse/sse-channel", headers={"Last-Event-ID": "1"}) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            for line in response.iter_lines():
                if line.startswith("data: "):
                    seen.append(json.loads(line[6:]))
                if len(seen) == 2:
                    break
    assert [(e["seq"], e["message"]) for e in seen] == [(2, 1), (3, 2)]


def test_subscribe_callback_form(service: Any) -> None:
    base, _ = service
    relay = HandoffClient(base)
    urls: list[str] = []
    stop = threading.Event()
    ready = threading.Event()

    def collect(url: str) -> None:
        urls.append(url)
        if len(urls) == 3:
            stop.set()

    thread = threading.Thread(
        target=relay.subscribe, args=("callbacks", collect), kwargs={"stop": stop, "after": 0}
    )
    thread.start()
    ready.set()
    pushed = [relay.push(f"section {i}", channel="callbacks") for i in range(3)]
    thread.join(timeout=20)
    assert not thread.is_alive()
    assert urls == pushed
    relay.close()
    time.sleep(0)


def test_websocket_credentials_in_keys_mode(tmp_path: Path) -> None:
    from handoff_support import make_api_key

    settings = handoff_settings(tmp_path, handoff={"auth": "keys"})
    key = make_api_key(settings)
    with handoff_service(settings) as (base, _):
        with pytest.raises((InvalidStatus, ConnectionClosed)):
            _first_frame(_ws(base, "/ws/private"))
        with pytest.raises((InvalidStatus, ConnectionClosed)):
            _first_frame(_ws(base, "/ws/private?api_key=relay_not-a-key"))
        for headers, query in (({"X-API-Key": key}, ""), ({}, f"?api_key={key}")):
            with connect(_ws(base, "/ws/private" + query), additional_headers=headers) as ws:
                assert json.loads(ws.recv(timeout=5))["type"] == "subscribed"
        relay = HandoffClient(base, api_key=key)  # the client sends the key itself
        with relay.subscription("private") as events:
            relay.publish("private", "hello")
            assert next(iter(events)).message == "hello"
        relay.close()
