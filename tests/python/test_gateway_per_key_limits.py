"""Tokens per minute and budgets set on an API key apply to that key alone: another key of the
same owner keeps its own window and its own spend. And the OpenAI ``x-ratelimit-*`` headers
come with successful answers, not only with 429s."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gateway_support import GatewayRig, jwt_for, running_gateway
from relay_context.core.tokenizer import TokenCounter
from relay_context.security.auth import UserRole

ADMIN = {"authorization": f"Bearer {jwt_for('root', UserRole.ADMIN)}"}
MESSAGES = [{"role": "user", "content": "one two three four five " * 6}]


def key_of(rig: GatewayRig, owner: str, limits: dict[str, Any] | None) -> str:
    """A new key of ``owner`` with ``limits`` set through the admin API."""
    created = httpx.post(
        rig.url + "/api/v1/keys", json={"role": "user", "owner": owner}, headers=ADMIN
    )
    created.raise_for_status()
    if limits is not None:
        put = httpx.put(
            rig.url + f"/api/v1/gateway/keys/{created.json()['id']}/limits",
            json=limits,
            headers=ADMIN,
        )
        assert put.status_code == 200, put.text
        assert put.json()["tpm"] == limits.get("tpm")
    return str(created.json()["key"])


def chat(key: str, rig: GatewayRig, messages: Any = MESSAGES, **extra: Any) -> Any:
    client = openai.OpenAI(base_url=rig.v1, api_key=key, max_retries=0)
    return client.chat.completions.with_raw_response.create(
        model="gpt-4o", messages=messages, **extra
    )


SHORT = [{"role": "user", "content": "x"}]


def test_tpm_applies_per_key_not_per_owner(tmp_path: Path) -> None:
    prompt = TokenCounter.for_model("gpt-4o").count_messages(MESSAGES)
    assert 30 < prompt < 60
    with running_gateway(tmp_path) as rig:
        limited = key_of(rig, "carol", {"tpm": 60})
        sibling = key_of(rig, "carol", {"tpm": 60})
        first = chat(limited, rig, max_tokens=5)
        assert first.headers["x-ratelimit-limit-tokens"] == "60"
        assert int(first.headers["x-ratelimit-remaining-tokens"]) == 60 - prompt
        with pytest.raises(openai.RateLimitError) as refused:
            chat(limited, rig, max_tokens=5)
        assert refused.value.response.headers["x-ratelimit-limit-tokens"] == "60"
        assert "tokens per minute" in str(refused.value)
        # The same owner's other key has its own window.
        assert chat(sibling, rig, max_tokens=5).http_response.status_code == 200


def test_budget_applies_per_key_not_per_owner(tmp_path: Path) -> None:
    with running_gateway(tmp_path) as rig:
        budget = {"budget_usd": 0.0001, "budget_period": "day"}
        spender = key_of(rig, "dave", budget)
        sibling = key_of(rig, "dave", budget)
        with pytest.raises(openai.RateLimitError) as over:  # noqa: PT012
            for _ in range(20):
                chat(spender, rig, SHORT, max_tokens=5)
        assert "Budget exceeded" in str(over.value)
        assert over.value.code == "budget_exceeded"
        # Before the fix the budget was spent by the owner, so this key was refused too.
        assert chat(sibling, rig, SHORT, max_tokens=5).http_response.status_code == 200
        usage = httpx.get(rig.url + "/api/v1/gateway/usage?group_by=key", headers=ADMIN).json()
        assert [row["key"] for row in usage["data"]] == ["dave"], usage


def test_request_limit_headers_on_success(tmp_path: Path) -> None:
    with running_gateway(tmp_path) as rig:
        key = key_of(rig, "erin", {"rpm": 5})
        answers = [chat(key, rig) for _ in range(3)]
        remaining = [int(a.headers["x-ratelimit-remaining-requests"]) for a in answers]
        assert remaining == [4, 3, 2]
        assert all(a.headers["x-ratelimit-limit-requests"] == "5" for a in answers)
        reset = answers[-1].headers["x-ratelimit-reset-requests"]
        assert reset.endswith("s")
        assert 0 < float(reset[:-1]) <= 60
        # A stream gets them in its head too.
        client = openai.OpenAI(base_url=rig.v1, api_key=key, max_retries=0)
        with client.chat.completions.with_streaming_response.create(
            model="gpt-4o", messages=MESSAGES, stream=True
        ) as streamed:
            assert streamed.headers["x-ratelimit-remaining-requests"] == "1"
            assert list(streamed.iter_lines())


def test_relay_keys_create_tpm_flag(tmp_path: Path) -> None:
    from service_support import relay_cli, service_env

    env = service_env(tmp_path / "data")
    made = relay_cli(env, "keys", "create", "--role", "user", "--json", "--tpm", "1000")
    assert '"tpm": 1000' in made.stdout
