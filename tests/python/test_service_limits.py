"""Per-principal rate limits (429 with the headers) and the YAML file that changes limits
without a restart, against ``relay serve`` on embedded defaults."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from relay_context.config.live import LiveSettings
from relay_context.config.settings import Settings
from relay_context.errors import InvalidArgumentError
from relay_context.security.auth import AuthService, UserRole
from service_support import TEST_SECRET, Server, assert_error, create_key, run_server, service_env


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "relay.yaml"
    path.write_text("limits:\n  rate_limit_requests: 3\n  rate_limit_window_seconds: 3600\n")
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, config_file: Path) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("limits")
    env = service_env(
        data / "state",
        config_file=str(config_file),
        config_reload_interval_seconds="0",
        rate_limit_requests="50",  # the YAML file overrides it
    )
    with run_server(env, data) as running:
        yield running


def token(user: str) -> dict[str, str]:
    auth = AuthService(Settings(secret_key=SecretStr(TEST_SECRET)))
    return {"Authorization": f"Bearer {auth.create_access_token(user, UserRole.ADMIN)}"}


def test_429_with_retry_after_and_per_principal_windows(server: Server) -> None:
    alice, bob = token("limit-alice"), token("limit-bob")
    remaining = []
    for _ in range(3):
        ok = server.client.get("/api/v1/keys", headers=alice)
        assert ok.status_code == 200, ok.text
        assert ok.headers["x-ratelimit-limit"] == "3"
        remaining.append(int(ok.headers["x-ratelimit-remaining"]))
    assert remaining == [2, 1, 0]
    limited = server.client.get("/api/v1/keys", headers=alice)
    error = assert_error(limited, 429, "rate_limit_exceeded")
    assert "3 requests per 3600 s" in error["message"]
    retry_after = int(limited.headers["retry-after"])
    assert 3500 <= retry_after <= 3600
    assert limited.headers["x-ratelimit-limit"] == "3"
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert int(limited.headers["x-ratelimit-reset"]) >= int(time.time()) + 3500
    # Another principal has its own window; the same principal through an API key too
    # (the window belongs to the principal id, whatever the credential).
    assert server.client.get("/api/v1/keys", headers=bob).status_code == 200
    key = create_key(server.env, "admin", owner="limit-alice")["key"]
    assert_error(
        server.client.get("/api/v1/keys", headers={"X-API-Key": key}), 429, "rate_limit_exceeded"
    )
    # Unauthenticated endpoints are not limited.
    for _ in range(5):
        assert server.client.get("/health").status_code == 200


def test_failed_logins_are_limited_per_client(server: Server) -> None:
    statuses = [
        server.client.get("/api/v1/keys", headers={"X-API-Key": "relay_" + "z" * 43}).status_code
        for _ in range(5)
    ]
    # Earlier tests may have used some of this client's window already.
    assert statuses.count(401) <= 3
    assert statuses[-1] == 429


def test_yaml_reload_changes_the_limit_without_restart(server: Server, config_file: Path) -> None:
    carol = token("reload-carol")
    for _ in range(3):
        assert server.client.get("/api/v1/keys", headers=carol).status_code == 200
    assert server.client.get("/api/v1/keys", headers=carol).status_code == 429

    config_file.write_text("limits:\n  rate_limit_requests: 10\n  rate_limit_window_seconds: 60\n")
    future = time.time() + 5
    os.utime(config_file, (future, future))  # a distinct mtime even on coarse clocks
    response = server.client.get("/api/v1/keys", headers=token("reload-dave"))
    assert response.headers["x-ratelimit-limit"] == "10"
    assert response.headers["x-ratelimit-remaining"] == "9"
    metrics = server.client.get("/metrics").text
    assert "relay_rate_limit_limit 10.0" in metrics
    assert "relay_rate_limit_window_seconds 60.0" in metrics

    # A broken edit is refused and the last good values stay in force.
    config_file.write_text("limits:\n  rate_limit_requests: -1\n")
    future += 5
    os.utime(config_file, (future, future))
    again = server.client.get("/api/v1/keys", headers=token("reload-erin"))
    assert again.headers["x-ratelimit-limit"] == "10"
    assert "config file not applied" in server.log()


def test_live_settings_reject_non_reloadable_keys(tmp_path: Path) -> None:
    path = tmp_path / "relay.yaml"
    path.write_text("database_url: postgresql://elsewhere/db\n")
    with pytest.raises(InvalidArgumentError, match="database_url cannot be set there"):
        LiveSettings(Settings(config_file=path, data_dir=tmp_path))
    path.write_text("- a list\n")
    with pytest.raises(InvalidArgumentError, match="mapping"):
        LiveSettings(Settings(config_file=path, data_dir=tmp_path))


def test_live_settings_model_table(tmp_path: Path) -> None:
    path = tmp_path / "relay.yaml"
    path.write_text(
        "models:\n  gpt-4o: {context_window: 128000, encoding: o200k_base}\n"
        "limits: {max_window_tokens: 64000, max_sessions_per_user: 3}\n"
    )
    live = LiveSettings(
        Settings(config_file=path, data_dir=tmp_path, config_reload_interval_seconds=0)
    )
    seen: list[int] = []
    live.on_change(lambda old, new: seen.append(new.max_window_tokens))
    assert live.current.models["gpt-4o"].context_window == 128_000
    assert live.current.max_sessions_per_user == 3
    assert not live.refresh()
    path.write_text("models:\n  tiny: {context_window: 4096}\nlimits: {max_window_tokens: 2048}\n")
    future = time.time() + 5
    os.utime(path, (future, future))
    assert live.refresh()
    assert set(live.current.models) == {"tiny"}
    assert live.current.max_window_tokens == 2048
    assert seen == [2048]
    assert live.generation == 1
