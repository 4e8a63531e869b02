"""Every role against every context route (and the dashboard's data), and the per-principal rate
limit, end to end against ``relay serve`` on embedded defaults.

The session under test belongs to ``alice`` (a USER). The VIEWER here is ``alice`` too (a
read-only credential for the same principal, as an API key with ``--owner alice`` would be); the
other user is ``bob``. Another principal's session is a 404 — the same answer as a session that
does not exist — so nobody learns which ids are in use.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import httpx
import pytest

from context_service_support import CONTEXT, bearer, post_message
from service_support import Server, assert_error, create_key, run_server, service_env

PRINCIPALS: dict[str, dict[str, str]] = {
    "admin": bearer("root", "admin"),
    "owner": bearer("alice", "user"),
    "viewer": bearer("alice", "viewer"),
    "other_user": bearer("bob", "user"),
    "other_viewer": bearer("bob", "viewer"),
    "no_auth": {},
}
ENDPOINTS = ("post_message", "get_context", "get_stats", "stream", "delete")
#: (principal, endpoint) -> (status, error type or None)
EXPECTED: dict[tuple[str, str], tuple[int, str | None]] = {}
for endpoint in ENDPOINTS:
    ok = {"post_message": 201, "delete": 204}.get(endpoint, 200)
    writes = endpoint in ("post_message", "delete")
    EXPECTED["admin", endpoint] = (ok, None)
    EXPECTED["owner", endpoint] = (ok, None)
    EXPECTED["viewer", endpoint] = (403, "permission_denied") if writes else (ok, None)
    EXPECTED["other_user", endpoint] = (404, "session_not_found")
    EXPECTED["other_viewer", endpoint] = (
        (403, "permission_denied") if writes else (404, "session_not_found")
    )
    EXPECTED["no_auth", endpoint] = (401, "authentication")

_counter = itertools.count()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("roles")
    env = service_env(data / "state", rate_limit_requests="10000")
    with run_server(env, data) as running:
        yield running


def _call(client: httpx.Client, endpoint: str, sid: str, headers: dict[str, str]) -> httpx.Response:
    if endpoint == "post_message":
        return post_message(client, headers, sid, "Another question, please.")
    if endpoint == "get_context":
        return client.get(f"{CONTEXT}/{sid}", headers=headers)
    if endpoint == "get_stats":
        return client.get(f"{CONTEXT}/{sid}/stats", headers=headers)
    if endpoint == "delete":
        return client.delete(f"{CONTEXT}/{sid}", headers=headers)
    with client.stream("GET", f"{CONTEXT}/{sid}/stream", headers=headers) as response:
        if response.status_code == 200:
            assert response.headers["content-type"].startswith("text/event-stream")
            first = next(response.iter_lines())
            assert first.startswith("retry:")
        else:
            response.read()
        return response


@pytest.mark.parametrize(("who", "endpoint"), sorted(EXPECTED))
def test_role_matrix(server: Server, who: str, endpoint: str) -> None:
    c = server.client
    sid = f"alice-{next(_counter)}"
    owner = PRINCIPALS["owner"]
    assert post_message(c, owner, sid, "You are terse.", role="system").status_code == 201
    assert post_message(c, owner, sid, "Hello!").status_code == 201
    status, kind = EXPECTED[who, endpoint]
    response = _call(c, endpoint, sid, PRINCIPALS[who])
    if kind is None:
        assert response.status_code == status, response.text
    else:
        error = assert_error(response, status, kind)
        if status == 404:  # the same words as for a session that does not exist
            assert error["message"] == f"no live session {sid!r}"
        if status == 401:
            assert response.headers["www-authenticate"].startswith("Bearer")
    # Nothing changed behind a refusal; the owner still sees the two messages (or none after
    # an allowed delete).
    stats = c.get(f"{CONTEXT}/{sid}/stats", headers=owner)
    if endpoint == "delete" and kind is None:
        assert stats.status_code == 404
    else:
        expected = 3 if endpoint == "post_message" and kind is None else 2
        assert stats.json()["message_count"] == expected


def test_a_session_id_taken_by_another_principal_is_404_on_write(server: Server) -> None:
    c = server.client
    assert post_message(c, PRINCIPALS["owner"], "taken", "mine").status_code == 201
    refused = post_message(c, PRINCIPALS["other_user"], "taken", "let me in")
    assert_error(refused, 404, "session_not_found")


def test_api_key_owner_shares_sessions_across_roles(server: Server) -> None:
    writer = {"X-API-Key": create_key(server.env, "user", owner="team-a")["key"]}
    reader = {"X-API-Key": create_key(server.env, "viewer", owner="team-a")["key"]}
    outsider = {"X-API-Key": create_key(server.env, "viewer", owner="team-b")["key"]}
    c = server.client
    assert post_message(c, writer, "team-session", "Plan the sprint.").status_code == 201
    assert c.get(f"{CONTEXT}/team-session", headers=reader).status_code == 200
    assert_error(post_message(c, reader, "team-session", "no"), 403, "permission_denied")
    assert_error(c.get(f"{CONTEXT}/team-session", headers=outsider), 404, "session_not_found")


@pytest.mark.parametrize(
    ("who", "status"),
    [("admin", 200), ("owner", 403), ("viewer", 403), ("other_user", 403), ("no_auth", 401)],
)
def test_dashboard_data_is_admin_only(server: Server, who: str, status: int) -> None:
    c = server.client
    snap = c.get("/api/v1/dashboard/snapshot", headers=PRINCIPALS[who])
    assert snap.status_code == status, snap.text
    with c.stream("GET", "/api/v1/dashboard/stream", headers=PRINCIPALS[who]) as response:
        assert response.status_code == status
        if status == 200:
            assert next(response.iter_lines()).startswith("id: 1")
    page = c.get("/dashboard", headers=PRINCIPALS[who])  # the page holds no data
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]


# --- rate limits ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("limited")
    env = service_env(data / "state", rate_limit_requests="4", rate_limit_window_seconds="3600")
    with run_server(env, data) as running:
        yield running


Call = Callable[[httpx.Client, dict[str, str]], httpx.Response]
ROUTES: dict[str, Call] = {
    "post_message": lambda c, h: post_message(c, h, "limited", "hi"),
    "get_context": lambda c, h: c.get(f"{CONTEXT}/limited", headers=h),
    "get_stats": lambda c, h: c.get(f"{CONTEXT}/limited/stats", headers=h),
    "stream": lambda c, h: c.get(f"{CONTEXT}/limited/stream", headers=h, params={"after": "x"}),
    "delete": lambda c, h: c.delete(f"{CONTEXT}/limited-none", headers=h),
}


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_every_route_is_rate_limited_per_principal(limited: Server, route: str) -> None:
    c = limited.client
    me = bearer(f"limited-{route}", "admin")
    answers = [ROUTES[route](c, me) for _ in range(5)]
    assert all(a.status_code != 429 for a in answers[:4]), [a.status_code for a in answers]
    assert [a.headers["x-ratelimit-remaining"] for a in answers[:4]] == ["3", "2", "1", "0"]
    refused = answers[4]
    error = assert_error(refused, 429, "rate_limit_exceeded")
    assert "4 requests" in error["message"]
    assert int(refused.headers["retry-after"]) > 0
    assert refused.headers["x-ratelimit-remaining"] == "0"
    # Another principal has its own window.
    other = bearer(f"other-{route}", "admin")
    assert ROUTES[route](c, other).status_code != 429
