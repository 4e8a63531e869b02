"""The access helpers the context routes build on: roles, ownership (404, not 403), quotas."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from relay_context.config.settings import Settings
from relay_context.errors import (
    PermissionDeniedError,
    SessionLimitExceededError,
    SessionNotFoundError,
)
from relay_context.security.auth import Principal, UserRole
from relay_context.service.app import build_state
from relay_context.service.deps import require_write, session_quota, visible_session
from relay_context.service.errors import error_type, status_for
from relay_context.service.state import ServiceState

ALICE = Principal("alice", UserRole.USER, "jwt")
BOB = Principal("bob", UserRole.USER, "api_key", key_id="key_b")
ADMIN = Principal("root", UserRole.ADMIN, "jwt")
VIEWER = Principal("alice", UserRole.VIEWER, "jwt")


@pytest.fixture
async def state(tmp_path: Path) -> AsyncIterator[ServiceState]:
    settings = Settings(data_dir=tmp_path, secret_key=SecretStr("s" * 40), max_sessions_per_user=2)
    built = build_state(settings)
    await built.store.open()
    try:
        yield built
    finally:
        await built.close()


async def test_another_principals_session_is_not_found(state: ServiceState) -> None:
    await state.store.create_session("alice-1", "alice")
    session = await state.store.get_session("alice-1")
    assert visible_session(ALICE, session, "alice-1") is session
    assert visible_session(ADMIN, session, "alice-1") is session
    assert visible_session(VIEWER, session, "alice-1") is session  # same principal id, reads
    with pytest.raises(SessionNotFoundError, match="alice-1") as denied:
        visible_session(BOB, session, "alice-1")
    with pytest.raises(SessionNotFoundError, match="missing") as missing:
        visible_session(BOB, await state.store.get_session("missing"), "missing")
    # Indistinguishable on the wire: same status, same type.
    assert status_for(denied.value) == status_for(missing.value) == 404
    assert error_type(denied.value) == error_type(missing.value) == "session_not_found"


def test_viewers_only_read() -> None:
    require_write(ALICE)
    require_write(ADMIN)
    with pytest.raises(PermissionDeniedError, match="read-only"):
        require_write(VIEWER)


async def test_session_quota_applies_to_users_only(state: ServiceState) -> None:
    async def create(session_id: str, principal: Principal) -> None:
        # As the context routes create sessions: the quota is checked with the insert.
        await state.store.ensure_session(
            session_id, principal.id, max_owned=session_quota(state, principal)
        )

    await create("a1", ALICE)
    await create("a2", ALICE)
    with pytest.raises(SessionLimitExceededError, match="limit 2"):
        await create("a3", ALICE)
    assert await state.store.get_session("a3") is None
    await create("a1", ALICE)  # an existing session is no new one
    await create("b1", BOB)  # per principal
    for n in range(3):
        await create(f"r{n}", ADMIN)  # admins are not limited
    assert status_for(SessionLimitExceededError("x")) == 403
