"""In-flight coalescing in one gateway process, through the HTTP API with the official SDKs and
the fake upstream: concurrent identical requests make one upstream call and all get the whole
answer; a late joiner gets the stream from its first chunk; the leader's client leaving does not
end the call for the others; an upstream error reaches every waiter in its protocol; the
per-flight byte bound and the switch."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import anthropic
import httpx
import openai
import pytest

from gateway_support import GatewayRig, jwt_for, running_gateway
from relay_context.security.auth import UserRole

T = TypeVar("T")


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayRig]:
    with running_gateway(tmp_path_factory.mktemp("gw")) as r:
        yield r


def openai_client(rig: GatewayRig) -> openai.OpenAI:
    return openai.OpenAI(base_url=rig.v1, api_key=rig.key, max_retries=0)


def anthropic_client(rig: GatewayRig) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=rig.url, api_key=rig.key, max_retries=0)


def calls_with(rig: GatewayRig, marker: str) -> int:
    """Upstream calls whose body carries ``marker`` (each test uses its own)."""
    return sum(marker.encode() in r.body for r in rig.upstream.requests)


def together(n: int, work: Callable[[int], T]) -> list[T]:
    """``work(i)`` for i < n in n threads released at once."""
    barrier = threading.Barrier(n)

    def run(i: int) -> T:
        barrier.wait()
        return work(i)

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def openai_stream(rig: GatewayRig, content: str) -> tuple[str, str | None, Any]:
    """(text, x-relay-cache, usage) of one streamed chat completion."""
    raw = openai_client(rig).chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": content}],
        stream=True,
        stream_options={"include_usage": True},
    )
    text, usage = "", None
    for chunk in raw.parse():
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        if chunk.usage is not None:
            usage = chunk.usage
    return text, raw.headers.get("x-relay-cache"), usage


def wait_for_waiters(rig: GatewayRig, n: int) -> None:
    """Until the one call in flight has ``n`` waiters."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        flights = list(rig.gateway.coalescer.flights.values())
        if flights and flights[0].waiters >= n:
            return
        time.sleep(0.01)
    raise AssertionError(f"no call in flight with {n} waiters")


def metric(rig: GatewayRig, name: str) -> float:
    for line in httpx.get(rig.url + "/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def test_concurrent_identical_streams_share_one_upstream_call(rig: GatewayRig) -> None:
    before = metric(rig, "relay_coalesced_requests_total")
    stats_before = rig.gateway.stats.snapshot()
    content = "coalesce-streams fake:latency_ms=1000 fake:chunk_delay_ms=10 fake:words=30"
    out = together(8, lambda _: openai_stream(rig, content))
    assert calls_with(rig, "coalesce-streams") == 1
    texts = {text for text, _, _ in out}
    assert len(texts) == 1
    assert len(next(iter(texts)).split()) == 30
    assert sorted(str(cache) for _, cache, _ in out) == ["bypass"] + ["coalesced"] * 7
    assert all(usage is not None and usage.completion_tokens > 0 for _, _, usage in out)
    deadline = time.monotonic() + 5  # counted when each answer is settled, just after its end
    while metric(rig, "relay_coalesced_requests_total") - before < 7:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert metric(rig, "relay_coalesced_requests_total") - before == 7
    stats = rig.gateway.stats.snapshot()
    assert stats["cache"]["coalesced"] - stats_before["cache"]["coalesced"] == 7
    # What the seven answers would have cost is saved; only the leader's call was paid.
    assert stats["totals"]["saved_usd"] > stats_before["totals"]["saved_usd"]


def test_concurrent_identical_requests_not_streamed(rig: GatewayRig) -> None:
    def ask(_: int) -> tuple[str, str | None]:
        raw = openai_client(rig).chat.completions.with_raw_response.create(
            model="gpt-4o",
            messages=[{"role": "user", "content": "coalesce-whole fake:latency_ms=1000"}],
        )
        return str(raw.parse().choices[0].message.content), raw.headers.get("x-relay-cache")

    out = together(6, ask)
    assert calls_with(rig, "coalesce-whole") == 1
    assert len({text for text, _ in out}) == 1
    assert [cache for _, cache in out].count("coalesced") == 5


def test_anthropic_streams_share_one_call(rig: GatewayRig) -> None:
    def ask(_: int) -> tuple[list[str], int]:
        with anthropic_client(rig).messages.stream(
            model="claude-sonnet-4-5",
            max_tokens=256,
            messages=[{"role": "user", "content": "coalesce-anthropic fake:latency_ms=1000"}],
        ) as stream:
            final = stream.get_final_message()
        return [b.type for b in final.content], final.usage.output_tokens

    out = together(5, ask)
    assert calls_with(rig, "coalesce-anthropic") == 1
    assert len(set(map(repr, out))) == 1
    assert out[0][1] > 0


def test_gemini_streams_share_one_call_each_in_its_framing(rig: GatewayRig) -> None:
    """``streamGenerateContent`` with ``alt=sse`` and without (the JSON array) share one call;
    each client gets the same chunks in the framing it asked for."""
    content = "coalesce-gemini fake:latency_ms=1000 fake:words=12"

    def ask(i: int) -> tuple[list[Any], str | None]:
        sse = i % 2 == 0
        response = httpx.post(
            rig.url + "/v1beta/models/gemini-2.0-flash:streamGenerateContent",
            params={"alt": "sse"} if sse else {},
            json={"contents": [{"role": "user", "parts": [{"text": content}]}]},
            headers={"x-goog-api-key": rig.key},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        if sse:
            assert response.headers["content-type"].startswith("text/event-stream")
            events = response.text.replace("\r\n", "\n").split("\n\n")
            chunks = [json.loads(e[6:]) for e in events if e.startswith("data: ")]
        else:
            assert response.headers["content-type"].startswith("application/json")
            chunks = json.loads(response.content)
        return chunks, response.headers.get("x-relay-cache")

    out = together(4, ask)
    assert calls_with(rig, "coalesce-gemini") == 1
    assert [cache for _, cache in out].count("coalesced") == 3
    assert len(out[0][0]) > 1
    assert all(chunks == out[0][0] for chunks, _ in out)


def sse_chunks(response: httpx.Response) -> Iterator[bytes]:
    yield from response.iter_raw()


def test_late_joiner_gets_the_whole_stream_then_live(rig: GatewayRig) -> None:
    body = {
        "model": "gpt-4o",
        "stream": True,
        "messages": [
            {"role": "user", "content": "coalesce-late fake:chunk_delay_ms=40 fake:words=25"}
        ],
    }
    headers = {"authorization": f"Bearer {rig.key}"}
    with (
        httpx.Client(timeout=30) as http,
        http.stream("POST", rig.v1 + "/chat/completions", json=body, headers=headers) as first,
    ):
        leader = iter(first.iter_lines())
        seen = [next(leader) for _ in range(10)]  # a few events in
        with http.stream("POST", rig.v1 + "/chat/completions", json=body, headers=headers) as late:
            assert late.headers["x-relay-cache"] == "coalesced"
            started = time.perf_counter()
            late_lines = list(late.iter_lines())
            late_seconds = time.perf_counter() - started
        leader_lines = seen + list(leader)
    assert calls_with(rig, "coalesce-late") == 1
    assert [x for x in late_lines if x] == [x for x in leader_lines if x]
    assert "data: [DONE]" in late_lines
    # The live part came at the upstream's pace, not at once (25 words, 40 ms apart).
    assert late_seconds > 0.2


def test_leader_disconnect_keeps_followers_going(rig: GatewayRig) -> None:
    content = "coalesce-leave fake:chunk_delay_ms=30 fake:words=30"
    body = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": content}]}
    headers = {"authorization": f"Bearer {rig.key}"}
    results: list[tuple[str, str | None, Any]] = []
    with httpx.Client(timeout=30) as http:
        first = http.stream("POST", rig.v1 + "/chat/completions", json=body, headers=headers)
        response = first.__enter__()
        lines = response.iter_lines()
        for _ in range(4):
            next(lines)
        follower = threading.Thread(target=lambda: results.append(openai_stream(rig, content)))
        follower.start()
        wait_for_waiters(rig, 2)  # the follower has joined
        first.__exit__(None, None, None)  # the leader's client goes away mid-stream
        follower.join(30)
    assert calls_with(rig, "coalesce-leave") == 1
    assert stream_end(rig, "coalesce-leave") == "complete"
    text, cache, usage = results[0]
    assert cache == "coalesced"
    assert len(text.split()) == 30
    assert usage is not None
    # The same answer as a fresh call of the deterministic fake gets in full.
    fresh, cache_after, _ = openai_stream(rig, content)
    assert cache_after == "bypass"  # the cache is off here
    assert fresh == text


def test_call_ends_when_nobody_waits(rig: GatewayRig) -> None:
    body = {
        "model": "gpt-4o",
        "stream": True,
        "messages": [
            {"role": "user", "content": "coalesce-alone fake:chunk_delay_ms=100 fake:words=60"}
        ],
    }
    headers = {"authorization": f"Bearer {rig.key}"}
    coalescer = rig.gateway.coalescer
    with httpx.stream("POST", rig.v1 + "/chat/completions", json=body, headers=headers) as r:
        lines = r.iter_lines()  # kept: a dropped iterator would close the connection
        next(lines)
        assert len(coalescer.flights) == 1
    deadline = time.monotonic() + 3  # the stream alone would last 6 s
    while coalescer.flights and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not coalescer.flights
    assert stream_end(rig, "coalesce-alone") == "disconnected"


def stream_end(rig: GatewayRig, marker: str, within: float = 5.0) -> str:
    """How the upstream's stream of the request carrying ``marker`` ended (waits for it)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        ends = [end for body, end in rig.upstream.stream_ends if marker.encode() in body]
        if ends:
            assert len(ends) == 1
            return ends[0]
        time.sleep(0.02)
    raise AssertionError(f"the upstream stream of {marker!r} did not end within {within} s")


def test_call_cancelled_once_the_leader_and_every_follower_left(rig: GatewayRig) -> None:
    """Not while one waiter is left; at once when the last one goes (the upstream sees its
    connection closed, long before its 6 s stream would have ended)."""
    content = "coalesce-all-leave fake:chunk_delay_ms=100 fake:words=60"
    body = {"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": content}]}
    headers = {"authorization": f"Bearer {rig.key}"}
    with httpx.Client(timeout=30) as leader_http, httpx.Client(timeout=30) as follower_http:
        leader = leader_http.stream(
            "POST", rig.v1 + "/chat/completions", json=body, headers=headers
        )
        leader_lines = leader.__enter__().iter_lines()
        next(leader_lines)
        follower = follower_http.stream(
            "POST", rig.v1 + "/chat/completions", json=body, headers=headers
        )
        response = follower.__enter__()
        assert response.headers["x-relay-cache"] == "coalesced"
        follower_lines = response.iter_lines()
        next(follower_lines)
        wait_for_waiters(rig, 2)
        started = time.monotonic()
        leader.__exit__(None, None, None)
        time.sleep(0.5)
        assert rig.gateway.coalescer.flights  # the follower still waits: the call goes on
        assert not [e for b, e in rig.upstream.stream_ends if b"coalesce-all-leave" in b]
        follower.__exit__(None, None, None)
        assert stream_end(rig, "coalesce-all-leave") == "disconnected"
        assert time.monotonic() - started < 4
    assert calls_with(rig, "coalesce-all-leave") == 1


def test_upstream_error_reaches_every_waiter_in_its_protocol(rig: GatewayRig) -> None:
    def ask_openai(_: int) -> Exception:
        with pytest.raises(openai.BadRequestError) as caught:
            openai_client(rig).chat.completions.create(
                model="gpt-4o",
                messages=[
                    {
                        "role": "user",
                        "content": "coalesce-err-o fake:status=400 fake:latency_ms=1000",
                    }
                ],
                stream=True,
            )
        return caught.value

    def ask_anthropic(_: int) -> Exception:
        with pytest.raises(anthropic.BadRequestError) as caught:
            anthropic_client(rig).messages.create(
                model="claude-sonnet-4-5",
                max_tokens=64,
                messages=[
                    {
                        "role": "user",
                        "content": "coalesce-err-a fake:status=400 fake:latency_ms=1000",
                    }
                ],
            )
        return caught.value

    for ask, marker in ((ask_openai, "coalesce-err-o"), (ask_anthropic, "coalesce-err-a")):
        errors = together(4, ask)
        assert calls_with(rig, marker) == 1
        assert all("fake upstream error" in str(e) for e in errors)


def test_mid_stream_error_reaches_every_waiter_as_its_error_event(rig: GatewayRig) -> None:
    def ask_openai(_: int) -> str:
        with pytest.raises(openai.APIError) as caught:
            for _chunk in openai_client(rig).chat.completions.create(
                model="gpt-4o",
                messages=[
                    {
                        "role": "user",
                        "content": "coalesce-cut-o fake:cut_after=4 fake:latency_ms=1000",
                    }
                ],
                stream=True,
            ):
                pass
        return str(caught.value)

    def ask_anthropic(_: int) -> str:
        with (
            pytest.raises(anthropic.APIError) as caught,
            anthropic_client(rig).messages.stream(
                model="claude-sonnet-4-5",
                max_tokens=64,
                messages=[
                    {
                        "role": "user",
                        "content": "coalesce-cut-a fake:cut_after=4 fake:latency_ms=1000",
                    }
                ],
            ) as stream,
        ):
            stream.get_final_message()
        return str(caught.value)

    for ask, marker in ((ask_openai, "coalesce-cut-o"), (ask_anthropic, "coalesce-cut-a")):
        messages = together(4, ask)
        assert calls_with(rig, marker) == 1
        assert all("stream failed" in m for m in messages), messages


def test_full_flight_takes_no_joiners_and_coalescing_can_be_off(tmp_path: Path) -> None:
    with running_gateway(tmp_path / "small", coalesce_max_bytes=1024) as small:
        body = {
            "model": "gpt-4o",
            "stream": True,
            "messages": [
                {"role": "user", "content": "coalesce-big fake:chunk_delay_ms=5 fake:words=300"}
            ],
        }
        headers = {"authorization": f"Bearer {small.key}"}
        with httpx.Client(timeout=30) as http:
            with http.stream(
                "POST", small.v1 + "/chat/completions", json=body, headers=headers
            ) as a:
                lines = a.iter_lines()
                got = 0
                for line in lines:  # past 1 KiB of answer
                    got += len(line)
                    if got > 4096:
                        break
                with http.stream(
                    "POST", small.v1 + "/chat/completions", json=body, headers=headers
                ) as b:
                    assert b.headers["x-relay-cache"] == "bypass"  # a call of its own
                    b_text = b.read()
                a_rest = b"".join(x.encode() for x in lines)
            assert b"[DONE]" in b_text
            assert a_rest
        assert calls_with(small, "coalesce-big") == 2
    with running_gateway(tmp_path / "off", coalesce=False) as off:
        content = "coalesce-off fake:latency_ms=1000"
        out = together(4, lambda _: openai_stream(off, content))
        assert calls_with(off, "coalesce-off") == 4
        assert all(cache == "bypass" for _, cache, _ in out)


def test_with_the_cache_followers_are_coalesced_and_the_leaders_answer_is_stored(
    tmp_path: Path,
) -> None:
    with running_gateway(tmp_path / "cached", cache={"enabled": True}) as cached:
        content = "coalesce-cached fake:latency_ms=1000 fake:words=12"
        before = cached.gateway.stats.snapshot()["cache"]
        out = together(4, lambda _: openai_stream(cached, content))
        assert calls_with(cached, "coalesce-cached") == 1
        assert sorted(str(cache) for _, cache, _ in out) == ["coalesced"] * 3 + ["miss"]
        deadline = time.monotonic() + 5
        while True:  # the leader's answer is stored just after its end
            text, cache, _ = openai_stream(cached, content)
            if cache == "hit" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert cache == "hit"
        assert text == out[0][0]
        assert calls_with(cached, "coalesce-cached") == 1
        after = cached.gateway.stats.snapshot()["cache"]
        assert after["misses"] - before["misses"] == 1
        assert after["coalesced"] - before["coalesced"] == 3
        whole = together(3, lambda _: openai_whole(cached, "coalesce-cached-whole"))
        assert sorted(str(cache) for _, cache, _ in whole) == ["coalesced"] * 2 + ["miss"]
        whole_cost = next(cost for _, cache, cost in whole if cache == "miss")
        assert all(cost == 0 for _, cache, cost in whole if cache == "coalesced")
        hit = httpx.post(
            cached.v1 + "/chat/completions",
            json={"model": "gpt-4o", "stream": True, "messages": [user(content)]},
            headers={"authorization": f"Bearer {cached.key}"},
        )
        assert hit.headers["x-relay-cache"] == "hit"
        stream_cost = float(hit.headers["x-relay-saved-usd"])
        assert stream_cost > 0
        assert whole_cost > 0
        # Every follower's ledger row costs 0 and saves what the shared call cost, as a hit's
        # does; the ledger's coalesced count and saved USD are the dashboard's.
        admin = {"authorization": f"Bearer {jwt_for('root', UserRole.ADMIN)}"}
        deadline = time.monotonic() + 5
        while True:  # the streams' rows are settled just after their end
            report = httpx.get(
                cached.url + "/api/v1/gateway/usage", params={"group_by": "key"}, headers=admin
            ).json()["data"]
            if sum(int(row["requests"]) for row in report) == 9 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        (row,) = report
        assert row["requests"] == 9  # 4 streams, 2 hits, 3 whole answers
        assert row["coalesced"] == 5
        assert row["cache_hits"] == 2
        assert row["cost_usd"] == pytest.approx(stream_cost + whole_cost, abs=1e-8)
        assert row["saved_usd"] == pytest.approx(5 * stream_cost + 2 * whole_cost, abs=1e-8)
        stats = httpx.get(cached.url + "/api/v1/gateway/stats", headers=admin).json()
        assert stats["cache"]["coalesced"] == row["coalesced"]
        assert stats["cache"]["exact_hits"] == row["cache_hits"]
        assert stats["totals"]["saved_usd"] == pytest.approx(row["saved_usd"], abs=1e-8)


def user(content: str) -> dict[str, str]:
    return {"role": "user", "content": content}


def openai_whole(rig: GatewayRig, content: str) -> tuple[str, str | None, float]:
    """(text, x-relay-cache, x-relay-cost-usd) of one chat completion, not streamed."""
    raw = openai_client(rig).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": content + " fake:latency_ms=1000"}]
    )
    text = str(raw.parse().choices[0].message.content)
    return text, raw.headers.get("x-relay-cache"), float(raw.headers["x-relay-cost-usd"])
