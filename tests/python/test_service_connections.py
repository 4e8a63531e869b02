"""Idle, slow and oversized connections against ``relay serve`` (issue 9): raw sockets on a real
server process, with short deadlines so that the test is quick."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator

import pytest

from context_service_support import bearer
from relay_context.service.server import CorkedTransport
from service_support import Server, run_server, service_env

ADMIN = bearer("conn-admin", "admin")
HEADER_TIMEOUT = 1.0
KEEP_ALIVE = 1.0
BODY_TIMEOUT = 1.5
MAX_CONNECTIONS = 8


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("connections")
    env = service_env(
        data / "state",
        rate_limit_requests="1000",
        header_read_timeout_seconds=str(HEADER_TIMEOUT),
        keep_alive_timeout_seconds=str(KEEP_ALIVE),
        body_read_timeout_seconds=str(BODY_TIMEOUT),
        max_connections=str(MAX_CONNECTIONS),
    )
    with run_server(env, data) as running:
        yield running


def connect(server: Server) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    return sock


def read_all(sock: socket.socket, limit: float = 10.0) -> tuple[bytes, float]:
    """Everything until the server closes the connection, and how long that took."""
    started = time.monotonic()
    sock.settimeout(limit)
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks), time.monotonic() - started
        chunks.append(chunk)


def split_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, body


def test_a_silent_connection_is_closed(server: Server) -> None:
    with connect(server) as sock:
        raw, waited = read_all(sock)
    assert raw == b""
    assert HEADER_TIMEOUT * 0.8 <= waited < HEADER_TIMEOUT + 3


def test_half_a_request_line_is_closed(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /hea")
        raw, waited = read_all(sock)
    assert raw == b""
    assert waited < HEADER_TIMEOUT + 3


def test_a_trickled_head_is_closed_at_the_deadline(server: Server) -> None:
    """Bytes that keep coming do not extend the deadline (slowloris)."""
    request = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
    with connect(server) as sock:
        started = time.monotonic()
        closed = False
        for byte in request:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                closed = True
                break
            time.sleep(0.05)
            if time.monotonic() - started > HEADER_TIMEOUT + 3:
                break
        if not closed:
            raw, _ = read_all(sock)
            assert raw == b""
    assert time.monotonic() - started < HEADER_TIMEOUT + 3


def test_an_idle_kept_alive_connection_is_closed(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        raw, waited = read_all(sock)
    status, _, _ = split_response(raw)
    assert status == 200
    assert waited < KEEP_ALIVE + 3


def test_a_complete_request_after_a_pause_is_served(server: Server) -> None:
    """A head that arrives in pieces within the deadline is fine."""
    with connect(server) as sock:
        sock.sendall(b"GET /health HT")
        time.sleep(HEADER_TIMEOUT / 3)
        sock.sendall(b"TP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        raw, _ = read_all(sock)
    assert split_response(raw)[0] == 200


def test_a_stalled_body_gets_408_and_the_connection_closes(server: Server) -> None:
    body = json.dumps({"session_id": "slow-body", "role": "user", "content": "x" * 50}).encode()
    auth = ADMIN["Authorization"]
    head = (
        "POST /api/v1/context/messages HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: {auth}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with connect(server) as sock:
        sock.sendall(head + body[:10])
        raw, waited = read_all(sock)
    status, headers, payload = split_response(raw)
    assert status == 408
    assert headers["connection"] == "close"
    assert json.loads(payload)["error"]["type"] == "request_timeout"
    assert BODY_TIMEOUT * 0.8 <= waited < BODY_TIMEOUT + 3
    # Nothing was stored.
    window = server.client.get("/api/v1/context/slow-body", headers=ADMIN)
    assert window.status_code == 404


def test_connections_over_the_cap_are_refused(server: Server) -> None:
    held = [connect(server) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.2)
        with connect(server) as extra:
            raw, _ = read_all(extra)
        status, headers, payload = split_response(raw)
        assert status == 503
        assert headers["content-type"] == "application/json"
        assert json.loads(payload)["error"]["type"] == "service_unavailable"
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.3)
    assert server.client.get("/health").status_code == 200


@pytest.mark.parametrize("size", [100_000, 300_000])
def test_oversized_headers_get_the_json_error_shape(server: Server, size: int) -> None:
    """100 kB reaches the app (431 with the request id); beyond the parser's buffer the
    connection layer answers, in the same shape."""
    with connect(server) as sock:
        sock.sendall(
            b"GET /api/v1/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + b"a" * size
            + b"\r\n\r\n"
        )
        raw, _ = read_all(sock)
    status, headers, payload = split_response(raw)
    assert status == 431
    assert headers["content-type"] == "application/json"
    error = json.loads(payload)["error"]
    assert error["type"] == "request_header_fields_too_large"
    assert error["request_id"]


def test_oversized_head_through_httpx(server: Server) -> None:
    response = server.client.get(
        "/api/v1/keys", headers={"Authorization": "Bearer " + "a" * 100_000}
    )
    assert response.status_code == 431
    assert response.json()["error"]["request_id"] == response.headers["x-request-id"]


def test_garbage_gets_a_json_400(server: Server) -> None:
    with connect(server) as sock:
        sock.sendall(b"\x00\x01 not http\r\n\r\n")
        raw, _ = read_all(sock)
    status, headers, payload = split_response(raw)
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert json.loads(payload)["error"]["type"] == "bad_request"


class RecordingTransport(asyncio.Transport):
    """An asyncio transport that records each ``write`` (what reaches the socket as one send)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.eof = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert not self.closed
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def write_eof(self) -> None:
        self.eof = True

    def get_write_buffer_size(self) -> int:
        return 0


def test_a_head_and_what_its_turn_writes_leave_in_one_send() -> None:
    async def scenario() -> None:
        raw = RecordingTransport()
        corked = CorkedTransport(raw, asyncio.get_running_loop())
        corked.cork()  # a request's head is in: its answer's head is next
        corked.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        corked.write(b"{}")
        assert raw.writes == []
        assert corked.get_write_buffer_size() == len(
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"
        )
        await asyncio.sleep(0)
        assert raw.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
        # After the head's send, a stream's chunks go to the socket as they are written, not at
        # the end of the turn (a multicast chunk is not held behind every other reader's turn).
        corked.write(b"data: 1\n\n")
        assert raw.writes[1:] == [b"data: 1\n\n"]
        corked.write(b"data: 2\n\n")
        assert raw.writes[1:] == [b"data: 1\n\n", b"data: 2\n\n"]
        # close and write_eof send what is pending first; abort drops it.
        corked.cork()
        corked.write(b"last")
        corked.write_eof()
        assert raw.writes[-1] == b"last"
        assert raw.eof
        corked.cork()
        corked.write(b"bye")
        corked.close()
        assert raw.writes[-1] == b"bye"
        assert raw.closed
        await asyncio.sleep(0)  # the scheduled flush finds nothing left
        assert raw.writes.count(b"bye") == 1
        other = RecordingTransport()
        aborted = CorkedTransport(other, asyncio.get_running_loop())
        aborted.cork()
        aborted.write(b"never sent")
        aborted.abort()
        await asyncio.sleep(0)
        assert other.writes == []
        assert aborted.get_extra_info("peername") is None  # the rest is the real transport's

    asyncio.run(scenario())


def test_a_small_answer_arrives_in_one_segment(server: Server) -> None:
    """Head and body of a small answer leave in one send (and so, on loopback, one segment that
    one ``recv`` returns whole). Sent as two, a reader woken by the head often gets it alone."""
    sock = connect(server)
    try:
        host = server.url.removeprefix("http://")
        for _ in range(20):
            sock.sendall(f"GET /health/live HTTP/1.1\r\nhost: {host}\r\n\r\n".encode())
            first = sock.recv(65536)
            _, headers, body = split_response(first)
            assert len(body) == int(headers["content-length"]) > 0, first
    finally:
        sock.close()
