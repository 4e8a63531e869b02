"""PostgreSQL crashes and comes back under a running ``relay serve``: while it is down, writes
and reads answer 503 ``backend_unavailable`` within the database timeout (never a hang, never
a 500) and ``/health`` says so; once it is back the service recovers by itself — no restart —
and every acknowledged message is still there, in order."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pg_support import ThrowawayPostgres
from service_support import Server, create_key, run_server, service_env

#: DATABASE_TIMEOUT_SECONDS for the server under test: how long a request may wait for it.
DB_TIMEOUT = 3.0


@pytest.fixture
def postgres() -> Iterator[ThrowawayPostgres]:
    server = ThrowawayPostgres()
    try:
        yield server
    finally:
        server.close()


def _append(server: Server, key: str, session: str, text: str) -> tuple[int, float, dict]:
    started = time.monotonic()
    response = server.client.post(
        "/api/v1/context/messages",
        json={"session_id": session, "role": "user", "content": text},
        headers={"X-API-Key": key},
        timeout=60,
    )
    return response.status_code, time.monotonic() - started, response.json()


@pytest.mark.parametrize("mode", ["immediate", "fast"])
def test_postgres_down_then_back(postgres: ThrowawayPostgres, tmp_path: Path, mode: str) -> None:
    env = service_env(
        tmp_path / "data",
        DATABASE_URL=postgres.dsn.replace("postgresql://", "postgresql+asyncpg://"),
        DATABASE_TIMEOUT_SECONDS=str(DB_TIMEOUT),
        RATE_LIMIT_REQUESTS="100000",
    )
    key = create_key(env, "admin")["key"]
    with run_server(env, tmp_path / "logs") as server:
        acked = []
        for i in range(10):
            status, _, body = _append(server, key, "pg-restart", f"before {i}")
            assert status == 201, body
            acked.append(body["seq"])

        postgres.stop(mode)
        for i in range(3):
            status, seconds, body = _append(server, key, "pg-restart", f"during {i}")
            assert status == 503, body
            assert body["error"]["type"] == "backend_unavailable", body
            assert seconds < DB_TIMEOUT + 5, seconds
        window = server.client.get("/api/v1/context/pg-restart", headers={"X-API-Key": key})
        assert window.status_code == 503, window.text
        assert server.client.get("/health").status_code == 503

        postgres.start()
        deadline = time.monotonic() + 30
        while True:  # the pool reconnects on its own; no restart of relay serve
            status, _, body = _append(server, key, "pg-restart", "after")
            if status == 201:
                acked.append(body["seq"])
                break
            assert status == 503, body
            assert time.monotonic() < deadline, "relay did not recover"
            time.sleep(0.5)
        assert server.client.get("/health").status_code == 200
        window = server.client.get(
            "/api/v1/context/pg-restart?budget=100000", headers={"X-API-Key": key}
        )
        assert window.status_code == 200, window.text
        texts = [m["content"] for m in window.json()["messages"]]
        assert texts == [f"before {i}" for i in range(10)] + ["after"]
        assert acked == sorted(acked)
