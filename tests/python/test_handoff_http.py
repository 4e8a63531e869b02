"""The handoff routes under uvicorn: ContextRelay's protocol, Relay's API, and bad input."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from handoff_support import handoff_service, handoff_settings, make_api_key
from service_support import assert_error


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> object:
    settings = handoff_settings(
        tmp_path_factory.mktemp("handoff"),
        handoff={"max_payload_bytes": 200_000, "max_json_body_bytes": 500_000},
    )
    with handoff_service(settings) as running:
        yield running


@pytest.fixture
def client(service: tuple[str, object]) -> httpx.Client:
    with httpx.Client(base_url=service[0], timeout=30) as c:
        yield c


def test_contextrelay_push_pull_peek(client: httpx.Client) -> None:
    text = 'A long review — with ünïcode and "quotes"\n' * 500
    pushed = client.post(
        "/push", json={"data": text, "channel": "reviews", "metadata": {"pr": "PR-441", "n": 3}}
    )
    assert pushed.status_code == 200, pushed.text
    body = pushed.json()
    assert body["url"] == f"{client.base_url}/pull/{body['id']}".replace("//pull", "/pull")
    assert body["channel"] == "reviews"
    pulled = client.get(urlparse(body["url"]).path)
    assert pulled.status_code == 200
    envelope = json.loads(pulled.text)
    assert envelope == {"metadata": {"pr": "PR-441", "n": 3}, "data": text}
    peeked = client.get(f"/peek/{body['id']}")
    assert peeked.json() == {"pr": "PR-441", "n": 3}
    assert peeked.headers["x-relay-size"] == str(len(text.encode()))
    assert peeked.headers["x-relay-encrypted"] == "false"
    assert len(peeked.headers["x-relay-sha256"]) == 64
    info = client.get(f"/api/v1/handoff/{body['id']}/info").json()
    assert info["size"] == len(text.encode())
    assert info["channel"] == "reviews"
    assert info["content_type"].startswith("text/plain")


def test_raw_text_push_and_binary_api(client: httpx.Client) -> None:
    raw = client.post("/push", content=b"plain text body", headers={"content-type": "text/plain"})
    assert raw.status_code == 200
    assert json.loads(client.get(f"/pull/{raw.json()['id']}").text)["data"] == "plain text body"

    blob = bytes(range(256)) * 100
    created = client.post(
        "/api/v1/handoff",
        content=blob,
        params={"ttl": 120, "encrypted": "true"},
        headers={"content-type": "application/octet-stream", "x-relay-metadata": '{"k": 1}'},
    )
    assert created.status_code == 201, created.text
    payload_id = created.json()["id"]
    got = client.get(f"/api/v1/handoff/{payload_id}")
    assert got.content == blob
    assert got.headers["content-type"] == "application/octet-stream"
    assert got.headers["x-relay-encrypted"] == "true"
    # The ContextRelay envelope carries non-text payloads as base64.
    envelope = json.loads(client.get(f"/pull/{payload_id}").text)
    assert envelope["encoding"] == "base64"
    import base64

    assert base64.b64decode(envelope["data"]) == blob
    assert client.delete(f"/api/v1/handoff/{payload_id}").status_code == 204
    assert_error(client.get(f"/api/v1/handoff/{payload_id}"), 404, "payload_not_found")


def test_read_after_write_is_immediate(client: httpx.Client) -> None:
    for i in range(50):
        url = client.post("/push", json={"data": f"payload {i}"}).json()["url"]
        assert json.loads(client.get(urlparse(url).path).text)["data"] == f"payload {i}"


def test_bad_input(client: httpx.Client) -> None:
    assert_error(client.get("/pull/doesnotexist0000000000000000"), 404, "payload_not_found")
    assert_error(client.get("/peek/x"), 404, "payload_not_found")
    assert_error(
        client.post("/push", content=b"{not json", headers={"content-type": "application/json"}),
        422,
        "invalid_json",
    )
    assert_error(client.post("/push", json={"data": 5}), 422, "invalid_argument")
    assert_error(
        client.post("/push", json={"data": "x", "channel": "bad channel!"}),
        422,
        "invalid_channel",
    )
    assert_error(client.post("/publish/bad%20channel", json={"message": 1}), 422, "invalid_channel")
    assert_error(client.post("/push", json={"data": "x", "ttl": 0}), 422, "invalid_argument")
    assert_error(client.post("/push", json={"data": "x", "ttl": "1h"}), 422, "invalid_argument")
    assert_error(
        client.post("/api/v1/handoff?channel=a%20b", content=b"x"), 422, "validation_error"
    )
    assert_error(client.post("/push", json={"data": "x" * 200_001}), 413, "payload_too_large")
    assert_error(client.post("/api/v1/handoff", content=b"x" * 200_001), 413, "payload_too_large")


def test_over_size_body_is_refused_while_it_is_read(service: tuple[str, object]) -> None:
    """A chunked body that never ends: the 413 arrives once the cap is passed."""
    url = urlparse(service[0])
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(
            b"POST /api/v1/handoff HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream"
            b"\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"y" * 16_384
        sent = 0
        while sent <= 200_000 + 2 * len(chunk):
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
        # The terminating chunk is never sent: the server cannot have read the whole body.
        deadline = time.monotonic() + 10
        answer = b""
        while b"\r\n\r\n" not in answer and time.monotonic() < deadline:
            answer += sock.recv(65536)
        head, _, body = answer.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        while len(body) < length and time.monotonic() < deadline:
            body += sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 413"), head
    assert json.loads(body)["error"]["type"] == "payload_too_large"


def test_keys_mode_needs_credentials(tmp_path: Path) -> None:
    settings = handoff_settings(tmp_path, handoff={"auth": "keys"})
    key = make_api_key(settings)
    admin = make_api_key(settings, "admin")
    with handoff_service(settings) as (url, _), httpx.Client(base_url=url) as c:
        assert_error(c.post("/push", json={"data": "x"}), 401, "authentication")
        # ContextRelay's SDK sends its key as a bearer token.
        pushed = c.post("/push", json={"data": "x"}, headers={"Authorization": f"Bearer {key}"})
        assert pushed.status_code == 200, pushed.text
        payload_id = pushed.json()["id"]
        assert c.get(f"/peek/{payload_id}", headers={"X-API-Key": key}).status_code == 200
        assert_error(c.get(f"/peek/{payload_id}"), 401, "authentication")
        # The dashboard's snapshot (ADMIN) has the relay's figures.
        snapshot = c.get("/api/v1/dashboard/snapshot", headers={"X-API-Key": admin}).json()
        assert snapshot["handoff"]["payloads"] == 1
        assert snapshot["handoff"]["payload_bytes"] == 1


def test_metrics_and_spans(tmp_path: Path) -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    with (
        handoff_service(handoff_settings(tmp_path), span_exporter=exporter) as (url, _),
        httpx.Client(base_url=url) as c,
    ):
        first = c.post("/push", json={"data": "same bytes"}).json()
        c.post("/push", json={"data": "same bytes"})
        c.get(f"/pull/{first['id']}")
        c.get(f"/peek/{first['id']}")
        c.post("/publish/metrics-ch", json={"message": 1})
        text = c.get("/metrics").text
    assert 'relay_handoff_operations_total{operation="push"} 2.0' in text
    assert 'relay_handoff_operations_total{operation="pull"} 1.0' in text
    assert 'relay_handoff_operations_total{operation="peek"} 1.0' in text
    assert "relay_handoff_dedup_hits_total 1.0" in text
    assert 'relay_handoff_bytes_total{direction="in"} 20.0' in text
    names = {span.name for span in exporter.get_finished_spans()}
    assert {"handoff.push", "handoff.pull", "handoff.peek", "handoff.publish"} <= names
