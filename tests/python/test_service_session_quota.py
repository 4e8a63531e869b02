"""The per-user session quota holds under concurrency: many first messages of one USER at once
(asyncio.gather over HTTP, against two ``relay serve`` processes sharing one database) create at
most ``max_sessions_per_user`` sessions, on SQLite and on PostgreSQL. The store-level check
(``ensure_session(max_owned=...)``) is tested the same way without HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from context_service_support import CONTEXT, bearer
from engine_support import drop_pg_schema, unique_name
from relay_context.errors import SessionLimitExceededError
from service_support import Server, run_server, service_env

QUOTA = 3
ATTEMPTS = 24


# --- the store ----------------------------------------------------------------------------------
async def test_ensure_session_with_max_owned_never_exceeds_it(store: Any) -> None:
    results = await asyncio.gather(
        *(store.ensure_session(f"q{i}", "alice", max_owned=QUOTA) for i in range(ATTEMPTS)),
        return_exceptions=True,
    )
    created = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(created) == QUOTA
    assert all(isinstance(r, SessionLimitExceededError) for r in refused)
    assert f"limit {QUOTA}" in str(refused[0])
    assert len(await store.list_sessions("alice")) == QUOTA
    # An existing session is returned even when the quota is full; other owners are unaffected.
    assert (await store.ensure_session(created[0].id, "alice", max_owned=QUOTA)) == created[0]
    assert (await store.ensure_session("b1", "bob", max_owned=QUOTA)).owner == "bob"
    # Without max_owned there is no limit.
    assert (await store.ensure_session("free", "alice")).owner == "alice"


async def test_ensure_session_frees_a_slot_when_a_session_goes(store: Any) -> None:
    for i in range(QUOTA):
        await store.ensure_session(f"s{i}", "alice", max_owned=QUOTA)
    with pytest.raises(SessionLimitExceededError):
        await store.ensure_session("extra", "alice", max_owned=QUOTA)
    assert await store.delete_session("s0")
    assert (await store.ensure_session("extra", "alice", max_owned=QUOTA)).id == "extra"


async def test_ensure_session_rejects_a_bad_max_owned(store: Any) -> None:
    with pytest.raises(Exception, match="max_owned"):
        await store.ensure_session("s", "alice", max_owned=0)


# --- the service, two processes -----------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgres"])
def two_servers(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    settings: dict[str, Any] = {"rate_limit_requests": "10000", "max_sessions_per_user": QUOTA}
    schema = None
    if request.param == "postgres":
        pg_dsn: str = request.getfixturevalue("pg_dsn")
        schema = unique_name("relay_quota")
        settings["database_url"] = pg_dsn.replace("postgresql://", "postgresql+asyncpg://")
        settings["database_schema"] = schema
    env = service_env(tmp_path / "state", **settings)
    try:
        with run_server(env, tmp_path / "a") as first, run_server(env, tmp_path / "b") as second:
            yield first, second
    finally:
        if schema is not None:
            drop_pg_schema(request.getfixturevalue("pg_dsn"), schema)


async def _first_messages(urls: list[str], headers: dict[str, str], tag: str) -> list[Any]:
    clients = [httpx.AsyncClient(base_url=url, timeout=60) for url in urls]
    try:
        posts = [
            clients[i % len(clients)].post(
                f"{CONTEXT}/messages",
                headers=headers,
                json={"session_id": f"{tag}-{i}", "role": "user", "content": f"hello {i}"},
            )
            for i in range(ATTEMPTS)
        ]
        return list(await asyncio.gather(*posts))
    finally:
        for client in clients:
            await client.aclose()


def test_concurrent_first_messages_never_exceed_the_quota(
    two_servers: tuple[Server, Server],
) -> None:
    first, second = two_servers
    alice = bearer("alice", "user")
    responses = asyncio.run(_first_messages([first.url, second.url], alice, "race"))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == QUOTA, statuses
    refused = [r for r in responses if r.status_code != 201]
    assert {r.status_code for r in refused} == {403}
    assert {r.json()["error"]["type"] for r in refused} == {"session_limit_exceeded"}
    # Both processes see exactly QUOTA sessions of alice, each with its one message.
    created = [r.json()["session_id"] for r in responses if r.status_code == 201]
    for server in (first, second):
        for sid in created:
            stats = server.client.get(f"{CONTEXT}/{sid}/stats", headers=alice)
            assert stats.status_code == 200
            assert stats.json()["message_count"] == 1
    refused_ids = [f"race-{i}" for i, r in enumerate(responses) if r.status_code != 201]
    for sid in refused_ids:  # a refused first message leaves no session behind
        assert first.client.get(f"{CONTEXT}/{sid}", headers=alice).status_code == 404
    # Another USER has its own quota; an ADMIN has none.
    bob = asyncio.run(_first_messages([first.url, second.url], bearer("bob", "user"), "bob"))
    assert [r.status_code for r in bob].count(201) == QUOTA
    root = asyncio.run(_first_messages([first.url, second.url], bearer("root", "admin"), "adm"))
    assert {r.status_code for r in root} == {201}
