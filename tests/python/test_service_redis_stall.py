"""A Redis that stops answering (``kill -STOP``) must not hold requests: every Redis client has
connect and socket timeouts (settings), so a stall degrades as an outage does — windows are
built from the store, writes are stored, limits follow their outage policy — and a client that
retries a write with its ``Idempotency-Key`` gets the first answer, not a second message."""

from __future__ import annotations

from pathlib import Path

import httpx

from context_service_support import CONTEXT, bearer
from redis_support import ThrowawayRedis
from service_support import run_server, service_env

ADMIN = bearer("root", "admin")


def test_a_frozen_redis_neither_hangs_nor_duplicates_writes(
    tmp_path: Path, throwaway_redis: ThrowawayRedis
) -> None:
    env = service_env(
        tmp_path / "state",
        redis_url=throwaway_redis.url,
        redis_connect_timeout_seconds="0.5",
        redis_socket_timeout_seconds="0.5",
        rate_limit_requests="1000",
    )
    with run_server(env, tmp_path) as server:
        # Generous, but finite: the request must end by itself well before this.
        c = httpx.Client(base_url=server.url, timeout=30)
        first = c.post(
            f"{CONTEXT}/messages",
            headers=ADMIN,
            json={"session_id": "stall", "role": "user", "content": "before the stall"},
        )
        assert first.status_code == 201, first.text
        assert c.get(f"{CONTEXT}/stall", headers=ADMIN).status_code == 200  # cached in Redis

        throwaway_redis.freeze()
        try:
            body = {"session_id": "stall", "role": "user", "content": "during the stall"}
            retry_key = {**ADMIN, "Idempotency-Key": "retry-of-2"}
            written = c.post(f"{CONTEXT}/messages", headers=retry_key, json=body)
            assert written.status_code == 201, written.text
            assert written.json()["seq"] == 2
            # The client gave up waiting and retries: the same message, not a third one.
            again = c.post(f"{CONTEXT}/messages", headers=retry_key, json=body)
            assert again.status_code == 201, again.text
            assert again.json()["seq"] == 2
            window = c.get(f"{CONTEXT}/stall", headers=ADMIN)
            assert window.status_code == 200, window.text
            assert [m["content"] for m in window.json()["messages"]] == [
                "before the stall",
                "during the stall",
            ]
        finally:
            throwaway_redis.thaw()
        # Redis is back: the service uses it again, and nothing was stored twice.
        after = c.get(f"{CONTEXT}/stall/stats", headers=ADMIN)
        assert after.status_code == 200, after.text
        assert after.json()["message_count"] == 2
        assert c.get("/health").status_code == 200
        # The key names that request: another message under it is refused, not stored.
        reused = c.post(
            f"{CONTEXT}/messages",
            headers={**ADMIN, "Idempotency-Key": "retry-of-2"},
            json={"session_id": "stall", "role": "user", "content": "something else"},
        )
        assert reused.status_code == 422, reused.text
        assert reused.json()["error"]["type"] == "idempotency_key_reused"
        c.close()
