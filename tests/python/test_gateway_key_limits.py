"""Gateway limits carried by API keys: models allowed, requests per minute and a budget, set
with ``relay keys create --rpm --budget-usd --models`` or the admin API."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai
import pytest

from fake_upstream import FakeUpstream, serve_in_thread
from gateway_support import UPSTREAM_KEY, jwt_for, running_gateway
from relay_context.security.auth import UserRole
from service_support import create_key, relay_cli, run_server, service_env


def test_admin_api_sets_models_rpm_and_budget(tmp_path: Path) -> None:
    with running_gateway(tmp_path) as rig:
        admin = {"authorization": f"Bearer {jwt_for('root', UserRole.ADMIN)}"}
        key_id = httpx.get(rig.url + "/api/v1/keys", headers=admin).json()[0]["id"]
        limits = {"rpm": 2, "models": ["gpt-4o*", "claude-*"], "budget_usd": 5}
        put = httpx.put(
            rig.url + f"/api/v1/gateway/keys/{key_id}/limits", json=limits, headers=admin
        )
        assert put.status_code == 200, put.text
        got = httpx.get(rig.url + f"/api/v1/gateway/keys/{key_id}/limits", headers=admin).json()
        assert got["models"] == ["gpt-4o*", "claude-*"]
        assert got["budget_period"] == "month"
        client = openai.OpenAI(base_url=rig.v1, api_key=rig.key, max_retries=0)
        with pytest.raises(openai.PermissionDeniedError) as denied:
            client.chat.completions.create(model="o3", messages=[{"role": "user", "content": "x"}])
        assert denied.value.code == "model_not_allowed"
        for model in ("gpt-4o-mini", "claude-haiku-4-5"):
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
        with pytest.raises(openai.RateLimitError):
            client.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "x"}]
            )
        missing = httpx.put(
            rig.url + "/api/v1/gateway/keys/key_nope/limits", json={}, headers=admin
        )
        assert missing.status_code == 404
        user = {"authorization": f"Bearer {jwt_for('bob')}"}
        assert (
            httpx.get(rig.url + f"/api/v1/gateway/keys/{key_id}/limits", headers=user).status_code
            == 403
        )


def test_relay_keys_create_with_gateway_limits(tmp_path: Path) -> None:
    with serve_in_thread(FakeUpstream(required_key=UPSTREAM_KEY)) as upstream:
        env = service_env(
            tmp_path / "data", OPENAI_BASE_URL=upstream + "/v1", OPENAI_API_KEY=UPSTREAM_KEY
        )
        created = create_key(env, "user", owner="team-a")
        assert "gateway_limits" not in created
        limited = relay_cli(
            env,
            "keys",
            "create",
            "--role",
            "user",
            "--owner",
            "team-b",
            "--json",
            "--budget-usd",
            "0.0001",
            "--budget-period",
            "day",
            "--models",
            "gpt-4o",
        )
        key = json.loads(limited.stdout)
        assert key["gateway_limits"]["budget_usd"] == 0.0001
        with run_server(env, tmp_path / "logs") as server:
            client = openai.OpenAI(base_url=server.url + "/v1", api_key=key["key"], max_retries=0)
            with pytest.raises(openai.PermissionDeniedError):
                client.chat.completions.create(
                    model="gpt-4.1", messages=[{"role": "user", "content": "x"}]
                )
            with pytest.raises(openai.RateLimitError) as over:  # noqa: PT012
                for _ in range(5):
                    client.chat.completions.create(
                        model="gpt-4o", max_tokens=5, messages=[{"role": "user", "content": "x"}]
                    )
            assert "Budget exceeded" in str(over.value)
