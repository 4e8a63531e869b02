"""Provider prefix reuse through the HTTP API with the official SDKs: Anthropic ``cache_control``
breakpoints Relay adds (and leaves alone when the client set its own), OpenAI
``prompt_cache_key``, the fake upstream's cached-token figures billed at the discounted prices
in the ledger and counted in ``relay_prompt_cache_tokens_total``."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from gateway_support import GatewayRig, jwt_for, running_gateway
from relay_context.security.auth import UserRole

SYSTEM = "You are a careful coding assistant. " + " ".join(
    f"Rule {i}: keep functions short, name things for what they are." for i in range(200)
)


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayRig]:
    with running_gateway(tmp_path_factory.mktemp("gw")) as r:
        yield r


def marks(body: dict[str, Any]) -> list[str]:
    """Where an Anthropic request carries ``cache_control``: tools[i], system[i], messages[i]."""
    out = [f"tools[{i}]" for i, t in enumerate(body.get("tools") or []) if "cache_control" in t]
    system = body.get("system")
    if isinstance(system, list):
        out += [f"system[{i}]" for i, b in enumerate(system) if "cache_control" in b]
    for i, m in enumerate(body["messages"]):
        if isinstance(m["content"], list) and any("cache_control" in b for b in m["content"]):
            out.append(f"messages[{i}]")
    return out


def conversation(turns: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for t in range(turns):
        out.append({"role": "user", "content": f"question {t}: what does module {t} do?"})
        out.append({"role": "assistant", "content": f"module {t} parses the input of step {t}."})
    out.append({"role": "user", "content": f"and module {turns}?"})
    return out


def usage_rows(rig: GatewayRig, key: str) -> dict[str, Any]:
    data = httpx.get(
        rig.url + "/api/v1/gateway/usage", params={"group_by": "model"}, headers={"x-api-key": key}
    ).json()["data"]
    return {r["model"]: r for r in data}


def new_key(rig: GatewayRig) -> str:
    """A key of its own owner (its own ledger rows and cache scope)."""
    admin = {"authorization": f"Bearer {jwt_for('root', UserRole.ADMIN)}"}
    owner = f"owner-{uuid.uuid4().hex[:8]}"
    created = httpx.post(
        rig.url + "/api/v1/keys", json={"role": "user", "owner": owner}, headers=admin
    )
    created.raise_for_status()
    return str(created.json()["key"])


def metric(rig: GatewayRig, name: str, **labels: str) -> float:
    total = 0.0
    for line in httpx.get(rig.url + "/metrics").text.splitlines():
        if line.split("{")[0].split(" ")[0] == name and all(
            f'{k}="{v}"' in line for k, v in labels.items()
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_anthropic_breakpoints_on_system_and_previous_turn_then_cache_reads(
    rig: GatewayRig,
) -> None:
    key = new_key(rig)
    client = anthropic.Anthropic(base_url=rig.url, api_key=key, max_retries=0)
    model = "claude-sonnet-4-5"
    before = metric(rig, "relay_prompt_cache_tokens_total")
    messages = conversation(3)
    first = client.messages.create(model=model, max_tokens=50, system=SYSTEM, messages=messages)  # type: ignore[arg-type]
    sent = rig.upstream.requests[-1].json()
    # The system prompt and the end of the conversation before the last turn (and before the
    # turn before it): the stable prefix.
    assert marks(sent) == ["system[0]", "messages[3]", "messages[5]"]
    assert sent["system"][0]["text"] == SYSTEM
    assert first.usage.cache_creation_input_tokens
    assert first.usage.cache_creation_input_tokens > 0
    assert not first.usage.cache_read_input_tokens
    # The next turn reads what the first wrote.
    messages += [{"role": "assistant", "content": "module 3 writes the output."}]
    messages += [{"role": "user", "content": "and module 4?"}]
    second = client.messages.create(model=model, max_tokens=50, system=SYSTEM, messages=messages)  # type: ignore[arg-type]
    read = second.usage.cache_read_input_tokens or 0
    assert read >= first.usage.cache_creation_input_tokens
    row = usage_rows(rig, key)[model]
    assert row["cached_input_tokens"] == read
    writes = first.usage.cache_creation_input_tokens + (
        second.usage.cache_creation_input_tokens or 0
    )
    assert row["cache_write_tokens"] == writes
    # claude-sonnet-4: $3 / 1M input, $0.30 cached read, $3.75 cache write, $15 output.
    fresh = row["input_tokens"] - read - writes
    expected = (fresh * 3 + read * 0.3 + writes * 3.75 + row["output_tokens"] * 15) / 1e6
    assert row["cost_usd"] == pytest.approx(expected, rel=1e-6)
    assert metric(rig, "relay_prompt_cache_tokens_total") - before == read


def test_anthropic_stream_reports_cache_reads_to_the_ledger(rig: GatewayRig) -> None:
    key = new_key(rig)
    client = anthropic.Anthropic(base_url=rig.url, api_key=key, max_retries=0)
    model = "claude-sonnet-4-5"
    messages = conversation(2)
    tools = [
        {
            "name": "read_file",
            "description": "reads a file " + "of the repository " * 400,
            "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}},
        }
    ]
    for _ in range(2):
        with client.messages.stream(
            model=model,
            max_tokens=50,
            system=SYSTEM,
            tools=tools,  # type: ignore[arg-type]
            messages=messages,  # type: ignore[arg-type]
        ) as stream:
            final = stream.get_final_message()
    assert marks(rig.upstream.requests[-1].json()) == [
        "tools[0]",
        "system[0]",
        "messages[1]",
        "messages[3]",
    ]
    assert final.usage.cache_read_input_tokens
    assert final.usage.cache_read_input_tokens > 1000
    assert usage_rows(rig, key)[model]["cached_input_tokens"] == final.usage.cache_read_input_tokens


def test_client_breakpoints_are_left_as_they_came(rig: GatewayRig) -> None:
    body = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 20,
        "system": [{"type": "text", "text": SYSTEM, "cache_control": {"type": "ephemeral"}}],
        "messages": conversation(3),
    }
    raw = json.dumps(body).encode()
    response = httpx.post(
        rig.url + "/v1/messages",
        content=raw,
        headers={"x-api-key": rig.key, "content-type": "application/json"},
    )
    assert response.status_code == 200
    assert rig.upstream.requests[-1].body == raw  # forwarded byte for byte, nothing added


def test_short_prompts_get_no_breakpoints(rig: GatewayRig) -> None:
    body = {"model": "claude-sonnet-4-5", "max_tokens": 20, "messages": conversation(3)}
    raw = json.dumps(body).encode()
    response = httpx.post(
        rig.url + "/v1/messages",
        content=raw,
        headers={"x-api-key": rig.key, "content-type": "application/json"},
    )
    assert response.status_code == 200
    assert rig.upstream.requests[-1].body == raw


def test_openai_client_to_anthropic_upstream_gets_breakpoints(rig: GatewayRig) -> None:
    key = new_key(rig)
    client = openai.OpenAI(base_url=rig.v1, api_key=key, max_retries=0)
    messages: list[Any] = [{"role": "system", "content": SYSTEM}, *conversation(3)]
    first = client.chat.completions.create(model="claude-sonnet-4-5", messages=messages)
    sent = rig.upstream.requests[-1].json()
    assert rig.upstream.requests[-1].path == "/v1/messages"
    assert marks(sent) == ["system[0]", "messages[3]", "messages[5]"]
    messages += [{"role": "assistant", "content": "ok"}, {"role": "user", "content": "next?"}]
    second = client.chat.completions.create(model="claude-sonnet-4-5", messages=messages)
    assert second.usage is not None
    assert second.usage.prompt_tokens_details is not None
    cached = second.usage.prompt_tokens_details.cached_tokens or 0
    assert cached > 1000
    # (The first may read too: an earlier test sent the same prefix, and a provider's cache is
    # not per key.)
    assert first.usage is not None
    assert first.usage.prompt_tokens_details is not None
    earlier = first.usage.prompt_tokens_details.cached_tokens or 0
    row = usage_rows(rig, key)["claude-sonnet-4-5"]
    assert row["cached_input_tokens"] == cached + earlier


def test_openai_prompt_cache_key_per_conversation_and_key(rig: GatewayRig) -> None:
    key = new_key(rig)
    client = openai.OpenAI(base_url=rig.v1, api_key=key, max_retries=0)
    messages: list[Any] = [{"role": "system", "content": SYSTEM}, *conversation(2)]
    first = client.chat.completions.create(model="gpt-4o", messages=messages)
    sent_key = rig.upstream.requests[-1].json()["prompt_cache_key"]
    assert sent_key.startswith("relay-")
    assert first.usage is not None
    assert first.usage.prompt_tokens_details is not None
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    messages += [{"role": "assistant", "content": "ok"}, {"role": "user", "content": "next?"}]
    second = client.chat.completions.create(model="gpt-4o", messages=messages)
    assert rig.upstream.requests[-1].json()["prompt_cache_key"] == sent_key  # same conversation
    assert second.usage is not None
    assert second.usage.prompt_tokens_details is not None
    cached = second.usage.prompt_tokens_details.cached_tokens or 0
    assert cached >= 1024
    assert cached % 128 == 0
    row = usage_rows(rig, key)["gpt-4o"]
    assert row["cached_input_tokens"] == cached
    fresh = row["input_tokens"] - cached
    expected = (fresh * 2.5 + cached * 1.25 + row["output_tokens"] * 10) / 1e6
    assert row["cost_usd"] == pytest.approx(expected, rel=1e-6)
    # Another key gets another cache key for the same words; the client's own key is kept.
    other = openai.OpenAI(base_url=rig.v1, api_key=new_key(rig), max_retries=0)
    other.chat.completions.create(model="gpt-4o", messages=messages)
    assert rig.upstream.requests[-1].json()["prompt_cache_key"] != sent_key
    client.chat.completions.create(model="gpt-4o", messages=messages, prompt_cache_key="mine")
    assert rig.upstream.requests[-1].json()["prompt_cache_key"] == "mine"


def test_short_openai_prompts_are_forwarded_untouched(rig: GatewayRig) -> None:
    raw = json.dumps({"model": "gpt-4o", "messages": conversation(1)}).encode()
    response = httpx.post(
        rig.v1 + "/chat/completions",
        content=raw,
        headers={"authorization": f"Bearer {rig.key}", "content-type": "application/json"},
    )
    assert response.status_code == 200
    assert rig.upstream.requests[-1].body == raw


def test_settings_turn_both_off(tmp_path: Path) -> None:
    with running_gateway(
        tmp_path, anthropic_cache_breakpoints=False, openai_prompt_cache_key=False
    ) as off:
        messages: list[Any] = [{"role": "system", "content": SYSTEM}, *conversation(3)]
        oa = openai.OpenAI(base_url=off.v1, api_key=off.key, max_retries=0)
        oa.chat.completions.create(model="gpt-4o", messages=messages)
        assert "prompt_cache_key" not in off.upstream.requests[-1].json()
        oa.chat.completions.create(model="claude-sonnet-4-5", messages=messages)
        assert marks(off.upstream.requests[-1].json()) == []


def test_minimum_cacheable_length_is_per_model_and_a_setting(tmp_path: Path) -> None:
    # The system prompt is ~2.5k tokens: enough for Sonnet (1024), not for Haiku 4.5 (4096),
    # unless the operator lowers Haiku's minimum.
    body = {"max_tokens": 20, "system": SYSTEM, "messages": conversation(3)}
    with running_gateway(tmp_path) as gw:
        for model, expected in (("claude-sonnet-4-5", 3), ("claude-haiku-4-5", 0)):
            response = httpx.post(
                gw.url + "/v1/messages",
                json={**body, "model": model},
                headers={"x-api-key": gw.key},
            )
            assert response.status_code == 200
            assert len(marks(gw.upstream.requests[-1].json())) == expected, model
    with running_gateway(
        tmp_path / "low", anthropic_cache_min_tokens={"claude-haiku-4-5": 1024}
    ) as low:
        response = httpx.post(
            low.url + "/v1/messages",
            json={**body, "model": "claude-haiku-4-5"},
            headers={"x-api-key": low.key},
        )
        assert response.status_code == 200
        assert len(marks(low.upstream.requests[-1].json())) == 3
