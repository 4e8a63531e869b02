"""Gemini's API (what Gemini CLI sends with GEMINI_BASE_URL): ``generateContent`` and
``streamGenerateContent?alt=sse`` forwarded to a Gemini upstream and translated to and from the
OpenAI and Anthropic ones, function calls included; and Gemini as the upstream of the OpenAI and
Anthropic SDKs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from gateway_support import UPSTREAM_KEY, GatewayRig, running_gateway

TOOLS = [
    {
        "functionDeclarations": [
            {
                "name": "get_weather",
                "description": "weather",
                "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}},
            }
        ]
    }
]


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayRig]:
    with running_gateway(tmp_path_factory.mktemp("gw")) as r:
        yield r


def generate(rig: GatewayRig, model: str, body: dict[str, Any], **params: str) -> httpx.Response:
    return httpx.post(
        f"{rig.url}/v1beta/models/{model}:generateContent",
        json=body,
        headers={"x-goog-api-key": rig.key},
        params=params,
        timeout=30,
    )


def stream(rig: GatewayRig, model: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    chunks = []
    with httpx.stream(
        "POST",
        f"{rig.url}/v1beta/models/{model}:streamGenerateContent",
        params={"alt": "sse", "key": rig.key},
        json=body,
        timeout=30,
    ) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                chunks.append(json.loads(line[6:]))
    return chunks


def user(text: str) -> dict[str, Any]:
    return {"contents": [{"role": "user", "parts": [{"text": text}]}]}


def test_gemini_forwarded_with_the_upstream_key(rig: GatewayRig) -> None:
    response = generate(rig, "gemini-2.5-flash", user("hello"))
    assert response.status_code == 200
    body = response.json()
    assert body["candidates"][0]["content"]["parts"][0]["text"].startswith("Hello from")
    assert body["usageMetadata"]["promptTokenCount"] > 0
    seen = rig.upstream.requests[-1]
    assert seen.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert seen.headers["x-goog-api-key"] == UPSTREAM_KEY
    assert seen.body == json.dumps(user("hello"), separators=(",", ":")).encode()  # as sent
    chunks = stream(rig, "gemini-2.5-flash", user("fake:tools=2"))
    assert rig.upstream.requests[-1].path.endswith(":streamGenerateContent")
    calls = [
        p for c in chunks for p in c["candidates"][0]["content"]["parts"] if "functionCall" in p
    ]
    assert len(calls) == 2
    assert chunks[-1]["usageMetadata"]["candidatesTokenCount"] > 0


def test_gemini_request_to_openai_upstream_with_function_calls(rig: GatewayRig) -> None:
    body = {
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "contents": [
            {"role": "user", "parts": [{"text": "weather in Oslo?"}]},
            {
                "role": "model",
                "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}],
            },
            {
                "role": "user",
                "parts": [{"functionResponse": {"name": "get_weather", "response": {"temp": 3}}}],
            },
            {"role": "user", "parts": [{"text": "fake:tools=1 and Rome?"}]},
        ],
        "tools": TOOLS,
        "generationConfig": {"maxOutputTokens": 64, "temperature": 0.2},
    }
    response = generate(rig, "gpt-4o", body)
    assert response.status_code == 200
    sent = rig.upstream.requests[-1].json()
    assert rig.upstream.requests[-1].path == "/v1/chat/completions"
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "assistant", "tool", "user"]
    call_id = sent["messages"][2]["tool_calls"][0]["id"]
    assert sent["messages"][3]["tool_call_id"] == call_id
    assert json.loads(sent["messages"][3]["content"]) == {"temp": 3}
    assert sent["tools"][0]["function"]["parameters"]["type"] == "object"
    assert sent["max_tokens"] == 64
    parts = response.json()["candidates"][0]["content"]["parts"]
    assert any("functionCall" in p and p["functionCall"]["name"] == "get_weather" for p in parts)
    chunks = stream(rig, "claude-sonnet-4-5", {**body, "contents": body["contents"][:1]})
    text = "".join(
        p.get("text", "") for c in chunks for p in c["candidates"][0]["content"]["parts"]
    )
    assert text.startswith("Hello from")
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"


def test_openai_and_anthropic_sdks_to_a_gemini_upstream(rig: GatewayRig) -> None:
    oai = openai.OpenAI(base_url=rig.v1, api_key=rig.key, max_retries=0)
    tools = [
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    ]
    calls: dict[int, str] = {}
    finish = None
    for chunk in oai.chat.completions.create(
        model="gemini-2.5-pro",
        messages=[{"role": "user", "content": "fake:tools=2"}],
        tools=tools,  # type: ignore[arg-type]
        stream=True,
    ):
        for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            if tc.id:
                calls[tc.index] = tc.id
        finish = (chunk.choices[0].finish_reason if chunk.choices else None) or finish
    assert len(set(calls.values())) == 2
    assert finish == "tool_calls"
    sent = rig.upstream.requests[-1]
    assert sent.path == "/v1beta/models/gemini-2.5-pro:streamGenerateContent"  # ?alt=sse
    ant = anthropic.Anthropic(base_url=rig.url, api_key=rig.key, max_retries=0)
    out = ant.messages.create(
        model="gemini-2.5-flash",
        max_tokens=50,
        messages=[{"role": "user", "content": "fake:thinking hi"}],
    )
    assert [b.type for b in out.content] == ["thinking", "text"]
    assert out.usage.output_tokens > 0


def test_errors_in_gemini_shape(rig: GatewayRig) -> None:
    missing = httpx.post(
        f"{rig.url}/v1beta/models/no-such:generateContent",
        json=user("x"),
        headers={"x-goog-api-key": rig.key},
    )
    assert missing.status_code == 404
    assert missing.json()["error"]["status"] == "NOT_FOUND"
    anon = httpx.post(f"{rig.url}/v1beta/models/gemini-2.5-flash:generateContent", json=user("x"))
    assert anon.status_code == 401
    assert anon.json()["error"]["status"] == "UNAUTHENTICATED"
    bad = httpx.post(
        f"{rig.url}/v1beta/models/gemini-2.5-flash:generateContent",
        content=b"{",
        headers={"x-goog-api-key": rig.key},
    )
    assert bad.status_code == 400
    assert bad.json()["error"]["status"] == "INVALID_ARGUMENT"
    rig.upstream.push({"status": 429}, {"status": 429}, {"status": 429})
    limited = generate(rig, "gemini-2.5-flash", user("x"))
    assert limited.status_code == 429
    assert limited.json()["error"]["status"] == "RESOURCE_EXHAUSTED"


def test_stream_without_alt_sse_is_one_json_array(rig: GatewayRig) -> None:
    """What Google answers to ``streamGenerateContent`` without ``alt=sse`` (and what clients
    that parse the array, like google-genai's REST transport, expect): ``[{...},{...}]``,
    streamed element by element — for a Gemini upstream and a translated one."""
    for model in ("gemini-2.5-flash", "gpt-4o"):
        pieces: list[bytes] = []
        with httpx.stream(
            "POST",
            f"{rig.url}/v1beta/models/{model}:streamGenerateContent",
            params={"key": rig.key},
            json=user("fake:words=12"),
            timeout=30,
        ) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("application/json")
            pieces = list(response.iter_bytes())
        whole = b"".join(pieces)
        assert whole.startswith(b"[")
        assert whole.rstrip().endswith(b"]")
        assert b"data:" not in whole
        chunks = json.loads(whole)
        assert isinstance(chunks, list)
        assert len(chunks) > 1
        text = "".join(
            p.get("text", "") for c in chunks for p in c["candidates"][0]["content"]["parts"]
        )
        assert text.startswith("Hello from")
        assert chunks[-1]["usageMetadata"]["candidatesTokenCount"] > 0
