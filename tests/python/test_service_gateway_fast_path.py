"""The gateway's fixed ``/v1/*`` paths outside FastAPI's routing (service/gateway_fast_path.py):
answered by the route's own code with the same answers, labelled with the route's template in
the metrics; other methods, Gemini's parameterised paths and everything else reach FastAPI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gateway_support import GatewayRig, running_gateway
from relay_context.service.gateway_fast_path import GatewayFastPath


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayRig]:
    with running_gateway(Path(tmp_path_factory.mktemp("gw-fast"))) as running:
        yield running


def layer(rig: GatewayRig) -> GatewayFastPath:
    found = rig.app.middleware_stack
    while not isinstance(found, GatewayFastPath):
        found = found.app
    return found


def auth(rig: GatewayRig) -> dict[str, str]:
    return {"authorization": f"Bearer {rig.key}"}


def test_the_fixed_paths_are_served_here_with_the_routes_answers(rig: GatewayRig) -> None:
    fast = layer(rig)
    assert {path for _, path in fast.routes} == {
        "/v1/chat/completions",
        "/v1/messages",
        "/v1/messages/count_tokens",
        "/v1/embeddings",
        "/v1/responses",
        "/v1/models",
    }
    before = fast.served
    chat = rig.post(
        "/v1/chat/completions",
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "fast path"}]},
    )
    assert chat.status_code == 200, chat.text
    assert chat.json()["object"] == "chat.completion"
    assert chat.headers["x-relay-request-id"]
    listed = httpx.get(rig.url + "/v1/models", headers=auth(rig))
    assert listed.status_code == 200
    assert listed.json()["object"] == "list"
    # Errors are the gateway's, in the provider's shape.
    refused = httpx.post(rig.url + "/v1/messages", headers=auth(rig), content=b"{not json")
    assert refused.status_code == 400
    assert refused.json()["type"] == "error"
    unauthenticated = httpx.post(rig.url + "/v1/chat/completions", content=b"{}")
    assert unauthenticated.status_code == 401
    assert "error" in unauthenticated.json()
    assert fast.served == before + 4
    # The request metrics carry the route's template, as when FastAPI routes the request.
    metrics = httpx.get(rig.url + "/metrics").text
    assert 'route="/v1/chat/completions"' in metrics
    assert 'route="/v1/models"' in metrics


def test_everything_else_reaches_fastapi(rig: GatewayRig) -> None:
    fast = layer(rig)
    before = fast.served
    wrong_method = httpx.get(rig.url + "/v1/chat/completions", headers=auth(rig))
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "POST"
    gemini = httpx.post(
        rig.url + "/v1beta/models/gemini-2.0-flash:generateContent",
        headers={"x-goog-api-key": rig.key},
        json={"contents": [{"role": "user", "parts": [{"text": "hello"}]}]},
    )
    assert gemini.status_code in (200, 404), gemini.text  # routed by FastAPI either way
    assert httpx.get(rig.url + "/health").status_code == 200
    assert httpx.post(rig.url + "/v1/chat/completions/", headers=auth(rig)).status_code in (
        404,
        307,
    )
    assert fast.served == before
