"""The exact response cache through the HTTP API, with the official openai and anthropic SDKs
against the fake upstream: hits and misses, scopes that never mix between keys (LiteLLM
#29955), streams replayed event by event with every field, answers across stream modes,
Cache-Control, interrupted streams never stored, cost 0 and saved USD in the ledger and the
metrics, per-model settings."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from gateway_support import GatewayRig, jwt_for, running_gateway
from relay_context.security.auth import UserRole

CACHE = {"enabled": True, "models": {"gpt-4o-mini": {"enabled": False}}}


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayRig]:
    with running_gateway(tmp_path_factory.mktemp("gw-cache"), cache=CACHE) as r:
        yield r


_counter = iter(range(1_000_000))


def unique(text: str) -> str:
    """A prompt no other test sends (entries outlive a test in the module's gateway)."""
    return f"{text} #{next(_counter)}-{time.monotonic_ns()}"


def oai(rig: GatewayRig, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=rig.v1, api_key=key or rig.key, max_retries=0)


def claude(rig: GatewayRig) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=rig.url, api_key=rig.key, max_retries=0)


def new_key(rig: GatewayRig, owner: str) -> str:
    admin = {"authorization": f"Bearer {jwt_for('root', UserRole.ADMIN)}"}
    created = httpx.post(
        rig.url + "/api/v1/keys", json={"role": "user", "owner": owner}, headers=admin
    )
    created.raise_for_status()
    return str(created.json()["key"])


def wait_for_entry(rig: GatewayRig, path: str, body: dict[str, Any], key: str) -> None:
    """Entries are written just after the answer: wait until one is readable."""
    for _ in range(100):
        probe = httpx.post(
            rig.url + path,
            json=body,
            headers={"authorization": f"Bearer {key}", "cache-control": "max-age=3600"},
            timeout=30,
        )
        if probe.headers["x-relay-cache"] == "hit":
            return
        time.sleep(0.02)
    pytest.fail("the entry was never stored")


def sse_events(response: httpx.Response) -> list[bytes]:
    data = response.read()
    return [e + b"\n\n" for e in data.split(b"\n\n") if e]


def test_miss_then_hit_costs_nothing_and_names_its_key(rig: GatewayRig) -> None:
    messages = [{"role": "user", "content": unique("hello")}]
    calls = len(rig.upstream.requests)
    first = oai(rig).chat.completions.with_raw_response.create(model="gpt-4o", messages=messages)
    assert first.headers["x-relay-cache"] == "miss"
    key = first.headers["x-relay-cache-key"]
    assert len(key) == 64
    assert float(first.headers["x-relay-cost-usd"]) > 0
    time.sleep(0.05)
    second = oai(rig).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=messages, user="someone-else", metadata={"a": "b"}, store=False
    )
    assert second.headers["x-relay-cache"] == "hit"
    assert second.headers["x-relay-cache-key"] == key
    assert float(second.headers["x-relay-cost-usd"]) == 0
    assert float(second.headers["x-relay-saved-usd"]) == pytest.approx(
        float(first.headers["x-relay-cost-usd"]), abs=1e-8
    )
    assert len(rig.upstream.requests) == calls + 1
    assert second.parse().model_dump() == first.parse().model_dump()
    # Another temperature is another answer.
    third = oai(rig).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=messages, temperature=0.1
    )
    assert third.headers["x-relay-cache"] == "miss"
    assert third.headers["x-relay-cache-key"] != key
    assert len(rig.upstream.requests) == calls + 2


def test_one_keys_entry_is_never_served_to_another_key(rig: GatewayRig) -> None:
    """LiteLLM #29955: cache entries shared across teams. Here the scope is the server's."""
    bob = new_key(rig, "bob")
    messages = [{"role": "user", "content": unique("secret plans")}]
    calls = len(rig.upstream.requests)
    a = oai(rig).chat.completions.with_raw_response.create(model="gpt-4o", messages=messages)
    wait_for_entry(rig, "/v1/chat/completions", {"model": "gpt-4o", "messages": messages}, rig.key)
    b = oai(rig, bob).chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=messages,
        extra_headers={
            "x-relay-cache-scope": "global",
            "x-relay-cache-key": a.headers["x-relay-cache-key"],
        },
        extra_body={"scope": None},
    )
    assert b.headers["x-relay-cache"] == "miss"
    assert b.headers["x-relay-cache-key"] != a.headers["x-relay-cache-key"]
    assert len(rig.upstream.requests) >= calls + 2


def test_stream_replayed_event_by_event_with_every_field(rig: GatewayRig) -> None:
    """LiteLLM replays one aggregated chunk (#11145) and loses usage details (#42244)."""
    body = {
        "model": "gpt-4o",
        "stream": True,
        "stream_options": {"include_usage": True},
        "messages": [
            {"role": "user", "content": unique("fake:tools=2 fake:thinking fake:cached=64")}
        ],
        "tools": [
            {
                "type": "function",
                "function": {"name": "lookup", "parameters": {"type": "object"}},
            }
        ],
    }
    headers = {"authorization": f"Bearer {rig.key}"}
    with httpx.stream("POST", rig.v1 + "/chat/completions", json=body, headers=headers) as first:
        assert first.headers["x-relay-cache"] == "miss"
        original = sse_events(first)
    wait_for_entry(rig, "/v1/chat/completions", body, rig.key)
    with httpx.stream("POST", rig.v1 + "/chat/completions", json=body, headers=headers) as again:
        assert again.headers["x-relay-cache"] == "hit"
        assert again.headers["content-type"].startswith("text/event-stream")
        replayed = sse_events(again)
    assert replayed == original  # the same events, byte for byte, one for one
    assert len(original) > 5
    # Through the SDK: tool-call deltas, reasoning, usage with cached tokens, all there.
    chunks = list(oai(rig).chat.completions.create(**body))
    dumped = [c.model_dump() for c in chunks]
    assert dumped == [
        openai.types.chat.ChatCompletionChunk.model_validate_json(e[6:-2]).model_dump()
        for e in original
        if e != b"data: [DONE]\n\n"
    ]
    assert any(c.choices and c.choices[0].delta.tool_calls for c in chunks)
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens_details is not None
    assert chunks[-1].usage.prompt_tokens_details.cached_tokens == 64
    joined = b"".join(original)
    assert b"reasoning" in joined
    # A client that did not ask for usage gets the stream without its usage chunk.
    no_usage = list(
        oai(rig).chat.completions.create(**{k: v for k, v in body.items() if k != "stream_options"})
    )
    assert all(c.choices for c in no_usage)
    assert len(no_usage) == len(chunks) - 1


def test_anthropic_stream_replay_keeps_thinking_tools_and_cache_usage(rig: GatewayRig) -> None:
    params: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "messages": [
            {"role": "user", "content": unique("fake:thinking fake:tools=1 fake:cached=50")}
        ],
        "tools": [{"name": "lookup", "input_schema": {"type": "object"}}],
    }
    with claude(rig).messages.stream(**params) as s:
        original = [e.model_dump() for e in s]
        first_final = s.get_final_message()
    wait_for_entry(rig, "/v1/messages", {**params, "stream": True}, rig.key)
    calls = len(rig.upstream.requests)
    with claude(rig).messages.stream(**params) as s:
        replayed = [e.model_dump() for e in s]
        final = s.get_final_message()
    assert len(rig.upstream.requests) == calls
    assert replayed == original
    kinds = {b.type for b in final.content}
    assert {"thinking", "tool_use"} <= kinds
    assert final.usage.cache_read_input_tokens == 50
    assert final.model_dump() == first_final.model_dump()


def test_whole_request_answered_from_a_streamed_entry_and_the_reverse(rig: GatewayRig) -> None:
    text = unique("fake:tools=1")
    messages = [{"role": "user", "content": text}]
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    streamed = list(
        oai(rig).chat.completions.create(
            model="gpt-4o", messages=messages, tools=tools, stream=True
        )
    )
    wait_for_entry(
        rig,
        "/v1/chat/completions",
        {"model": "gpt-4o", "messages": messages, "tools": tools},
        rig.key,
    )
    calls = len(rig.upstream.requests)
    whole = oai(rig).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=messages, tools=tools
    )
    assert whole.headers["x-relay-cache"] == "hit"
    answer = whole.parse()
    call = answer.choices[0].message.tool_calls[0]
    args = "".join(
        tc.function.arguments or ""
        for c in streamed
        for tc in (c.choices[0].delta.tool_calls or [])
    )
    assert call.function.arguments == args
    assert call.id == next(
        tc.id for c in streamed for tc in (c.choices[0].delta.tool_calls or []) if tc.id
    )
    assert answer.choices[0].finish_reason == "tool_calls"
    # The reverse, in Anthropic's protocol: a whole answer, then the same request streamed.
    params: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": unique("fake:thinking")}],
    }
    message = claude(rig).messages.create(**params)
    wait_for_entry(rig, "/v1/messages", params, rig.key)
    calls = len(rig.upstream.requests)
    with claude(rig).messages.stream(**params) as s:
        events = [e.type for e in s]
        final = s.get_final_message()
    assert len(rig.upstream.requests) == calls
    assert events[0] == "message_start"
    assert "content_block_delta" in events
    assert [b.model_dump() for b in final.content] == [b.model_dump() for b in message.content]
    assert final.usage.output_tokens == message.usage.output_tokens
    assert final.stop_reason == message.stop_reason


def test_cache_control_no_cache_no_store_max_age(rig: GatewayRig) -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": unique("cc")}]}
    assert (
        rig.post("/v1/chat/completions", body, {"cache-control": "no-store"}).headers[
            "x-relay-cache"
        ]
        == "miss"
    )
    time.sleep(0.05)
    assert rig.post("/v1/chat/completions", body).headers["x-relay-cache"] == "miss"
    wait_for_entry(rig, "/v1/chat/completions", body, rig.key)
    calls = len(rig.upstream.requests)
    refreshed = rig.post("/v1/chat/completions", body, {"cache-control": "no-cache"})
    assert refreshed.headers["x-relay-cache"] == "miss"
    assert len(rig.upstream.requests) == calls + 1
    time.sleep(0.05)
    hit = rig.post("/v1/chat/completions", body)
    assert hit.headers["x-relay-cache"] == "hit"
    assert hit.json()["id"] == refreshed.json()["id"]  # the refreshed answer replaced the entry
    time.sleep(1.1)
    assert (
        rig.post("/v1/chat/completions", body, {"cache-control": "max-age=1"}).headers[
            "x-relay-cache"
        ]
        == "miss"
    )
    bad = rig.post("/v1/chat/completions", body, {"cache-control": "max-age=soon"})
    assert bad.status_code == 400
    assert "max-age" in bad.json()["error"]["message"]


def test_only_complete_answers_are_stored(rig: GatewayRig) -> None:
    cut = {
        "model": "gpt-4o",
        "stream": True,
        "messages": [{"role": "user", "content": unique("fake:cut_after=2 fake:words=30")}],
    }
    headers = {"authorization": f"Bearer {rig.key}"}
    for _ in range(2):
        with httpx.stream("POST", rig.v1 + "/chat/completions", json=cut, headers=headers) as r:
            assert r.headers["x-relay-cache"] == "miss"
            r.read()
        time.sleep(0.05)
    # The client that goes away mid-stream: its answer is not stored either.
    slow = {
        "model": "gpt-4o",
        "stream": True,
        "messages": [{"role": "user", "content": unique("fake:chunk_delay_ms=30 fake:words=40")}],
    }
    with httpx.stream("POST", rig.v1 + "/chat/completions", json=slow, headers=headers) as r:
        next(r.iter_raw())
    time.sleep(0.3)
    again = rig.post("/v1/chat/completions", {**slow, "stream": False})
    assert again.headers["x-relay-cache"] == "miss"
    # An upstream error is not stored.
    failing = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": unique("fake:status=400")}],
    }
    for _ in range(2):
        answer = rig.post("/v1/chat/completions", failing)
        assert answer.status_code == 400
        assert answer.headers["x-relay-cache"] == "miss"


def test_per_model_off_is_a_bypass(rig: GatewayRig) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": unique("m")}]}
    for _ in range(2):
        answer = rig.post("/v1/chat/completions", body)
        assert answer.headers["x-relay-cache"] == "bypass"


def test_ledger_and_metrics_count_hits_as_saved(rig: GatewayRig) -> None:
    owner = "carol"
    key = new_key(rig, owner)
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": unique("ledger")}]}
    first = httpx.post(
        rig.v1 + "/chat/completions", json=body, headers={"authorization": f"Bearer {key}"}
    )
    cost = float(first.headers["x-relay-cost-usd"])
    wait_for_entry(rig, "/v1/chat/completions", body, key)  # one hit
    admin = {"authorization": f"Bearer {jwt_for('root', UserRole.ADMIN)}"}
    report = httpx.get(
        rig.url + "/api/v1/gateway/usage", params={"group_by": "key"}, headers=admin
    ).json()
    row = next(r for r in report["data"] if r["key"] == owner)
    assert row["cache_hits"] == 1
    assert row["saved_usd"] == pytest.approx(cost, abs=1e-8)
    assert row["cost_usd"] == pytest.approx(cost, abs=1e-8)  # the hit cost nothing
    metrics = httpx.get(rig.url + "/metrics").text
    hits = [line for line in metrics.splitlines() if line.startswith("relay_cache_hits_total")]
    assert any('kind="exact"' in line and float(line.split()[-1]) >= 1 for line in hits)
    assert any(line.startswith("relay_cache_misses_total ") for line in metrics.splitlines())
    saved = next(m for m in metrics.splitlines() if m.startswith("relay_saved_usd_total "))
    assert float(saved.split()[-1]) >= cost


def test_gemini_entry_answers_both_modes(rig: GatewayRig) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": unique("gemini")}]}]}
    path = "/v1beta/models/gemini-2.0-flash:generateContent"
    first = httpx.post(rig.url + path, json=body, headers={"x-goog-api-key": rig.key})
    assert first.status_code == 200, first.text
    assert first.headers["x-relay-cache"] == "miss"
    time.sleep(0.1)
    stream = httpx.post(
        rig.url + "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
        json=body,
        headers={"x-goog-api-key": rig.key},
    )
    assert stream.headers["x-relay-cache"] == "hit"
    texts = [
        p["text"]
        for e in stream.text.replace("\r\n", "\n").split("\n\n")
        if e.startswith("data: ")
        for p in json.loads(e[6:])["candidates"][0]["content"]["parts"]
        if "text" in p
    ]
    whole = first.json()["candidates"][0]["content"]["parts"][0]["text"]
    assert "".join(texts) == whole


def test_team_scope_shares_between_one_owners_keys_only(tmp_path_factory: Any) -> None:
    with running_gateway(
        tmp_path_factory.mktemp("gw-team"), cache={"enabled": True, "scope": "team"}
    ) as team:
        alice_2 = new_key(team, "alice")  # the rig's own key is alice's too
        bob = new_key(team, "bob")
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": unique("team")}]}
        first = team.post("/v1/chat/completions", body)
        assert first.headers["x-relay-cache"] == "miss"
        wait_for_entry(team, "/v1/chat/completions", body, alice_2)
        other = httpx.post(
            team.v1 + "/chat/completions", json=body, headers={"authorization": f"Bearer {bob}"}
        )
        assert other.headers["x-relay-cache"] == "miss"
        assert other.headers["x-relay-cache-key"] != first.headers["x-relay-cache-key"]


def gemini_stream(rig: GatewayRig, body: dict[str, Any], *, sse: bool) -> httpx.Response:
    return httpx.post(
        rig.url + "/v1beta/models/gemini-2.0-flash:streamGenerateContent",
        params={"alt": "sse"} if sse else {},
        json=body,
        headers={"x-goog-api-key": rig.key, "cache-control": "max-age=3600"},
        timeout=30,
    )


def gemini_chunks(response: httpx.Response, *, sse: bool) -> list[dict[str, Any]]:
    """A Gemini stream's chunks, checking it is in the framing asked for."""
    assert response.status_code == 200, response.text
    if sse:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = response.text.replace("\r\n", "\n").split("\n\n")
        return [json.loads(e[6:]) for e in events if e.startswith("data: ")]
    assert response.headers["content-type"].startswith("application/json")
    assert b"data:" not in response.content
    chunks = json.loads(response.content)
    assert isinstance(chunks, list)
    return chunks


def test_gemini_stream_replayed_in_the_framing_the_client_asked_for(rig: GatewayRig) -> None:
    """A Gemini stream entry is the same chunks to a client that asked for SSE (``alt=sse``)
    and one that asked for the JSON array (no ``alt``), whichever framing stored it; a whole
    ``generateContent`` entry too."""
    for first_sse in (True, False):
        body = {"contents": [{"role": "user", "parts": [{"text": unique("frame fake:words=9")}]}]}
        live = gemini_stream(rig, body, sse=first_sse)
        assert live.headers["x-relay-cache"] == "miss"
        original = gemini_chunks(live, sse=first_sse)
        assert len(original) > 1
        for _ in range(100):  # the entry is written just after the answer
            again = gemini_stream(rig, body, sse=first_sse)
            if again.headers["x-relay-cache"] == "hit":
                break
            time.sleep(0.02)
        assert gemini_chunks(again, sse=first_sse) == original
        other = gemini_stream(rig, body, sse=not first_sse)
        assert other.headers["x-relay-cache"] == "hit"
        assert gemini_chunks(other, sse=not first_sse) == original
    whole_body_ = {"contents": [{"role": "user", "parts": [{"text": unique("whole frame")}]}]}
    whole = httpx.post(
        rig.url + "/v1beta/models/gemini-2.0-flash:generateContent",
        json=whole_body_,
        headers={"x-goog-api-key": rig.key},
    )
    assert whole.status_code == 200, whole.text
    time.sleep(0.1)
    array = gemini_stream(rig, whole_body_, sse=False)
    assert array.headers["x-relay-cache"] == "hit"
    text = "".join(
        p.get("text", "")
        for c in gemini_chunks(array, sse=False)
        for p in c["candidates"][0]["content"]["parts"]
    )
    assert text == whole.json()["candidates"][0]["content"]["parts"][0]["text"]
