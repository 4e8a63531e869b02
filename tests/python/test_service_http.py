"""The HTTP surface of ``relay serve`` on embedded defaults: health, metrics, the error shape,
the body cap, security headers, CORS, request ids, OpenAPI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from service_support import Server, assert_error, create_key, run_server, service_env

ORIGIN = "https://app.example.com"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("http")
    env = service_env(
        data / "state", cors_origins=[ORIGIN], max_request_bytes="2048", log_level="INFO"
    )
    with run_server(env, data) as running:
        yield running


@pytest.fixture(scope="module")
def admin(server: Server) -> dict[str, str]:
    return {"X-API-Key": create_key(server.env, "admin")["key"]}


def test_health_reports_each_dependency(server: Server) -> None:
    response = server.client.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy"
    assert body["environment"] == "development"
    assert body["version"]
    assert body["uptime_seconds"] >= 0
    database = body["checks"]["database"]
    assert database["status"] == "healthy"
    assert database["backend"] == "sqlite"
    assert database["latency_ms"] >= 0
    assert "redis" not in body["checks"]  # not configured: in-process limits


def test_metrics_parse_and_count_requests(server: Server, admin: dict[str, str]) -> None:
    server.client.get("/health")
    server.client.get("/api/v1/keys", headers=admin)
    server.client.get("/does-not-exist")
    response = server.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    for name in (
        "relay_context_tokens_used",
        "relay_context_drift_score",
        "relay_http_request_duration_seconds",
        "relay_cache_hit_rate",
        "relay_errors",
        "relay_rate_limit_limit",
        "relay_rate_limit_remaining",
        "relay_compression_ratio",
        "relay_sessions_active",
        "relay_api_keys_active",
    ):
        assert name in families, name
    assert families["relay_http_request_duration_seconds"].type == "histogram"
    counts = {
        (s.labels["route"], s.labels["status"]): s.value
        for s in families["relay_http_request_duration_seconds"].samples
        if s.name.endswith("_count")
    }
    assert counts[("/health", "200")] >= 1
    assert counts[("/api/v1/keys", "200")] >= 1
    assert counts[("<unmatched>", "404")] >= 1
    errors = {
        (s.labels["type"], s.labels["status"]): s.value
        for s in families["relay_errors"].samples
        if s.name == "relay_errors_total"
    }
    assert errors[("not_found", "404")] >= 1
    limit = families["relay_rate_limit_limit"].samples[0].value
    assert limit == 100
    assert families["relay_api_keys_active"].samples[0].value >= 1


def test_404_405_422_share_one_shape(server: Server, admin: dict[str, str]) -> None:
    assert_error(server.client.get("/nope"), 404, "not_found")
    response = server.client.put("/health")
    assert_error(response, 405, "method_not_allowed")
    assert "GET" in response.headers["allow"]
    error = assert_error(
        server.client.post("/api/v1/keys", headers=admin, json={"role": "root", "extra": 1}),
        422,
        "validation_error",
    )
    locations = {tuple(d["loc"]) for d in error["details"]}
    assert ("body", "role") in locations
    assert ("body", "extra") in locations
    bad_json = server.client.post(
        "/api/v1/keys",
        headers={**admin, "content-type": "application/json"},
        content=b"{not json",
    )
    assert_error(bad_json, 422, "validation_error")


def test_body_cap_gives_413(server: Server, admin: dict[str, str]) -> None:
    big = b'{"name": "' + b"x" * 4096 + b'"}'
    declared = server.client.post(
        "/api/v1/keys", headers={**admin, "content-type": "application/json"}, content=big
    )
    assert_error(declared, 413, "request_too_large")

    def chunks() -> Iterator[bytes]:
        yield big[:1000]
        yield big[1000:]

    streamed = server.client.post(
        "/api/v1/keys",
        headers={**admin, "content-type": "application/json"},
        content=chunks(),
    )
    assert "content-length" not in streamed.request.headers
    assert_error(streamed, 413, "request_too_large")
    small = server.client.post("/api/v1/keys", headers=admin, json={"name": "fits"})
    assert small.status_code == 201


def test_security_headers_and_request_id(server: Server) -> None:
    response = server.client.get("/health", headers={"X-Request-ID": "abc-123"})
    headers = response.headers
    assert headers["x-request-id"] == "abc-123"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert "default-src 'none'" in headers["content-security-policy"]
    assert "strict-transport-security" not in headers  # development: plain HTTP
    generated = server.client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert generated.headers["x-request-id"] != "bad id\twith spaces"
    assert len(generated.headers["x-request-id"]) == 32
    error = server.client.get("/nope").headers
    assert error["x-content-type-options"] == "nosniff"


def test_cors_preflight_and_simple_requests(server: Server) -> None:
    preflight = server.client.options(
        "/api/v1/keys",
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "X-API-Key, Content-Type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "x-api-key" in preflight.headers["access-control-allow-headers"].lower()
    assert preflight.headers["x-content-type-options"] == "nosniff"
    simple = server.client.get("/health", headers={"Origin": ORIGIN})
    assert simple.headers["access-control-allow-origin"] == ORIGIN
    assert "x-ratelimit-remaining" in simple.headers["access-control-expose-headers"].lower()
    other = server.client.options(
        "/api/v1/keys",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert other.status_code == 400
    assert "access-control-allow-origin" not in other.headers


def test_rate_limit_headers_on_success(server: Server, admin: dict[str, str]) -> None:
    first = server.client.get("/api/v1/keys", headers=admin)
    second = server.client.get("/api/v1/keys", headers=admin)
    assert first.headers["x-ratelimit-limit"] == "100"
    assert int(second.headers["x-ratelimit-remaining"]) == (
        int(first.headers["x-ratelimit-remaining"]) - 1
    )
    assert int(second.headers["x-ratelimit-reset"]) > 1_700_000_000


def test_openapi_and_docs(server: Server) -> None:
    spec = server.client.get("/openapi.json").json()
    assert spec["info"]["title"] == "Relay context service"
    assert {"/health", "/metrics", "/api/v1/keys", "/api/v1/keys/{key_id}"} <= set(spec["paths"])
    docs = server.client.get("/docs")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
    assert "cdn.jsdelivr.net" in docs.headers["content-security-policy"]


def test_unreachable_server_is_not_healthy(tmp_path: object) -> None:
    # Sanity check of the harness itself: nothing listens on a fresh port.
    from service_support import free_port

    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{free_port()}/health", timeout=1)


def test_embedded_defaults_in_home(tmp_path: Path) -> None:
    """No DATA_DIR, no SECRET_KEY, no database or Redis: ``relay serve`` keeps everything in
    ``~/.relay`` and answers healthy (the README's main job)."""
    env = service_env(tmp_path / "unused", secret_key=None)
    del env["DATA_DIR"]
    env["HOME"] = str(tmp_path / "home")
    with run_server(env, tmp_path, port_flag=False) as server:
        body = server.client.get("/health").json()
        assert body["status"] == "healthy"
        assert body["checks"]["database"]["backend"] == "sqlite"
        state = tmp_path / "home" / ".relay"
        assert (state / "relay.db").is_file()
        assert len((state / "secret_key").read_text().strip()) >= 32
        key = create_key(env, "viewer")["key"]
        assert server.client.get("/health", headers={"X-API-Key": key}).status_code == 200


def test_logs_are_json_lines_with_the_request_id(server: Server) -> None:
    import json
    import time

    response = server.client.get("/health", headers={"X-Request-ID": "log-probe-1"})
    assert response.status_code == 200
    deadline = time.monotonic() + 10
    while True:
        entries = [json.loads(line) for line in server.log().splitlines() if line.strip()]
        access = [e for e in entries if e.get("request_id") == "log-probe-1"]
        if access or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert access, entries[-5:]
    (line,) = access
    assert line["level"] == "INFO"
    assert (line["method"], line["route"], line["status"]) == ("GET", "/health", 200)
    assert line["duration_ms"] >= 0
    assert any(e["message"] == "relay service ready" for e in entries)
