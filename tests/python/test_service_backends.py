"""``relay serve`` on the real PostgreSQL and Redis (each run in its own schema and key prefix):
keys and sessions in PostgreSQL, rate limits shared by every process through Redis. A missing
server fails these tests (the fixtures never skip)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import redis

from service_support import (
    Server,
    assert_error,
    create_key,
    free_port,
    real_backends,
    run_server,
    service_env,
)


@pytest.fixture(scope="module")
def backends(pg_dsn: str, redis_server: str) -> Iterator[dict[str, str]]:
    with real_backends(pg_dsn, redis_server, "relay_svc") as settings:
        yield settings


@pytest.fixture(scope="module")
def servers(
    tmp_path_factory: pytest.TempPathFactory, backends: dict[str, str]
) -> Iterator[tuple[Server, Server]]:
    data = tmp_path_factory.mktemp("backends")
    env = service_env(data / "state", rate_limit_requests="4", **backends)
    with run_server(env, data / "a") as first, run_server(env, data / "b") as second:
        yield first, second


def test_health_checks_postgres_and_redis(servers: tuple[Server, Server]) -> None:
    body = servers[0].client.get("/health").json()
    assert body["status"] == "healthy"
    assert body["checks"]["database"]["backend"] == "postgresql"
    assert body["checks"]["database"]["status"] == "healthy"
    assert body["checks"]["redis"]["status"] == "healthy"
    assert body["checks"]["redis"]["latency_ms"] >= 0


def test_keys_live_in_postgres_and_work_on_every_process(
    servers: tuple[Server, Server], pg_dsn: str, backends: dict[str, str]
) -> None:
    first, second = servers
    created = create_key(first.env, "admin", owner="pg-admin")

    async def stored() -> list[Any]:
        connection = await asyncpg.connect(pg_dsn)
        try:
            return list(
                await connection.fetch(
                    f'SELECT id, key_hash FROM "{backends["database_schema"]}".relay_api_keys'
                )
            )
        finally:
            await connection.close()

    rows = asyncio.run(stored())
    assert created["id"] in {r["id"] for r in rows}
    assert created["key"] not in repr(rows)
    headers = {"X-API-Key": created["key"]}
    made = first.client.post("/api/v1/keys", headers=headers, json={"role": "viewer"})
    assert made.status_code == 201
    listing = second.client.get("/api/v1/keys", headers=headers)
    assert made.json()["id"] in {k["id"] for k in listing.json()}
    assert second.client.delete(f"/api/v1/keys/{made.json()['id']}", headers=headers).is_success
    revoked = {"X-API-Key": made.json()["key"]}
    assert_error(first.client.get("/api/v1/keys", headers=revoked), 401, "authentication")


def test_rate_limit_is_shared_through_redis(
    servers: tuple[Server, Server], backends: dict[str, str]
) -> None:
    first, second = servers
    headers = {"X-API-Key": create_key(first.env, "admin", owner="shared-limit")["key"]}
    seen = [
        (server.client.get("/api/v1/keys", headers=headers))
        for server in (first, second, first, second)
    ]
    assert [r.status_code for r in seen] == [200] * 4
    assert [r.headers["x-ratelimit-remaining"] for r in seen] == ["3", "2", "1", "0"]
    limited = first.client.get("/api/v1/keys", headers=headers)
    assert_error(limited, 429, "rate_limit_exceeded")
    assert int(limited.headers["retry-after"]) >= 1
    client = redis.Redis.from_url(backends["redis_url"])
    try:
        keys = [k.decode() for k in client.scan_iter(match=backends["redis_key_prefix"] + "*")]
    finally:
        client.close()
    assert any("principal:shared-limit" in k for k in keys), keys


def test_health_is_503_when_redis_is_down(tmp_path: Path) -> None:
    env = service_env(tmp_path / "state", redis_url=f"redis://127.0.0.1:{free_port()}/0")
    with run_server(env, tmp_path) as server:
        response = server.client.get("/health")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "unhealthy"
        assert body["checks"]["redis"]["status"] == "unhealthy"
        assert body["checks"]["redis"]["error"]
        assert body["checks"]["database"]["status"] == "healthy"
