"""Retries (backoff, retry-after), fallbacks, the circuit breaker (closed, open, half-open),
cut streams and hung upstreams, driven through the HTTP API against the fake upstream."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from fake_upstream import FakeUpstream, serve_in_thread
from gateway_support import UPSTREAM_KEY, GatewayRig, running_gateway


def providers(primary_url: str, backup_url: str) -> dict[str, Any]:
    return {
        "primary": {"type": "openai", "base_url": primary_url + "/v1", "api_key": UPSTREAM_KEY},
        "backup": {"type": "anthropic", "base_url": backup_url, "api_key": UPSTREAM_KEY},
    }


@pytest.fixture(scope="module")
def backup() -> Iterator[tuple[FakeUpstream, str]]:
    fake = FakeUpstream(required_key=UPSTREAM_KEY)
    with serve_in_thread(fake) as url:
        yield fake, url


@pytest.fixture(scope="module")
def rig(
    tmp_path_factory: pytest.TempPathFactory, backup: tuple[FakeUpstream, str]
) -> Iterator[GatewayRig]:
    with running_gateway(
        tmp_path_factory.mktemp("gw"),
        providers=lambda url: providers(url, backup[1]),
        models={
            "smart": {"routes": ["primary/gpt-4o", "backup/claude-sonnet-4-5"]},
            "flaky": {"routes": ["primary/gpt-4o-mini"]},
            "hangs": {"routes": ["primary/gpt-4.1"]},
        },
        max_retries=2,
        breaker_failure_threshold=2,
        breaker_cooldown_seconds=0.5,
        read_timeout_seconds=0.5,
    ) as r:
        yield r


def chat(rig: GatewayRig, model: str, content: str = "hi", **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": content}], **extra}
    return rig.post("/v1/chat/completions", body)


def test_retry_honours_retry_after_then_succeeds(rig: GatewayRig) -> None:
    rig.upstream.reset()
    rig.upstream.push({"status": 429, "retry_after": 0.3})
    started = time.monotonic()
    response = chat(rig, "smart")
    elapsed_ms = (time.monotonic() - started) * 1000
    assert response.status_code == 200
    assert elapsed_ms >= 300
    assert len(rig.upstream.requests) == 2
    assert response.headers["x-relay-provider"] == "primary"
    # The 0.3 s wait was the upstream's: it is not in Relay's overhead (which, on a loaded
    # machine, may itself be long — so compared with the elapsed time, not a fixed bound).
    assert float(response.headers["x-relay-overhead-ms"]) < elapsed_ms - 250


def test_retries_exhausted_then_fallback_to_other_provider(
    rig: GatewayRig, backup: tuple[FakeUpstream, str]
) -> None:
    rig.upstream.reset()
    backup[0].reset()
    rig.upstream.push({"status": 503}, {"status": 502}, {"status": 500})
    response = chat(rig, "smart")
    assert response.status_code == 200
    assert len(rig.upstream.requests) == 2  # the 2nd failure opened the circuit: no 3rd try
    assert response.headers["x-relay-provider"] == "backup"
    assert response.headers["x-relay-model"] == "claude-sonnet-4-5"
    assert backup[0].requests[-1].path == "/v1/messages"
    assert response.json()["choices"][0]["message"]["content"].startswith("Hello from")
    # The primary is open now: the backup serves until its cooldown ends.
    rig.upstream.reset()
    assert chat(rig, "smart").headers["x-relay-provider"] in ("primary", "backup")


def test_client_errors_are_not_retried(rig: GatewayRig) -> None:
    rig.upstream.reset()
    rig.upstream.push({"status": 422, "error_message": "bad field"})
    response = chat(rig, "flaky")
    assert response.status_code == 422
    assert response.json()["error"]["message"] == "bad field"
    assert len(rig.upstream.requests) == 1


def test_breaker_opens_rejects_without_calling_then_half_open_probe_closes(
    rig: GatewayRig,
) -> None:
    rig.upstream.reset()
    rig.upstream.push(*[{"status": 500}] * 3)
    first = chat(rig, "flaky")  # 500, retried; the 2nd failure opens the circuit
    assert first.status_code == 500
    calls = len(rig.upstream.requests)
    assert calls == 2
    refused = chat(rig, "flaky")
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "circuit_open"
    assert int(refused.headers["retry-after"]) >= 1
    assert len(rig.upstream.requests) == calls  # no upstream call while open
    metrics = httpx.get(rig.url + "/metrics").text
    assert 'relay_circuit_breaker_state{upstream="primary/gpt-4o-mini"} 2.0' in metrics
    time.sleep(0.6)
    rig.upstream.reset()  # the probe succeeds
    probe = chat(rig, "flaky")
    assert probe.status_code == 200
    metrics = httpx.get(rig.url + "/metrics").text
    assert 'relay_circuit_breaker_state{upstream="primary/gpt-4o-mini"} 0.0' in metrics


def test_failed_half_open_probe_opens_again(rig: GatewayRig) -> None:
    rig.upstream.reset()
    rig.upstream.push(*[{"status": 503}] * 2)
    assert chat(rig, "flaky").status_code == 503
    time.sleep(0.6)
    rig.upstream.push({"status": 503})
    assert chat(rig, "flaky").status_code == 503  # the probe failed
    assert chat(rig, "flaky").json()["error"]["code"] == "circuit_open"
    time.sleep(0.6)
    rig.upstream.reset()
    assert chat(rig, "flaky").status_code == 200


def test_cut_stream_ends_with_the_protocols_error_event(rig: GatewayRig) -> None:
    rig.upstream.reset()
    stream = openai.OpenAI(base_url=rig.v1, api_key=rig.key, max_retries=0).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "fake:cut_after=3"}], stream=True
    )
    with pytest.raises(openai.APIError) as caught:
        for _ in stream:
            pass
    assert "stream failed" in str(caught.value)
    with (
        pytest.raises(anthropic.APIStatusError),
        anthropic.Anthropic(base_url=rig.url, api_key=rig.key, max_retries=0).messages.stream(
            model="claude-sonnet-4-5",
            max_tokens=20,
            messages=[{"role": "user", "content": "fake:cut_after=4"}],
        ) as astream,
    ):
        for _ in astream:
            pass


def test_hung_upstream_times_out_as_504(rig: GatewayRig) -> None:
    rig.upstream.reset()
    started = time.monotonic()
    response = chat(rig, "hangs", "fake:hang")
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "timeout"
    assert len(rig.upstream.requests) == 2  # one retry, then the circuit opened
    assert time.monotonic() - started < 5
