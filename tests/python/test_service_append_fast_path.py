"""``POST /api/v1/context/messages`` outside FastAPI's routing (service/append_fast_path.py):
valid appends are answered by the fast path with the route's exact answer; every other request
reaches the route with its body replayed, authenticated and charged once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from context_service_support import CONTEXT, bearer
from relay_context.config.settings import Environment, Settings
from relay_context.service.app import create_app
from relay_context.service.append_fast_path import AppendFastPath
from service_support import TEST_SECRET, assert_error, serve_in_thread

USER = bearer("fast-user", "user")
OTHER = bearer("fast-other", "user")
VIEWER = bearer("fast-viewer", "viewer")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, Any]]:
    settings = Settings(
        environment=Environment.TESTING,
        secret_key=SecretStr(TEST_SECRET),
        data_dir=Path(tmp_path_factory.mktemp("fast-path")),
        rate_limit_requests=1000,
    )
    app = create_app(settings)
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        assert client.get("/health").status_code == 200  # builds the middleware stack
        yield client, app


def fast_path(app: Any) -> AppendFastPath:
    layer = app.middleware_stack
    while not isinstance(layer, AppendFastPath):
        layer = layer.app
    return layer


def post(
    client: httpx.Client, headers: dict[str, str], body: bytes, content_type: str
) -> httpx.Response:
    return client.post(
        f"{CONTEXT}/messages", headers={**headers, "Content-Type": content_type}, content=body
    )


def remaining(response: httpx.Response) -> int:
    return int(response.headers["x-ratelimit-remaining"])


def test_a_valid_append_is_served_with_the_routes_answer(
    served: tuple[httpx.Client, Any],
) -> None:
    client, app = served
    layer = fast_path(app)
    body = b'{"session_id": "%s", "role": "user", "content": "hello there", "metadata": {"k": 1}}'
    before = (layer.served, layer.delegated)
    fast = post(client, USER, body % b"fast-a", "application/json")
    # ``+json`` is JSON to the route but not to the fast path: the route answers it.
    routed = post(client, USER, body % b"fast-b", "application/merge+json")
    assert (layer.served, layer.delegated) == (before[0] + 1, before[1] + 1)
    assert fast.status_code == routed.status_code == 201
    assert {**fast.json(), "session_id": "fast-b"} == routed.json()
    assert fast.json()["seq"] == 1
    assert fast.json()["session"]["message_count"] == 1
    varying = {"x-request-id", "x-ratelimit-remaining", "x-ratelimit-reset", "date"}
    assert {k: v for k, v in fast.headers.items() if k not in varying} == {
        k: v for k, v in routed.headers.items() if k not in varying
    }
    # The route's template labels the fast path's requests in the metrics too.
    metrics = client.get("/metrics").text
    assert 'route="/api/v1/context/messages",status="201"' in metrics


def test_refused_bodies_get_the_routes_422_and_are_charged_once(
    served: tuple[httpx.Client, Any],
) -> None:
    client, app = served
    layer = fast_path(app)
    first = post(
        client,
        USER,
        b'{"session_id": "fast-c", "role": "user", "content": "x"}',
        "application/json",
    )
    assert first.status_code == 201
    cases = [
        (b'{"session_id": "fast-c", "content": "no role"}', "validation_error"),
        (b'{"session_id": "fast-c", "role": "user", "content": "\\ud800"}', "validation_error"),
        (b'{"session_id":', "validation_error"),
        (b"[1, 2]", "validation_error"),
        (
            b'{"session_id": "fast-c", "role": "user", "content": "x", "extra": 1}',
            "validation_error",
        ),
    ]
    last = remaining(first)
    for body, kind in cases:
        delegated = layer.delegated
        response = post(client, USER, body, "application/json")
        error = assert_error(response, 422, kind)
        assert layer.delegated == delegated + 1
        assert remaining(response) == last - 1, body  # one request charged, not two
        last = remaining(response)
    surrogate = post(
        client,
        USER,
        b'{"session_id": "fast-c", "role": "user", "content": "\\ud800"}',
        "application/json",
    )
    assert assert_error(surrogate, 422, "validation_error")["details"][0]["loc"] == [
        "body",
        "content",
    ]
    assert error["request_id"]
    long_key = post(
        client,
        {**USER, "Idempotency-Key": "k" * 256},
        b'{"session_id": "fast-c", "role": "user", "content": "x"}',
        "application/json",
    )
    assert_error(long_key, 422, "validation_error")
    # Nothing refused was stored.
    stats = client.get(f"{CONTEXT}/fast-c/stats", headers=USER)
    assert stats.status_code == 200, stats.text
    assert stats.json()["message_count"] == 1


def test_typed_errors_of_the_fast_path_keep_their_status(
    served: tuple[httpx.Client, Any],
) -> None:
    client, app = served
    layer = fast_path(app)
    body = b'{"session_id": "fast-d", "role": "user", "content": "mine"}'
    served_before, delegated_before = layer.served, layer.delegated
    unauthenticated = post(client, {}, body, "application/json")
    assert_error(unauthenticated, 401, "authentication")
    assert unauthenticated.headers["www-authenticate"] == "Bearer"
    assert post(client, USER, body, "application/json").status_code == 201
    # Another principal's session is missing to it; a viewer may not write.
    assert_error(post(client, OTHER, body, "application/json"), 404, "session_not_found")
    assert_error(post(client, VIEWER, body, "application/json"), 403, "permission_denied")
    # All answered here (the 401 before the body was read); none handed to the route.
    assert (layer.served, layer.delegated) == (served_before + 3, delegated_before)
    # Idempotency-Key through the fast path: the retry is the first answer.
    keyed = {**USER, "Idempotency-Key": "fast-retry-1"}
    once = post(client, keyed, body, "application/json")
    again = post(client, keyed, body, "application/json")
    assert once.status_code == again.status_code == 201
    assert once.json() == again.json()
