"""The gateway's OpenAI surface through the official ``openai`` SDK, sync and async, streamed
and not, to an OpenAI upstream (forwarded) and to an Anthropic one (translated)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import openai
import pytest

from gateway_support import UPSTREAM_KEY, GatewayRig, running_gateway


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayRig]:
    with running_gateway(tmp_path_factory.mktemp("gw")) as r:
        yield r


def client(rig: GatewayRig) -> openai.OpenAI:
    return openai.OpenAI(base_url=rig.v1, api_key=rig.key, max_retries=0)


def test_chat_forwarded_with_the_upstream_key_never_the_clients(rig: GatewayRig) -> None:
    raw = client(rig).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hello"}]
    )
    out = raw.parse()
    assert out.choices[0].message.content.startswith("Hello from the fake")
    assert out.usage is not None
    assert out.usage.prompt_tokens > 0
    seen = rig.upstream.requests[-1]
    assert seen.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert rig.key not in json.dumps(seen.headers)
    # Forwarded untouched: the very bytes the client sent.
    assert seen.json()["messages"] == [{"role": "user", "content": "hello"}]
    assert int(raw.headers["x-relay-prompt-tokens"]) == 8  # count_messages of that request
    assert float(raw.headers["x-relay-overhead-ms"]) >= 0
    assert raw.headers["x-relay-model"] == "gpt-4o"
    assert float(raw.headers["x-relay-cost-usd"]) > 0


def test_stream_usage_asked_upstream_and_stripped_unless_requested(rig: GatewayRig) -> None:
    chunks = list(
        client(rig).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert rig.upstream.requests[-1].json()["stream_options"] == {"include_usage": True}
    assert all(c.choices for c in chunks)  # the usage chunk the client did not ask for is gone
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text.startswith("Hello from")
    with_usage = list(
        client(rig).chat.completions.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert with_usage[-1].usage is not None
    assert with_usage[-1].usage.completion_tokens > 0


def test_parallel_tool_calls_keep_their_ids_forwarded_and_translated(rig: GatewayRig) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    for model in ("gpt-4o", "claude-sonnet-4-5"):
        stream = client(rig).chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": "fake:tools=3 weather?"}],
            tools=tools,  # type: ignore[arg-type]
            stream=True,
        )
        calls: dict[int, dict[str, str]] = {}
        finish = None
        for chunk in stream:
            if not chunk.choices:
                continue
            for tc in chunk.choices[0].delta.tool_calls or []:
                entry = calls.setdefault(tc.index, {"id": "", "args": ""})
                if tc.id:
                    entry["id"] = tc.id
                if tc.function and tc.function.arguments:
                    entry["args"] += tc.function.arguments
            finish = chunk.choices[0].finish_reason or finish
        assert len(calls) == 3, model
        assert len({c["id"] for c in calls.values()}) == 3, model
        assert all(json.loads(c["args"])["unit"] == "celsius" for c in calls.values()), model
        assert finish == "tool_calls", model


def test_openai_request_to_anthropic_model_is_translated(rig: GatewayRig) -> None:
    out = client(rig).chat.completions.create(
        model="claude-sonnet-4-5",
        messages=[
            {"role": "system", "content": "be brief"},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {
                        "type": "image_url",
                        "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="},
                    },
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "f", "arguments": '{"a":1}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "42"},
        ],
        max_tokens=50,
    )
    sent = rig.upstream.requests[-1]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == UPSTREAM_KEY
    body = sent.json()
    assert body["system"] == [{"type": "text", "text": "be brief"}]
    assert body["messages"][0]["content"][1] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
    }
    assert body["messages"][1]["content"] == [
        {"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}}
    ]
    assert body["messages"][2]["content"][0]["type"] == "tool_result"
    assert body["max_tokens"] == 50
    assert out.choices[0].finish_reason == "stop"
    assert out.usage is not None
    assert out.usage.completion_tokens > 0


async def test_async_client_streams_from_anthropic_upstream(rig: GatewayRig) -> None:
    async with openai.AsyncOpenAI(base_url=rig.v1, api_key=rig.key, max_retries=0) as aclient:
        stream = await aclient.chat.completions.create(
            model="claude-haiku-4-5",
            messages=[{"role": "user", "content": "fake:thinking hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [c async for c in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("Hello from")
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens > 0
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


def test_errors_are_openai_shaped(rig: GatewayRig) -> None:
    c = client(rig)
    with pytest.raises(openai.NotFoundError) as missing:
        c.chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "x"}]
        )
    assert missing.value.code == "model_not_found"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(
            base_url=rig.v1, api_key="relay_" + "x" * 43, max_retries=0
        ).chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    bad = rig.post("/v1/chat/completions", None)
    assert bad.status_code == 400
    invalid = httpx.post(
        rig.v1 + "/chat/completions",
        content=b"{not json",
        headers={"authorization": f"Bearer {rig.key}"},
    )
    assert invalid.status_code == 400
    assert invalid.json()["error"]["type"] == "invalid_request_error"
    wrong = rig.post("/v1/chat/completions", {"model": "gpt-4o", "messages": "hi"})
    assert wrong.status_code == 400
    assert wrong.json()["error"]["param"] == "messages"
    nomodel = rig.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]})
    assert nomodel.status_code == 400
    anon = httpx.post(rig.v1 + "/chat/completions", json={"model": "gpt-4o"})
    assert anon.status_code == 401
    assert "error" in anon.json()


def test_upstream_error_reaches_client_as_its_own_status(rig: GatewayRig) -> None:
    rig.upstream.push({"status": 400, "error_message": "bad thing"})
    with pytest.raises(openai.BadRequestError) as caught:
        client(rig).chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "x"}]
        )
    assert "bad thing" in str(caught.value)


def test_models_and_embeddings(rig: GatewayRig) -> None:
    c = client(rig)
    assert c.models.list().object == "list"
    emb = c.embeddings.create(model="text-embedding-3-small", input=["a", "b", "c"])
    assert len(emb.data) == 3
    assert len(emb.data[0].embedding) == 8


def test_responses_api(rig: GatewayRig) -> None:
    out = client(rig).responses.create(model="gpt-4o", input="hello")
    assert out.output_text.startswith("Hello from")
    events = list(client(rig).responses.create(model="gpt-4o", input="hello", stream=True))
    assert events[-1].type == "response.completed"


def test_oversized_body_is_413_in_the_providers_shape(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with running_gateway(tmp_path_factory.mktemp("cap"), max_body_bytes=2000) as rig:
        big = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * 5000}]}
        with pytest.raises(openai.APIStatusError) as caught:
            openai.OpenAI(base_url=rig.v1, api_key=rig.key, max_retries=0).chat.completions.create(
                **big
            )  # type: ignore[call-overload]
        assert caught.value.status_code == 413
        assert caught.value.body["type"] == "invalid_request_error"  # type: ignore[index]
        anthropic_shaped = httpx.post(
            rig.url + "/v1/messages", json={**big, "max_tokens": 5}, headers={"x-api-key": rig.key}
        )
        assert anthropic_shaped.status_code == 413
        assert anthropic_shaped.json()["error"]["type"] == "request_too_large"
        # Under the service's own cap (4 MiB) but over the gateway's: the same answer.
        assert rig.post("/v1/chat/completions", big).status_code == 413
