from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
SHARED = REPO.parent / "shared"
BPE_DIR = SHARED / "data" / "bpe"

sys.path.insert(0, str(HERE))  # for `import corpus`
# The real tiktoken is the oracle; its rank files come from ../shared, never from the network.
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(BPE_DIR / "tiktoken-cache"))


@pytest.fixture(scope="session")
def bpe_dir() -> Path:
    if not BPE_DIR.is_dir():
        pytest.fail(f"{BPE_DIR} is missing: the shared data must sit beside the checkout")
    return BPE_DIR


# --- session store and cache: real SQLite, PostgreSQL and Redis --------------------------------
# PostgreSQL (127.0.0.1:5432, trust auth, database `test`) and Redis (127.0.0.1:6379) must be
# running: a missing server FAILS the tests that need it, it never skips them. Each test gets its
# own PostgreSQL schema and Redis key prefix, dropped afterwards, so parallel runs do not collide.
from engine_support import (  # noqa: E402
    FakeClock,
    ZlibCodec,
    build_store,
    delete_redis_keys,
    drop_pg_schema,
    find_pg_dsn,
    unique_name,
)
from redis_support import ThrowawayRedis, ThrowawayRedisCluster  # noqa: E402

PG_HOST = os.environ.get("RELAY_TEST_PG_HOST", "127.0.0.1:5432")
REDIS_TEST_URL = os.environ.get("RELAY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """A DSN for the test database; tries the users `postgres` then `root` (trust auth)."""
    dsn, problems = find_pg_dsn(PG_HOST, "test", ("postgres", "root"))
    if dsn is None:
        pytest.fail(f"PostgreSQL is required at {PG_HOST} (database `test`): {problems}")
    return dsn


@pytest.fixture
def pg_schema(pg_dsn: str) -> Iterator[str]:
    """A fresh schema name for one test; the schema is dropped afterwards."""
    schema = unique_name("relay_test")
    yield schema
    drop_pg_schema(pg_dsn, schema)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def zlib_codec() -> ZlibCodec:
    return ZlibCodec()


@pytest.fixture(scope="session")
def redis_server() -> str:
    """The URL of the real Redis; fails (never skips) when it is not running."""
    import redis

    client = redis.Redis.from_url(REDIS_TEST_URL, socket_connect_timeout=5)
    try:
        client.ping()
    except Exception as exc:
        pytest.fail(f"Redis is required at {REDIS_TEST_URL}: {exc}")
    finally:
        client.close()
    return REDIS_TEST_URL


@pytest.fixture
def redis_prefix(redis_server: str) -> Iterator[str]:
    """A key prefix unique to this test; every key under it is deleted afterwards."""
    prefix = unique_name("relay-test") + ":"
    yield prefix
    delete_redis_keys(redis_server, prefix)


@pytest.fixture
async def redis_client(redis_server: str) -> AsyncIterator[Any]:
    """An asyncio client of the real Redis."""
    from redis.asyncio import Redis

    client = Redis.from_url(redis_server)
    yield client
    await client.aclose()


@pytest.fixture(params=["sqlite", "postgres"])
def store_config(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """Where a store lives, for each back-end; picklable, for child processes."""
    if request.param == "sqlite":
        return {"backend": "sqlite", "path": str(tmp_path / "data" / "relay.db")}
    return {
        "backend": "postgres",
        "dsn": request.getfixturevalue("pg_dsn"),
        "schema": request.getfixturevalue("pg_schema"),
    }


@pytest.fixture
async def store(store_config: dict[str, Any], clock: FakeClock) -> AsyncIterator[Any]:
    """An open store (zlib codec, fake clock) on each back-end."""
    async with build_store(store_config, clock=clock) as opened:
        yield opened


@pytest.fixture
def throwaway_redis() -> Iterator[ThrowawayRedis]:
    """A private redis-server this test may kill, freeze or restart (never the shared one)."""
    server = ThrowawayRedis()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[ThrowawayRedisCluster]:
    """A private 3-master Redis Cluster of throwaway ``redis-server``s, shared by a module."""
    cluster = ThrowawayRedisCluster(3)
    yield cluster
    cluster.stop()
