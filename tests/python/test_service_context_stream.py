"""``GET /api/v1/context/{id}/stream`` end to end: Server-Sent Events with the seq as event id,
resuming from ``Last-Event-ID`` / ``?after=``, heartbeats, and clean ends when the client leaves
or the server stops."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from context_service_support import CONTEXT, bearer, metric_samples, post_message, sse_events
from service_support import Server, assert_error, run_server, service_env

ADMIN = bearer("root", "admin")
HEARTBEAT_SECONDS = 0.3


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("stream")
    env = service_env(
        data / "state",
        rate_limit_requests="10000",
        sse_heartbeat_seconds=str(HEARTBEAT_SECONDS),
    )
    with run_server(env, data) as running:
        yield running


def _messages(events: Iterator[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """The next ``n`` message events (skipping comments and the retry line)."""
    out = []
    for event in events:
        if event.get("event") == "message":
            data = json.loads(event["data"])
            assert event["id"] == str(data["seq"])
            out.append(data)
            if len(out) == n:
                break
    return out


def _fill(server: Server, sid: str, n: int) -> None:
    for i in range(n):
        answer = post_message(server.client, ADMIN, sid, f"message number {i + 1} of {sid}")
        assert answer.status_code == 201


def test_resume_from_last_event_id_then_live(server: Server) -> None:
    _fill(server, "resume", 5)
    with (
        httpx.Client(base_url=server.url, timeout=10) as streamer,
        streamer.stream(
            "GET", f"{CONTEXT}/resume/stream", headers={**ADMIN, "Last-Event-ID": "2"}
        ) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-store"
        events = sse_events(response.iter_lines())
        first = next(events)
        assert first == {"retry": "2000"}
        backlog = _messages(events, 3)
        assert [m["seq"] for m in backlog] == [3, 4, 5]
        assert backlog[0]["content"] == "message number 3 of resume"
        assert backlog[0]["role"] == "user"
        assert backlog[0]["tokens"] > 0
        # Live: a message added now arrives on the open stream.
        post_message(server.client, ADMIN, "resume", "a live one", role="assistant")
        (live,) = _messages(events, 1)
        assert (live["seq"], live["role"], live["content"]) == (6, "assistant", "a live one")


def test_resume_with_after_query(server: Server) -> None:
    _fill(server, "after", 4)
    with server.client.stream("GET", f"{CONTEXT}/after/stream?after=3", headers=ADMIN) as response:
        (message,) = _messages(sse_events(response.iter_lines()), 1)
        assert message["seq"] == 4
    # Last-Event-ID (what a reconnecting browser sends) wins when it is further on.
    with server.client.stream(
        "GET", f"{CONTEXT}/after/stream?after=1", headers={**ADMIN, "Last-Event-ID": "2"}
    ) as response:
        assert [m["seq"] for m in _messages(sse_events(response.iter_lines()), 2)] == [3, 4]


def test_bad_resume_points_are_422(server: Server) -> None:
    _fill(server, "bad-resume", 1)
    url = f"{CONTEXT}/bad-resume/stream"
    bad_id = server.client.get(url, headers={**ADMIN, "Last-Event-ID": "abc"})
    assert "Last-Event-ID" in assert_error(bad_id, 422, "invalid_argument")["message"]
    assert_error(server.client.get(url + "?after=-1", headers=ADMIN), 422, "validation_error")
    assert_error(
        server.client.get(f"{CONTEXT}/nope/stream", headers=ADMIN), 404, "session_not_found"
    )


def test_idle_streams_get_heartbeats(server: Server) -> None:
    _fill(server, "idle", 1)
    with server.client.stream("GET", f"{CONTEXT}/idle/stream?after=1", headers=ADMIN) as response:
        events = sse_events(response.iter_lines())
        comments = []
        for event in events:
            assert event.get("event") != "message"
            if "comment" in event:
                comments.append(event["comment"])
                if len(comments) == 2:
                    break
        assert comments == ["heartbeat", "heartbeat"]


def _in_flight(server: Server) -> float:
    return metric_samples(server.client.get("/metrics").text)["relay_http_requests_in_flight"]


def test_a_client_that_leaves_ends_its_stream(server: Server) -> None:
    _fill(server, "leave", 2)
    baseline = _in_flight(server)
    streams = []
    for _ in range(3):
        client = httpx.Client(base_url=server.url, timeout=10)
        response = client.send(
            client.build_request("GET", f"{CONTEXT}/leave/stream", headers=ADMIN), stream=True
        )
        events = sse_events(response.iter_lines())  # kept: dropping it closes the connection
        assert len(_messages(events, 2)) == 2
        streams.append((client, response, events))
    assert _in_flight(server) == baseline + 3
    for client, response, _ in streams:
        response.close()
        client.close()
    # The server notices within a heartbeat or two (at the next write) and ends the streams.
    deadline = time.monotonic() + 30
    while _in_flight(server) != baseline:
        assert time.monotonic() < deadline, "streams still open after their clients left"
        time.sleep(0.1)


def test_streams_end_cleanly_when_the_server_stops(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    data = tmp_path_factory.mktemp("stop")
    env = service_env(data / "state", sse_heartbeat_seconds="30", shutdown_grace_seconds="30")
    with run_server(env, data) as running:
        _fill(running, "stop", 1)
        with running.client.stream("GET", f"{CONTEXT}/stop/stream", headers=ADMIN) as response:
            events = sse_events(response.iter_lines())
            assert _messages(events, 1)[0]["seq"] == 1
            running.process.send_signal(signal.SIGINT)
            rest = list(events)  # the stream ends (no error) instead of waiting for the grace
            assert all("comment" in e or e.get("event") == "message" for e in rest)
        assert running.process.wait(timeout=30) == 0
        # The stop signal itself ended the stream: uvicorn did not have to cancel it at the end
        # of its 30 s grace.
        assert "graceful shutdown exceeded" not in running.log()
