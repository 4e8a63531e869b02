"""The context routes end to end: ``relay serve`` on embedded defaults (SQLite, in-process cache
and limits) in its own process, driven with httpx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr

from context_service_support import CONTEXT, bearer, metric_samples, post_message
from relay_context.config.settings import Environment, Settings
from relay_context.core.tokenizer import TokenCounter
from relay_context.service.app import create_app
from service_support import (
    TEST_SECRET,
    Server,
    assert_error,
    create_key,
    relay_cli,
    run_server,
    serve_in_thread,
    service_env,
)

CITIES = ("Paris", "Tokyo", "Lima", "Oslo", "Cairo", "Quito", "Perth", "Dakar", "Hanoi", "Seoul")
ALICE = bearer("alice", "user")
ADMIN = bearer("root", "admin")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("context")
    env = service_env(data / "state", rate_limit_requests="1000", max_sessions_per_user="3")
    with run_server(env, data) as running:
        yield running


@pytest.fixture(scope="module")
def o200k() -> TokenCounter:
    return TokenCounter("o200k_base")


def test_post_returns_seq_tokens_and_session_totals(server: Server, o200k: TokenCounter) -> None:
    c = server.client
    first = post_message(c, ADMIN, "totals", "You are a careful assistant.", role="system")
    assert first.status_code == 201, first.text
    body = first.json()
    assert body["id"] == body["seq"] == 1
    assert body["created_session"] is True
    assert body["encoding"] == "o200k_base"
    assert body["tokens"] == o200k.count("You are a careful assistant.")
    second = post_message(c, ADMIN, "totals", "Write a function that adds two numbers.").json()
    assert second["seq"] == 2
    assert second["created_session"] is False
    sent = [
        {"role": "system", "content": "You are a careful assistant."},
        {"role": "user", "content": "Write a function that adds two numbers."},
    ]
    assert second["session"] == {
        "message_count": 2,
        "total_tokens": o200k.count_messages(sent),
        "last_seq": 2,
    }


def test_tool_calls_name_and_metadata_round_trip(server: Server) -> None:
    c = server.client
    call = {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": "{}"}}
    post_message(c, ADMIN, "tools", "Add 2 and 3.")
    made = post_message(c, ADMIN, "tools", "", role="assistant", tool_calls=[call])
    assert made.status_code == 201, made.text
    post_message(c, ADMIN, "tools", "5", role="tool", tool_call_id="call_1")
    post_message(c, ADMIN, "tools", "Thanks!", name="alice", metadata={"pinned": True})
    window = c.get(f"{CONTEXT}/tools", headers=ADMIN).json()
    assert window["messages"][1]["tool_calls"] == [call]
    assert window["messages"][2] == {"role": "tool", "content": "5", "tool_call_id": "call_1"}
    assert window["messages"][3]["name"] == "alice"
    anthropic = c.get(f"{CONTEXT}/tools", headers=ADMIN, params={"format": "anthropic"}).json()
    assert anthropic["format"] == "anthropic"
    assert anthropic["messages"][1]["content"][0]["type"] == "tool_use"
    assert anthropic["messages"][2]["content"][0]["type"] == "tool_result"


def test_window_keeps_the_budget_and_reports_what_it_dropped(
    server: Server, o200k: TokenCounter
) -> None:
    c = server.client
    post_message(c, ADMIN, "budget", "You answer questions about the weather.", role="system")
    for i, city in enumerate(CITIES):
        post_message(c, ADMIN, "budget", f"Question {i}: will it rain in {city} this week?")
        answer = f"In {city}, {city.lower()[::-1]} says {i * 7} mm and {20 - i} degrees."
        post_message(c, ADMIN, "budget", answer, "assistant")
    full = c.get(f"{CONTEXT}/budget", headers=ADMIN).json()
    assert full["dropped_ids"] == []
    assert full["tokens_saved"] == 0
    assert full["tokens_used"] == full["total_tokens"] == o200k.count_messages(full["messages"])
    for policy in ("knapsack", "recent", "summarize"):
        window = c.get(
            f"{CONTEXT}/budget",
            headers=ADMIN,
            params={"budget": 120, "policy": policy, "model": "gpt-4o", "query": "rain"},
        ).json()
        assert window["policy"] == policy
        assert window["budget"] == 120
        assert o200k.count_messages(window["messages"]) == window["tokens_used"] <= 120
        assert window["dropped_ids"], policy
        assert window["tokens_saved"] == full["total_tokens"] - window["tokens_used"]
        assert window["messages"][0]["role"] == "system"
        assert set(window["kept_ids"]).isdisjoint(window["dropped_ids"])
    other_encoding = c.get(f"{CONTEXT}/budget", headers=ADMIN, params={"model": "gpt-4"}).json()
    assert other_encoding["encoding"] == "cl100k_base"
    assert (
        TokenCounter("cl100k_base").count_messages(other_encoding["messages"])
        == (other_encoding["tokens_used"])
    )


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ({"session_id": "bad id!", "role": "user", "content": "x"}, "invalid_session_id"),
        ({"session_id": "typed", "role": "robot", "content": "x"}, "unknown_role"),
        ({"session_id": "typed", "role": "user", "content": ""}, "empty_content"),
        ({"session_id": "typed", "role": "user", "content": "x", "extra": 1}, "validation_error"),
        ({"session_id": "typed", "role": "user"}, "empty_content"),
        ({"session_id": "typed", "role": "tool", "content": "x", "tool_calls": [{}]}, None),
    ],
)
def test_bad_messages_get_typed_errors(server: Server, body: dict[str, object], kind: str) -> None:
    response = server.client.post(f"{CONTEXT}/messages", headers=ADMIN, json=body)
    error = assert_error(response, 422, kind or response.json()["error"]["type"])
    assert error["message"]


def test_bad_window_requests_get_typed_errors(server: Server) -> None:
    c = server.client
    post_message(c, ADMIN, "typed-window", "You are terse.", role="system")
    post_message(c, ADMIN, "typed-window", "Hello there, how are you today?")
    url = f"{CONTEXT}/typed-window"
    assert_error(c.get(url, headers=ADMIN, params={"policy": "magic"}), 422, "unknown_policy")
    assert_error(c.get(url, headers=ADMIN, params={"model": "gpt-99"}), 422, "unknown_model")
    assert_error(c.get(url, headers=ADMIN, params={"budget": 0}), 422, "validation_error")
    # Well-formed, but what the session must keep does not fit: a conflict with its state.
    assert_error(c.get(url, headers=ADMIN, params={"budget": 5}), 409, "infeasible_budget")
    too_big = c.get(url, headers=ADMIN, params={"budget": 10**9})
    assert "max_window_tokens" in assert_error(too_big, 422, "invalid_argument")["message"]
    assert_error(c.get(url, headers=ADMIN, params={"format": "xml"}), 422, "validation_error")
    assert_error(c.get(f"{CONTEXT}/never-made", headers=ADMIN), 404, "session_not_found")
    assert_error(c.get(f"{CONTEXT}/never-made/stats", headers=ADMIN), 404, "session_not_found")
    assert_error(c.delete(f"{CONTEXT}/never-made", headers=ADMIN), 404, "session_not_found")


def test_stats_then_delete(server: Server) -> None:
    c = server.client
    post_message(c, ALICE, "alice-stats", "You are terse.", role="system")
    for i in range(3):
        post_message(c, ALICE, "alice-stats", f"A long and repetitive request number {i}. " * 5)
    stats = c.get(f"{CONTEXT}/alice-stats/stats", headers=ALICE).json()
    assert stats["owner"] == "alice"
    assert stats["message_count"] == 4
    assert stats["last_seq"] == 4
    assert stats["messages_by_role"] == {"system": 1, "user": 3}
    window = c.get(f"{CONTEXT}/alice-stats", headers=ALICE).json()
    assert stats["total_tokens"] == window["total_tokens"]
    assert stats["content_bytes"] > 0
    assert stats["compression_ratio"] > 1
    deleted = c.delete(f"{CONTEXT}/alice-stats", headers=ALICE)
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_error(c.get(f"{CONTEXT}/alice-stats", headers=ALICE), 404, "session_not_found")
    again = post_message(c, ALICE, "alice-stats", "Starting over.").json()
    assert again["seq"] == 1
    assert again["created_session"] is True


def test_a_user_owns_a_limited_number_of_sessions(server: Server) -> None:
    c = server.client
    carol = bearer("carol", "user")
    for i in range(3):
        assert post_message(c, carol, f"carol-{i}", "hello").status_code == 201
    refused = post_message(c, carol, "carol-3", "one too many")
    assert "limit 3" in assert_error(refused, 403, "session_limit_exceeded")["message"]
    # Writing to an existing session is fine; deleting one frees a slot.
    assert post_message(c, carol, "carol-0", "still here").status_code == 201
    assert c.delete(f"{CONTEXT}/carol-1", headers=carol).status_code == 204
    assert post_message(c, carol, "carol-3", "now it fits").status_code == 201
    # ADMIN is not limited.
    for i in range(5):
        assert post_message(c, ADMIN, f"admin-many-{i}", "hello").status_code == 201


def test_metrics_after_traffic(server: Server) -> None:
    c = server.client
    post_message(c, ADMIN, "metrics", "You are terse.", role="system")
    for i in range(30):
        post_message(c, ADMIN, "metrics", f"Tell me about topic {i} in some detail please.")
    built = c.get(f"{CONTEXT}/metrics", headers=ADMIN, params={"budget": 150}).json()
    cached = c.get(f"{CONTEXT}/metrics", headers=ADMIN, params={"budget": 150}).json()
    assert cached == built
    samples = metric_samples(c.get("/metrics").text)
    assert samples["relay_context_tokens_used"] == built["tokens_used"] > 0
    assert samples["relay_context_max_tokens"] == 128000
    assert samples["relay_tokens_counted_total"] > 0
    assert samples["relay_sessions_active"] >= 1
    assert samples["relay_sessions_created_total"] >= 1
    assert samples["relay_context_cache_hits_total"] >= 1
    assert 0 < samples["relay_cache_hit_rate"] < 1
    assert samples["relay_compression_ratio"] == pytest.approx(
        built["total_tokens"] / built["tokens_used"]
    )
    assert samples["relay_compression_saved_tokens_total"] >= built["tokens_saved"] > 0
    assert 0 <= samples["relay_context_drift_score"] <= 1
    route = 'method="POST",route="/api/v1/context/messages",status="201"'
    assert samples[f"relay_http_requests_total{{{route}}}"] >= 31


def test_relay_stats_cli(server: Server) -> None:
    key = create_key(server.env, "user", owner="cli-user")["key"]
    headers = {"X-API-Key": key}
    post_message(server.client, headers, "cli-session", "You are terse.", role="system")
    post_message(server.client, headers, "cli-session", "What is the capital of France?")
    api = server.client.get(f"{CONTEXT}/cli-session/stats", headers=headers).json()
    env = {**server.env, "RELAY_URL": server.url}
    as_json = relay_cli(env, "stats", "cli-session", "--api-key", key, "--json")
    shown = json.loads(as_json.stdout)
    assert {k: v for k, v in shown.items() if k not in ("cache", "updated_at")} == {
        k: v for k, v in api.items() if k not in ("cache", "updated_at")
    }
    table = relay_cli({**env, "RELAY_API_KEY": key}, "stats", "cli-session").stdout
    assert "messages" in table
    assert " 2\n" in table
    assert "cli-user" in table
    token = bearer("cli-user", "viewer")["Authorization"].split()[1]
    assert "cli-session" in relay_cli(env, "stats", "cli-session", "--token", token).stdout
    missing = relay_cli(env, "stats", "nope", "--api-key", key, check=False)
    assert missing.returncode == 1
    assert "404" in missing.stderr
    no_credential = relay_cli(env, "stats", "cli-session", check=False)
    assert no_credential.returncode == 2
    assert "credential" in no_credential.stderr
    assert "SESSION_ID" in relay_cli(env, "stats", "--help").stdout


def test_spans_of_the_context_routes(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    settings = Settings(
        environment=Environment.TESTING,
        secret_key=SecretStr(TEST_SECRET),
        data_dir=tmp_path,
        log_level="WARNING",
    )
    app = create_app(settings, span_exporter=exporter)
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        assert post_message(c, ADMIN, "spans", "Hello there!").status_code == 201
        assert c.get(f"{CONTEXT}/spans", headers=ADMIN).status_code == 200
        assert c.get(f"{CONTEXT}/spans", headers=ADMIN).status_code == 200
        assert c.get(f"{CONTEXT}/spans/stats", headers=ADMIN).status_code == 200
    spans = exporter.get_finished_spans()
    by_name: dict[str, list[object]] = {}
    for span in spans:
        by_name.setdefault(span.name, []).append(span)
    request_spans = {s.context.span_id: s.name for s in spans if s.name.startswith("HTTP ")}
    for name in ("db.get_session", "tokens.count", "context.select", "db.stats"):
        assert name in by_name, sorted(by_name)
        for span in by_name[name]:
            assert span.parent is not None  # type: ignore[attr-defined]
            assert span.parent.span_id in request_spans  # type: ignore[attr-defined]
    counted = by_name["tokens.count"][0]
    assert counted.attributes["relay.tokens"] == 3  # type: ignore[attr-defined]
    hits = [s.attributes["relay.cache_hit"] for s in by_name["context.select"]]  # type: ignore[attr-defined]
    assert hits == [False, True]


def test_a_refused_first_message_creates_no_session(server: Server) -> None:
    c = server.client
    dave = bearer("dave", "user")
    for _ in range(5):  # more than the quota of 3, had each refusal left a session behind
        assert_error(post_message(c, dave, "dave-new", ""), 422, "empty_content")
        assert_error(post_message(c, dave, "dave-new", "x", role="robot"), 422, "unknown_role")
    assert_error(c.get(f"{CONTEXT}/dave-new", headers=dave), 404, "session_not_found")
    assert post_message(c, dave, "dave-new", "now a real one").json()["created_session"] is True


def test_two_principals_racing_for_a_new_id(server: Server) -> None:
    """Each new id ends up with one owner; the other principal gets the 404 and writes nothing."""
    racers = {"erin": bearer("erin", "user"), "frank": bearer("frank", "user")}

    def attempt(who: str, sid: str) -> tuple[str, int]:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            return who, post_message(client, racers[who], sid, f"{who} was here").status_code

    with ThreadPoolExecutor(max_workers=4) as pool:
        for i in range(12):
            sid = f"race-{i}"
            results = dict(pool.map(lambda who, sid=sid: attempt(who, sid), racers))  # type: ignore[misc]
            assert sorted(results.values()) == [201, 404], results
            winner = next(w for w, status in results.items() if status == 201)
            window = server.client.get(f"{CONTEXT}/{sid}", headers=ADMIN).json()
            assert [m["content"] for m in window["messages"]] == [f"{winner} was here"]
            stats = server.client.get(f"{CONTEXT}/{sid}/stats", headers=ADMIN).json()
            assert stats["owner"] == winner
            c = server.client
            assert c.delete(f"{CONTEXT}/{sid}", headers=racers[winner]).status_code == 204
