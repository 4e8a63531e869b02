"""Per-key requests per minute (the C++ limiter), the usage ledger behind
``GET /api/v1/gateway/usage`` (a key sees its own, an admin everyone's), costs from the price
table, and the circuits in ``/health``."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway_support import jwt_for, running_gateway
from relay_context.security.auth import UserRole


def test_rpm_per_key_is_429_with_retry_after_in_each_shape(tmp_path: Path) -> None:
    with running_gateway(tmp_path, rpm=2) as rig:
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}
        assert rig.post("/v1/chat/completions", body).status_code == 200
        assert rig.post("/v1/chat/completions", body).status_code == 200
        limited = rig.post("/v1/chat/completions", body)
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert limited.headers["x-ratelimit-limit-requests"] == "2"
        assert limited.json()["error"]["code"] == "rate_limit_exceeded"
        anthropic_shaped = httpx.post(
            rig.url + "/v1/messages",
            json={**body, "max_tokens": 5},
            headers={"x-api-key": rig.key},
        )
        assert anthropic_shaped.status_code == 429
        assert anthropic_shaped.json()["error"]["type"] == "rate_limit_error"
        # Another principal has its own window.
        other = {"authorization": f"Bearer {jwt_for('bob')}"}
        assert rig.post("/v1/chat/completions", body, headers=other).status_code == 200
        with pytest.raises(openai.RateLimitError):
            openai.OpenAI(base_url=rig.v1, api_key=rig.key, max_retries=0).chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "x"}]
            )
        assert "relay_rate_limit_rejections_total" in httpx.get(rig.url + "/metrics").text


def test_usage_ledger_by_key_and_model_with_costs(tmp_path: Path) -> None:
    with running_gateway(tmp_path) as rig:
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "fake:cached=4 x"}]}
        for _ in range(3):
            assert rig.post("/v1/chat/completions", body).status_code == 200
        bob = {"authorization": f"Bearer {jwt_for('bob')}"}
        assert (
            rig.post("/v1/chat/completions", {**body, "model": "claude-haiku-4-5"}, bob).status_code
            == 200
        )
        own = httpx.get(
            rig.url + "/api/v1/gateway/usage",
            params={"group_by": "model"},
            headers={"x-api-key": rig.key},
        ).json()
        assert [r["model"] for r in own["data"]] == ["gpt-4o"]
        row = own["data"][0]
        assert row["requests"] == 3
        assert row["cached_input_tokens"] == 12
        # gpt-4o: $2.50 / 1M input, $1.25 / 1M cached input, $10 / 1M output.
        fresh = row["input_tokens"] - row["cached_input_tokens"]
        expected = (
            fresh * 2.5 + row["cached_input_tokens"] * 1.25 + row["output_tokens"] * 10
        ) / 1e6
        assert row["cost_usd"] == pytest.approx(expected, rel=1e-6)
        admin = {"authorization": f"Bearer {jwt_for('root', UserRole.ADMIN)}"}
        everyone = httpx.get(
            rig.url + "/api/v1/gateway/usage", params={"group_by": "key"}, headers=admin
        ).json()
        assert {r["key"] for r in everyone["data"]} == {"alice", "bob"}
        by_day = httpx.get(
            rig.url + "/api/v1/gateway/usage", params={"group_by": "day"}, headers=admin
        ).json()
        assert sum(r["requests"] for r in by_day["data"]) == 4
        assert httpx.get(rig.url + "/api/v1/gateway/usage").status_code == 401


def test_health_lists_the_circuits(tmp_path: Path) -> None:
    with running_gateway(tmp_path) as rig:
        rig.post(
            "/v1/chat/completions",
            {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]},
        )
        health = httpx.get(rig.url + "/health").json()
        assert health["gateway"]["circuits"] == {"openai/gpt-4o": "closed"}


def test_a_span_per_upstream_call_under_the_request_span(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    with running_gateway(tmp_path, span_exporter=exporter) as rig:
        rig.upstream.push({"status": 503})
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}
        assert rig.post("/v1/chat/completions", body).status_code == 200
    upstream = [s for s in exporter.get_finished_spans() if s.name == "gateway.upstream"]
    assert [s.attributes["relay.attempt"] for s in upstream] == [1, 2]
    assert upstream[0].status.status_code.name == "ERROR"
    assert upstream[1].attributes["http.response.status_code"] == 200
    request = next(
        s for s in exporter.get_finished_spans() if s.name == "HTTP POST /v1/chat/completions"
    )
    assert all(
        s.parent is not None and s.parent.span_id == request.context.span_id for s in upstream
    )
