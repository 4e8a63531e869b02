"""Runs the gateway for its tests: a fake upstream and the Relay app, both on uvicorn +
httptools in threads of the test process, with a Relay API key made through the admin API."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from fake_upstream import FakeUpstream, serve_in_thread
from relay_context.config.gateway import GatewaySettings
from relay_context.config.settings import Environment, Settings
from relay_context.security.auth import AuthService, UserRole
from relay_context.service.app import create_app
from service_support import TEST_SECRET

UPSTREAM_KEY = "sk-upstream-secret"


@dataclass
class GatewayRig:
    url: str
    upstream: FakeUpstream
    upstream_url: str
    key: str
    settings: Settings
    app: Any

    @property
    def v1(self) -> str:
        return self.url + "/v1"

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
        return httpx.post(
            self.url + path,
            json=body,
            headers={"authorization": f"Bearer {self.key}", **(headers or {})},
            timeout=30,
        )

    @property
    def gateway(self) -> Any:
        return self.app.state.relay.gateway


def jwt_for(user: str, role: UserRole = UserRole.USER) -> str:
    auth = AuthService(Settings(environment=Environment.TESTING, secret_key=SecretStr(TEST_SECRET)))
    return auth.create_access_token(user, role)


def gateway_settings(upstream_url: str, **overrides: Any) -> GatewaySettings:
    """Both providers at the fake upstream; an override that is callable gets its URL."""
    values: dict[str, Any] = {
        "openai_base_url": upstream_url + "/v1",
        "openai_api_key": UPSTREAM_KEY,
        "anthropic_base_url": upstream_url,
        "anthropic_api_key": UPSTREAM_KEY,
        "gemini_base_url": upstream_url,
        "gemini_api_key": UPSTREAM_KEY,
        "retry_base_seconds": 0.01,
        "llm_provider_url": None,
    }
    values.update({k: v(upstream_url) if callable(v) else v for k, v in overrides.items()})
    return GatewaySettings(**values)


@contextmanager
def running_gateway(
    tmp: Path,
    upstream: FakeUpstream | None = None,
    *,
    config_file: Path | None = None,
    span_exporter: Any = None,
    relay_settings: dict[str, Any] | None = None,
    **gateway_overrides: Any,
) -> Iterator[GatewayRig]:
    fake = upstream or FakeUpstream(required_key=UPSTREAM_KEY)
    with serve_in_thread(fake) as upstream_url:
        settings = Settings(
            environment=Environment.TESTING,
            secret_key=SecretStr(TEST_SECRET),
            data_dir=tmp,
            rate_limit_requests=100_000,
            config_file=config_file,
            config_reload_interval_seconds=0,
            gateway=gateway_settings(upstream_url, **gateway_overrides),
            **(relay_settings or {}),
        )
        app = create_app(settings, span_exporter=span_exporter)
        with serve_in_thread(app) as url:
            admin = {"authorization": f"Bearer {jwt_for('root', UserRole.ADMIN)}"}
            created = httpx.post(
                url + "/api/v1/keys", json={"role": "user", "owner": "alice"}, headers=admin
            )
            created.raise_for_status()
            yield GatewayRig(url, fake, upstream_url, created.json()["key"], settings, app)
