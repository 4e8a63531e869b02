"""Hand-written malformed bodies against every route family of a real ``relay serve`` — the
gateway (OpenAI, Anthropic and Gemini shapes), the handoff relay and the context API: huge
numbers, deep nesting, wrong types, invalid UTF-8, truncated and empty bodies, non-objects,
slow (slowloris-style) bodies. Each gets a 4xx in its route's own error shape within a time
bound, and the server keeps serving."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from fake_upstream import FakeUpstream, serve_in_thread
from gateway_support import UPSTREAM_KEY
from service_support import Server, create_key, run_server, service_env

#: Every refusal below must come back this fast (seconds); the body-read deadline is separate.
ANSWER_WITHIN = 5.0
#: The server's deadline for a body to arrive (BODY_READ_TIMEOUT_SECONDS), kept short here.
BODY_DEADLINE = 2.0

Shape = Callable[[Any], None]


def openai_shape(body: Any) -> None:
    error = body["error"]
    assert isinstance(error["message"], str)
    assert error["message"]
    assert isinstance(error["type"], str)
    assert {"param", "code"} <= set(error)


def anthropic_shape(body: Any) -> None:
    assert body["type"] == "error"
    assert isinstance(body["error"]["type"], str)
    assert body["error"]["message"]


def gemini_shape(body: Any) -> None:
    error = body["error"]
    assert isinstance(error["code"], int)
    assert 400 <= error["code"] < 500
    assert error["message"]
    assert isinstance(error["status"], str)


def relay_shape(body: Any) -> None:
    assert set(body) == {"error"}
    assert isinstance(body["error"]["type"], str)
    assert body["error"]["message"]


#: (path, a well-formed body's first fields, the error shape of the route).
ROUTES: dict[str, tuple[str, str, Shape]] = {
    "openai-chat": ("/v1/chat/completions", '"model": "gpt-4o-mini", "messages"', openai_shape),
    "openai-embeddings": (
        "/v1/embeddings",
        '"model": "text-embedding-3-small", "input"',
        openai_shape,
    ),
    "openai-responses": ("/v1/responses", '"model": "gpt-4o-mini", "input"', openai_shape),
    "anthropic": (
        "/v1/messages",
        '"model": "claude-haiku-4-5", "max_tokens": 5, "messages"',
        anthropic_shape,
    ),
    "anthropic-count": (
        "/v1/messages/count_tokens",
        '"model": "gpt-4o", "messages"',
        anthropic_shape,
    ),
    "gemini": (
        "/v1beta/models/gemini-2.0-flash:generateContent",
        '"generationConfig": {}, "contents"',
        gemini_shape,
    ),
    "handoff-push": ("/push", '"channel": "c", "data"', relay_shape),
    "context": (
        "/api/v1/context/messages",
        '"session_id": "s", "role": "user", "content"',
        relay_shape,
    ),
}

DEEP = 100_000


def bodies(prefix: str) -> dict[str, bytes]:
    """Malformed variants of one route's body (``prefix`` is its leading fields, minus the
    value of the last one)."""
    return {
        "truncated": ("{" + prefix + ': [{"role": "user", "con').encode(),
        "empty": b"",
        "not-an-object": b"[1, 2, 3]",
        "a-bare-string": b'"hello"',
        "nan-literal": ("{" + prefix + ": NaN}").encode(),
        "huge-integer": ("{" + prefix + ": " + "9" * 200_000 + "}").encode(),
        "huge-exponent": ("{" + prefix + ": 1e999999}").encode(),
        "deep-nesting": ("{" + prefix + ": " + "[" * DEEP + "]" * DEEP + "}").encode(),
        "wrong-type": ("{" + prefix + ": 12345}").encode(),
        "invalid-utf8": b"{" + prefix.encode() + b': "\xff\xfe\xc3\x28"}',
        "lone-surrogate": ("{" + prefix + ': "\\ud800"}').encode(),
        "duplicate-of-nothing": b"{,}",
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    tmp = tmp_path_factory.mktemp("hostile")
    with serve_in_thread(FakeUpstream(required_key=UPSTREAM_KEY)) as upstream:
        env = service_env(
            tmp / "data",
            OPENAI_BASE_URL=upstream + "/v1",
            OPENAI_API_KEY=UPSTREAM_KEY,
            ANTHROPIC_BASE_URL=upstream,
            ANTHROPIC_API_KEY=UPSTREAM_KEY,
            GEMINI_BASE_URL=upstream,
            GEMINI_API_KEY=UPSTREAM_KEY,
            BODY_READ_TIMEOUT_SECONDS=str(BODY_DEADLINE),
            RATE_LIMIT_REQUESTS="100000",
        )
        key = create_key(env, "admin")["key"]
        with run_server(env, tmp / "logs") as running:
            yield running, key


CASES = [(route, case) for route in ROUTES for case in bodies("")]


@pytest.mark.parametrize(("route", "case"), CASES, ids=[f"{r}-{c}" for r, c in CASES])
def test_a_malformed_body_is_a_4xx_in_the_routes_shape(
    server: tuple[Server, str], route: str, case: str
) -> None:
    running, key = server
    path, prefix, shape = ROUTES[route]
    body = bodies(prefix)[case]
    started = time.monotonic()
    response = httpx.post(
        running.url + path,
        content=body,
        headers={
            "authorization": f"Bearer {key}",
            "x-api-key": key,
            "content-type": "application/json",
        },
        timeout=30,
    )
    elapsed = time.monotonic() - started
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith("application/json"), response.headers
    shape(response.json())
    assert elapsed < ANSWER_WITHIN, f"{route}/{case} took {elapsed:.2f} s"


def test_the_server_still_serves_after_every_malformed_body(server: tuple[Server, str]) -> None:
    running, key = server
    ok = httpx.post(
        running.url + "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert ok.status_code == 200, ok.text
    assert running.client.get("/health").status_code == 200


def _slow_body(url: str, path: str, key: str) -> tuple[int, float, bytes]:
    """Announces 1,000 body bytes, sends 10, then waits: (status, seconds, response bytes)."""
    host, port = url.removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=BODY_DEADLINE * 5) as sock:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
            f"x-api-key: {key}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        )
        sock.sendall(head.encode() + b'{"model": ')
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    status = int(received.split(b" ", 2)[1]) if received else 0
    return status, time.monotonic() - started, received


@pytest.mark.parametrize("route", ["openai-chat", "anthropic", "handoff-push", "context"])
def test_a_slow_body_is_cut_at_the_deadline(server: tuple[Server, str], route: str) -> None:
    running, key = server
    status, seconds, received = _slow_body(running.url, ROUTES[route][0], key)
    assert status == 408, received[:300]
    assert b"application/json" in received.split(b"\r\n\r\n", 1)[0].lower()
    assert BODY_DEADLINE * 0.8 <= seconds < BODY_DEADLINE + ANSWER_WITHIN, seconds
