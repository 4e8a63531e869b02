"""Settings of the service: production secret rules, the nested spelling, the generated
development key, and the tracing spans (in-memory exporter, app served by uvicorn in a thread)."""

from __future__ import annotations

import asyncio
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr, ValidationError

from relay_context.config.settings import Environment, Settings
from relay_context.main import create_app
from relay_context.security.api_keys import ApiKeyStore
from relay_context.security.auth import AuthService, UserRole
from relay_context.service.telemetry import make_tracer_provider
from service_support import assert_error, serve_in_thread


@pytest.mark.parametrize("secret", [None, "", "too-short-0123456789"])
def test_production_refuses_a_missing_or_short_secret(tmp_path: Path, secret: str | None) -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY is required in production"):
        Settings(
            environment=Environment.PRODUCTION,
            secret_key=None if secret is None else SecretStr(secret),
            data_dir=tmp_path,
        )


def test_production_refuses_a_short_secret_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ENVIRONMENT", "production")
    monkeypatch.setenv("SECRET_KEY", "x" * 31)
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    with pytest.raises(ValidationError, match="at least 32 characters"):
        Settings()
    monkeypatch.setenv("SECRET_KEY", "x" * 32)
    assert Settings().environment is Environment.PRODUCTION


def test_flat_environment_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name, value in {
        "APP_NAME": "relay-test",
        "LOG_LEVEL": "DEBUG",
        "JWT_EXPIRATION_MINUTES": "7",
        "RATE_LIMIT_REQUESTS": "9",
        "RATE_LIMIT_WINDOW_SECONDS": "11",
        "MAX_WINDOW_TOKENS": "4096",
        "COMPRESSION_ALGORITHM": "lz4",
        "TTL_SECONDS": "42",
        "CORS_ORIGINS": '["https://a.example"]',
        "DATA_DIR": str(tmp_path),
    }.items():
        monkeypatch.setenv(name, value)
    s = Settings()
    assert (s.app_name, s.log_level, s.jwt_expiration_minutes) == ("relay-test", "DEBUG", 7)
    assert (s.rate_limit_requests, s.rate_limit_window_seconds) == (9, 11)
    assert (s.max_window_tokens, s.compression_algorithm, s.ttl_seconds) == (4096, "lz4", 42)
    assert s.cors_origins == ["https://a.example"]


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_nested_spelling_of_the_product_docs(tmp_path: Path) -> None:
    s = Settings(
        environment=Environment.TESTING,
        security__secret_key=SecretStr("test-key"),
        llm__openai_api_key=SecretStr("sk-test"),
        data_dir=tmp_path,
    )
    assert s.secret_key is not None
    assert s.secret_key.get_secret_value() == "test-key"
    assert s.openai_api_key is not None
    sectioned = Settings(security={"rate_limit_requests": 5}, data_dir=tmp_path)
    assert sectioned.rate_limit_requests == 5
    # The flat spelling wins over the nested one.
    both = Settings(rate_limit_requests=7, security__rate_limit_requests=5, data_dir=tmp_path)
    assert both.rate_limit_requests == 7
    auth = AuthService(s)
    payload = auth.verify_token(auth.create_access_token("user-1", UserRole.USER))
    assert (payload.sub, payload.role) == ("user-1", UserRole.USER)


def test_development_secret_is_generated_once_and_kept(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "state")
    first = settings.resolved_secret_key().get_secret_value()
    assert len(first) >= 32
    path = tmp_path / "state" / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Settings(data_dir=tmp_path / "state").resolved_secret_key().get_secret_value() == first
    # Tokens survive a restart of the service (a new AuthService on the same data dir).
    token = AuthService(settings).create_access_token("u", UserRole.VIEWER)
    assert AuthService(Settings(data_dir=tmp_path / "state")).verify_token(token).sub == "u"


@pytest.fixture
def traced_app(tmp_path: Path) -> Iterator[tuple[str, InMemorySpanExporter, Settings]]:
    exporter = InMemorySpanExporter()
    settings = Settings(
        environment=Environment.TESTING,
        secret_key=SecretStr("k" * 40),
        data_dir=tmp_path,
        log_level="WARNING",
    )
    with serve_in_thread(create_app(settings, span_exporter=exporter)) as url:
        yield url, exporter, settings


def test_spans_for_requests_and_the_database(
    traced_app: tuple[str, InMemorySpanExporter, Settings],
) -> None:
    url, exporter, settings = traced_app
    token = AuthService(settings).create_access_token("tracer", UserRole.ADMIN)
    with httpx.Client(base_url=url) as client:
        assert client.get("/health").status_code == 200
        created = client.post(
            "/api/v1/keys", headers={"Authorization": f"Bearer {token}"}, json={"role": "user"}
        )
        assert created.status_code == 201
        key = created.json()["key"]
        assert client.get("/health", headers={"X-API-Key": key}).status_code == 200
        assert client.get("/api/v1/keys", headers={"X-API-Key": key}).status_code == 403
    # The request span ends just after the response is sent: wait for the last one.
    deadline = time.monotonic() + 10
    while "HTTP GET /api/v1/keys" not in {s.name for s in exporter.get_finished_spans()}:
        assert time.monotonic() < deadline, [s.name for s in exporter.get_finished_spans()]
        time.sleep(0.02)
    spans = exporter.get_finished_spans()
    names = [s.name for s in spans]
    assert "HTTP GET /health" in names
    assert "HTTP POST /api/v1/keys" in names
    assert "db.ping" in names
    assert "db.api_key.create" in names
    request = next(s for s in spans if s.name == "HTTP POST /api/v1/keys")
    assert request.attributes is not None
    assert request.attributes["http.response.status_code"] == 201
    assert request.attributes["relay.principal"] == "tracer"
    child = next(s for s in spans if s.name == "db.api_key.create")
    assert child.parent is not None
    assert child.parent.span_id == request.context.span_id
    forbidden = next(s for s in spans if s.name == "HTTP GET /api/v1/keys")
    assert forbidden.attributes is not None
    assert forbidden.attributes["http.response.status_code"] == 403
    assert any(s.resource.attributes.get("service.name") == "relay-context" for s in spans)


async def test_api_key_store_directly(tmp_path: Path) -> None:
    from relay_context.engine.store import open_store

    store = await open_store(Settings(data_dir=tmp_path))
    try:
        keys = ApiKeyStore(store)
        record, plaintext = await keys.create(role=UserRole.VIEWER, name="n", owner="o")
        principal = await keys.authenticate(plaintext)
        assert principal is not None
        assert (principal.id, principal.role, principal.key_id) == ("o", UserRole.VIEWER, record.id)
        assert await keys.count_active() == 1
        await keys.revoke(record.id)
        first = (await keys.get(record.id)).revoked_at
        await asyncio.sleep(0.01)
        assert (await keys.revoke(record.id)).revoked_at == first  # idempotent
        assert await keys.authenticate(plaintext) is None
        assert await keys.count_active() == 0
    finally:
        await store.close()


def test_unexpected_errors_are_a_500_without_internals(tmp_path: Path) -> None:
    settings = Settings(
        environment=Environment.PRODUCTION, secret_key=SecretStr("p" * 40), data_dir=tmp_path
    )
    app = create_app(settings)

    async def boom() -> None:
        raise RuntimeError("secret internal detail")

    app.add_api_route("/boom", boom)
    with serve_in_thread(app) as url, httpx.Client(base_url=url) as client:
        response = client.get("/boom")
        error = assert_error(response, 500, "internal_error")
        assert "secret" not in response.text
        assert error["message"] == "internal server error"
        assert response.headers["strict-transport-security"].startswith("max-age=")
        assert client.get("/health").json()["environment"] == "production"
        metrics = client.get("/metrics").text
        assert 'relay_errors_total{status="500",type="internal_error"} 1.0' in metrics


def test_otlp_exporter_sends_spans_to_the_collector(tmp_path: Path) -> None:
    """A stand-in collector (plain HTTP server) receives the OTLP/HTTP export."""
    import http.server

    received: list[tuple[str, bytes]] = []

    class Collector(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    collector = http.server.HTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=collector.serve_forever, daemon=True)
    thread.start()
    try:
        settings = Settings(
            data_dir=tmp_path,
            secret_key=SecretStr("o" * 40),
            otel_exporter_otlp_endpoint=f"http://127.0.0.1:{collector.server_port}",
            otel_service_name="relay-otlp-test",
        )
        provider = make_tracer_provider(settings)
        with provider.get_tracer("t").start_as_current_span("tokens.count"):
            pass
        assert provider.force_flush(10_000)
        provider.shutdown()
    finally:
        collector.shutdown()
        collector.server_close()
    assert received, "no OTLP export arrived"
    path, body = received[0]
    assert path == "/v1/traces"
    assert b"tokens.count" in body
    assert b"relay-otlp-test" in body
