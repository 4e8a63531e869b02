"""In-flight coalescing across two ``relay serve`` processes on one Redis: 20 identical streamed
requests split over both make one upstream call and every client gets the same whole stream; a
leader process killed mid-call loses its lease and a follower takes the call over; a Redis that
stops answering falls back to coalescing within the process, without hanging."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from fake_upstream import FakeUpstream, serve_in_thread
from gateway_support import UPSTREAM_KEY, jwt_for
from redis_support import ThrowawayRedis
from relay_context.security.auth import UserRole
from service_support import Server, real_backends, run_server, service_env


@pytest.fixture(scope="module")
def fake() -> Iterator[tuple[FakeUpstream, str]]:
    upstream = FakeUpstream(required_key=UPSTREAM_KEY)
    with serve_in_thread(upstream) as url:
        yield upstream, url


def stream_text(url: str, content: str, token: str) -> tuple[bytes, str | None]:
    """The raw SSE body of one streamed chat completion, and its x-relay-cache."""
    with httpx.stream(
        "POST",
        url + "/v1/chat/completions",
        json={
            "model": "gpt-4o",
            "stream": True,
            "messages": [{"role": "user", "content": content}],
        },
        headers={"authorization": f"Bearer {token}"},
        timeout=60,
    ) as response:
        assert response.status_code == 200, response.read()
        return response.read(), response.headers.get("x-relay-cache")


def calls_with(upstream: FakeUpstream, marker: str) -> int:
    return sum(marker.encode() in r.body for r in upstream.requests)


def test_twenty_streams_over_two_processes_make_one_upstream_call(
    tmp_path: Path, fake: tuple[FakeUpstream, str], pg_dsn: str, redis_server: str
) -> None:
    upstream, url = fake
    token = jwt_for("coalescer")
    with real_backends(pg_dsn, redis_server, "gwco") as backends:
        env = service_env(
            tmp_path / "data", **backends, OPENAI_BASE_URL=url + "/v1", OPENAI_API_KEY=UPSTREAM_KEY
        )
        with run_server(env, tmp_path / "a") as a, run_server(env, tmp_path / "b") as b:
            content = "replicas-20 fake:latency_ms=600 fake:chunk_delay_ms=20 fake:words=40"
            barrier = threading.Barrier(20)

            def ask(i: int) -> tuple[bytes, str | None]:
                barrier.wait()
                return stream_text((a, b)[i % 2].url, content, token)

            with ThreadPoolExecutor(20) as pool:
                out = list(pool.map(ask, range(20)))
            assert calls_with(upstream, "replicas-20") == 1
            bodies = {body for body, _ in out}
            assert len(bodies) == 1
            body = next(iter(bodies))
            assert body.count(b"data: ") == 40 + 3
            assert body.endswith(b"data: [DONE]\n\n")
            assert [cache for _, cache in out].count("coalesced") == 19
            metrics = a.client.get("/metrics").text + b.client.get("/metrics").text
            total = sum(
                float(line.split()[1])
                for line in metrics.splitlines()
                if line.startswith("relay_coalesced_requests_total ")
            )
            assert total == 19
            # The 19 followers' ledger rows cost 0 and save what the one call cost; the
            # ledger's counts agree with both processes' stats (the dashboards).
            admin = {"authorization": f"Bearer {jwt_for('root', UserRole.ADMIN)}"}
            deadline = time.monotonic() + 10
            while True:  # each process writes its rows within half a second
                rows = a.client.get(
                    "/api/v1/gateway/usage", params={"group_by": "key"}, headers=admin
                ).json()["data"]
                row = next((r for r in rows if r["key"] == "coalescer"), {"requests": 0})
                if row["requests"] == 20 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert row["requests"] == 20
            assert row["coalesced"] == 19
            assert row["cost_usd"] > 0
            assert row["saved_usd"] == pytest.approx(19 * row["cost_usd"], rel=1e-6)
            stats = [s.client.get("/api/v1/gateway/stats", headers=admin).json() for s in (a, b)]
            assert sum(s["cache"]["coalesced"] for s in stats) == 19
            saved = sum(s["totals"]["saved_usd"] for s in stats)
            assert saved == pytest.approx(row["saved_usd"], rel=1e-6)


def test_a_dead_leaders_lease_expires_and_a_follower_takes_over(
    tmp_path: Path, fake: tuple[FakeUpstream, str], pg_dsn: str, redis_server: str
) -> None:
    upstream, url = fake
    token = jwt_for("takeover")
    with real_backends(pg_dsn, redis_server, "gwtk") as backends:
        env = service_env(
            tmp_path / "data",
            **backends,
            OPENAI_BASE_URL=url + "/v1",
            OPENAI_API_KEY=UPSTREAM_KEY,
            GATEWAY_COALESCE_LEASE_SECONDS="1",
        )
        with run_server(env, tmp_path / "a") as a, run_server(env, tmp_path / "b") as b:
            content = "replicas-takeover fake:latency_ms=1500 fake:words=12"
            lost: list[BaseException] = []

            def doomed() -> None:
                try:
                    stream_text(a.url, content, token)
                except BaseException as exc:  # the process dies under it
                    lost.append(exc)

            leader = threading.Thread(target=doomed)
            leader.start()
            deadline = time.monotonic() + 10
            while calls_with(upstream, "replicas-takeover") < 1 and time.monotonic() < deadline:
                time.sleep(0.02)
            result: list[tuple[bytes, str | None]] = []
            follower = threading.Thread(
                target=lambda: result.append(stream_text(b.url, content, token))
            )
            follower.start()
            time.sleep(0.3)  # B follows A's call
            a.process.send_signal(signal.SIGKILL)
            a.process.wait()
            follower.join(30)
            leader.join(30)
            assert lost  # A's client lost its answer with A
            body, cache = result[0]
            assert body.endswith(b"data: [DONE]\n\n")
            assert body.count(b"data: ") == 12 + 3
            assert cache == "bypass"  # B made the call itself ...
            assert "taking the call over" in b.log()  # ... after following A's
            assert calls_with(upstream, "replicas-takeover") == 2


def test_redis_outage_falls_back_to_the_process(
    tmp_path: Path, fake: tuple[FakeUpstream, str]
) -> None:
    upstream, url = fake
    token = jwt_for("outage")
    redis = ThrowawayRedis()
    try:
        env = service_env(
            tmp_path / "data",
            REDIS_URL=redis.url,
            REDIS_SOCKET_TIMEOUT_SECONDS="0.5",
            REDIS_CONNECT_TIMEOUT_SECONDS="0.5",
            OPENAI_BASE_URL=url + "/v1",
            OPENAI_API_KEY=UPSTREAM_KEY,
        )
        with run_server(env, tmp_path / "a") as a:
            redis.freeze()  # connections hang: every call must time out, not the request
            content = "replicas-outage fake:latency_ms=300 fake:words=10"
            barrier = threading.Barrier(4)

            def ask(_: int) -> tuple[bytes, str | None]:
                barrier.wait()
                return stream_text(a.url, content, token)

            started = time.monotonic()
            with ThreadPoolExecutor(4) as pool:
                out = list(pool.map(ask, range(4)))
            assert time.monotonic() - started < 15
            assert calls_with(upstream, "replicas-outage") == 1
            assert len({body for body, _ in out}) == 1
            assert [cache for _, cache in out].count("coalesced") == 3
            redis.thaw()
    finally:
        redis.stop()


def stream_end(upstream: FakeUpstream, marker: str, within: float) -> str | None:
    """How the upstream's stream of the request carrying ``marker`` ended, or ``None`` if it
    has not within ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        ends = [end for body, end in upstream.stream_ends if marker.encode() in body]
        if ends or time.monotonic() >= deadline:
            return ends[0] if ends else None
        time.sleep(0.02)


def coalescing_lines(server: Server) -> str:
    """The server's log lines about coalescing (for a failure's message)."""
    return "\n".join(line for line in server.log().splitlines() if "coalesc" in line.lower())


def open_stream(http: httpx.Client, url: str, content: str, token: str) -> Any:
    """A streamed chat completion left open after its first event: (context, response, the
    lines after that event)."""
    context = http.stream(
        "POST",
        url + "/v1/chat/completions",
        json={
            "model": "gpt-4o",
            "stream": True,
            "messages": [{"role": "user", "content": content}],
        },
        headers={"authorization": f"Bearer {token}"},
    )
    response = context.__enter__()
    assert response.status_code == 200
    lines = response.iter_lines()
    while not next(lines).startswith("data: "):
        pass
    return context, response, lines


def test_the_leaders_call_is_cancelled_only_when_no_process_waits(
    tmp_path: Path, fake: tuple[FakeUpstream, str], pg_dsn: str, redis_server: str
) -> None:
    """A's client leads, B's follows through Redis. A's client leaving does not cancel the call
    while B's waits (B gets the whole answer); when B's leaves too, A cancels it (the upstream
    sees its connection closed long before the 8 s stream would end)."""
    upstream, url = fake
    token = jwt_for("leavers")
    with real_backends(pg_dsn, redis_server, "gwlv") as backends:
        env = service_env(
            tmp_path / "data",
            **backends,
            OPENAI_BASE_URL=url + "/v1",
            OPENAI_API_KEY=UPSTREAM_KEY,
            GATEWAY_COALESCE_LEASE_SECONDS="1",
            LOG_LEVEL="INFO",
        )
        with (
            run_server(env, tmp_path / "a") as a,
            run_server(env, tmp_path / "b") as b,
            httpx.Client(timeout=30) as a_http,
        ):
            # 1. B still waits: A's call runs to its end.
            content = "replicas-stay fake:chunk_delay_ms=50 fake:words=40"
            with httpx.Client(timeout=30) as b_http:
                leader, _, _ = open_stream(a_http, a.url, content, token)
                follower, response, lines = open_stream(b_http, b.url, content, token)
                assert response.headers["x-relay-cache"] == "coalesced"
                leader.__exit__(None, None, None)
                rest = [line for line in lines if line.startswith("data: ")]
                follower.__exit__(None, None, None)
            assert len(rest) == 40 + 3 - 1
            assert rest[-1] == "data: [DONE]"
            assert stream_end(upstream, "replicas-stay", 5) == "complete"
            assert calls_with(upstream, "replicas-stay") == 1

            # 2. Both leave: the call is cancelled, though not while B's client is there.
            content = "replicas-gone fake:chunk_delay_ms=100 fake:words=80"
            with httpx.Client(timeout=30) as b_http:
                leader, _, _ = open_stream(a_http, a.url, content, token)
                follower_stream, response, _ = open_stream(b_http, b.url, content, token)
                assert response.headers["x-relay-cache"] == "coalesced"
                started = time.monotonic()
                leader.__exit__(None, None, None)
                # Past a lease: B's presence is renewed, so A keeps the call.
                assert stream_end(upstream, "replicas-gone", 2.0) is None
                follower_stream.__exit__(None, None, None)
                end = stream_end(upstream, "replicas-gone", 4)
                assert end == "disconnected", coalescing_lines(a) + coalescing_lines(b)
                assert time.monotonic() - started < 6.5
            assert calls_with(upstream, "replicas-gone") == 1
