"""End to end: a real ``relay serve`` process configured by the environment alone
(``OPENAI_BASE_URL``/``OPENAI_API_KEY``, ``ANTHROPIC_BASE_URL``/``ANTHROPIC_API_KEY``), driven by
the official SDKs with a key from ``relay keys create``; then the ``passthrough`` and ``open``
auth modes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from fake_upstream import FakeUpstream, serve_in_thread
from gateway_support import UPSTREAM_KEY, jwt_for
from service_support import create_key, relay_cli, run_server, service_env


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[FakeUpstream, str]]:
    fake = FakeUpstream(required_key=UPSTREAM_KEY)
    with serve_in_thread(fake) as url:
        yield fake, url


def provider_env(url: str, **more: str) -> dict[str, str]:
    return {
        "OPENAI_BASE_URL": url + "/v1",
        "OPENAI_API_KEY": UPSTREAM_KEY,
        "ANTHROPIC_BASE_URL": url,
        "ANTHROPIC_API_KEY": UPSTREAM_KEY,
        **more,
    }


def test_relay_serve_gateway_with_both_sdks(
    tmp_path: Path, upstream: tuple[FakeUpstream, str]
) -> None:
    fake, url = upstream
    env = service_env(tmp_path / "data", **provider_env(url))
    key = create_key(env, "user", owner="dev")["key"]
    with run_server(env, tmp_path / "logs") as server:
        oai = openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)
        done = oai.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}]
        )
        assert done.choices[0].message.content
        streamed = "".join(
            c.choices[0].delta.content or ""
            for c in oai.chat.completions.create(
                model="claude-haiku-4-5",
                messages=[{"role": "user", "content": "hello"}],
                stream=True,
            )
            if c.choices
        )
        assert streamed.startswith("Hello from")
        ant = anthropic.Anthropic(base_url=server.url, api_key=key, max_retries=0)
        with ant.messages.stream(
            model="gpt-4o",
            max_tokens=50,
            messages=[{"role": "user", "content": "fake:tools=2"}],
            tools=[{"name": "t", "input_schema": {"type": "object"}}],
        ) as stream:
            final = stream.get_final_message()
        assert [b.type for b in final.content] == ["text", "tool_use", "tool_use"]
        assert final.stop_reason == "tool_use"
        # A Relay JWT is a credential too; the client's credential never goes upstream.
        token = jwt_for("carol")
        with_jwt = httpx.post(
            server.url + "/v1/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]},
            headers={"authorization": f"Bearer {token}"},
        )
        assert with_jwt.status_code == 200
        assert all(key not in str(r.headers) and token not in str(r.headers) for r in fake.requests)
        assert httpx.post(server.url + "/v1/messages", json={}).status_code == 401
        metrics = server.client.get("/metrics").text
        assert "relay_gateway_requests_total" in metrics
        assert "relay_gateway_cost_usd_total" in metrics


def test_passthrough_forwards_the_clients_own_key(
    tmp_path: Path, upstream: tuple[FakeUpstream, str]
) -> None:
    fake, url = upstream
    env = service_env(
        tmp_path / "data", **provider_env(url, GATEWAY_AUTH="passthrough", OPENAI_API_KEY="")
    )
    with run_server(env, tmp_path / "logs") as server:
        ok = openai.OpenAI(base_url=server.url + "/v1", api_key=UPSTREAM_KEY, max_retries=0)
        assert ok.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "x"}]
        ).choices
        assert fake.requests[-1].headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
        wrong = openai.OpenAI(base_url=server.url + "/v1", api_key="sk-wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            wrong.chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "x"}]
            )


def test_open_mode_needs_no_credential_and_is_refused_off_loopback(
    tmp_path: Path, upstream: tuple[FakeUpstream, str]
) -> None:
    _, url = upstream
    env = service_env(tmp_path / "data", **provider_env(url, GATEWAY_AUTH="open"))
    with run_server(env, tmp_path / "logs") as server:
        response = httpx.post(
            server.url + "/v1/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]},
        )
        assert response.status_code == 200
    refused = relay_cli(env, "serve", "--host", "0.0.0.0", "--port", "1", check=False)
    assert refused.returncode != 0
    assert "GATEWAY_AUTH=open" in refused.stderr
