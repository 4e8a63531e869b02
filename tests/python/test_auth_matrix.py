"""Who may do what on the gateway and handoff routes of a real ``relay serve`` (keys mode): every
role (API keys and JWTs) by every route, every kind of bad credential on every route, and one
tenant against another's resources. (The context API's matrix is in test_service_auth.py and
test_service_context_roles.py.)"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from pydantic import SecretStr

from fake_upstream import FakeUpstream, serve_in_thread
from gateway_support import UPSTREAM_KEY
from relay_context.config.settings import Environment, Settings
from relay_context.security.auth import AuthService, UserRole
from service_support import TEST_SECRET, Server, create_key, relay_cli, run_server, service_env

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
MESSAGES = {
    "model": "claude-haiku-4-5",
    "max_tokens": 8,
    "messages": [{"role": "user", "content": "hi"}],
}


class Rig:
    def __init__(self, server: Server, keys: dict[str, dict[str, Any]], auth: AuthService) -> None:
        self.server = server
        self.keys = keys
        self.auth = auth
        self.client = httpx.Client(base_url=server.url, timeout=30)

    def headers(self, credential: str | None) -> dict[str, str]:
        if credential is None:
            return {}
        if not credential.startswith("relay_"):  # a JWT (or garbage) goes as a bearer token
            return {"authorization": f"Bearer {credential}"}
        return {"authorization": f"Bearer {credential}", "x-api-key": credential}

    def pushed_by(self, role: str) -> str:
        """A payload id pushed with that role's key (for the read routes)."""
        response = self.client.post(
            "/push", json={"data": f"from {role}"}, headers=self.headers(self.keys[role]["key"])
        )
        assert response.status_code == 200, response.text
        return str(response.json()["id"])


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    tmp: Path = tmp_path_factory.mktemp("matrix")
    with serve_in_thread(FakeUpstream(required_key=UPSTREAM_KEY)) as upstream:
        env = service_env(
            tmp / "data",
            OPENAI_BASE_URL=upstream + "/v1",
            OPENAI_API_KEY=UPSTREAM_KEY,
            ANTHROPIC_BASE_URL=upstream,
            ANTHROPIC_API_KEY=UPSTREAM_KEY,
            RATE_LIMIT_REQUESTS="100000",
        )
        keys = {
            "admin": create_key(env, "admin", owner="root"),
            "user": create_key(env, "user", owner="alice"),
            "other": create_key(env, "user", owner="bob"),
            "viewer": create_key(env, "viewer", owner="carol"),
            "revoked": create_key(env, "user", owner="dave"),
        }
        relay_cli(env, "keys", "revoke", keys["revoked"]["id"])
        auth = AuthService(
            Settings(environment=Environment.TESTING, secret_key=SecretStr(TEST_SECRET))
        )
        with run_server(env, tmp / "logs") as server:
            rig = Rig(server, keys, auth)
            yield rig
            rig.client.close()


def _route(rig: Rig, name: str, credential: str | None) -> httpx.Response:
    """One request of each route, with ``credential`` (None: none at all)."""
    h = rig.headers(credential)
    c = rig.client
    if name == "chat":
        return c.post("/v1/chat/completions", json=CHAT, headers=h)
    if name == "messages":
        return c.post("/v1/messages", json=MESSAGES, headers=h)
    if name == "count_tokens":
        return c.post("/v1/messages/count_tokens", json={**MESSAGES, "model": "gpt-4o"}, headers=h)
    if name == "embeddings":
        body = {"model": "text-embedding-3-small", "input": "hi"}
        return c.post("/v1/embeddings", json=body, headers=h)
    if name == "responses":
        return c.post("/v1/responses", json={"model": "gpt-4o-mini", "input": "hi"}, headers=h)
    if name == "models":
        return c.get("/v1/models", headers=h)
    if name == "usage":
        return c.get("/api/v1/gateway/usage?group_by=key", headers={"X-API-Key": credential or ""})
    if name == "stats":
        return c.get("/api/v1/gateway/stats", headers={"X-API-Key": credential or ""})
    if name == "key_limits":
        target = rig.keys["user"]["id"]
        return c.get(
            f"/api/v1/gateway/keys/{target}/limits", headers={"X-API-Key": credential or ""}
        )
    if name == "push":
        return c.post("/push", json={"data": "x"}, headers=h)
    if name == "api_push":
        return c.post("/api/v1/handoff", content=b"x", headers=h)
    if name == "publish":
        return c.post("/publish/matrix", json={"message": "m"}, headers=h)
    if name in ("pull", "peek", "info"):
        payload = rig.pushed_by("admin")
        path = {"pull": "/pull/", "peek": "/peek/", "info": "/api/v1/handoff/"}[name] + payload
        return c.get(path + ("/info" if name == "info" else ""), headers=h)
    if name == "handoff_stats":
        return c.get("/api/v1/handoff/stats", headers=h)
    raise AssertionError(name)


GATEWAY_CALLS = ["chat", "messages", "count_tokens", "embeddings", "responses"]
HANDOFF_WRITES = ["push", "api_push", "publish"]
HANDOFF_READS = ["pull", "peek", "info"]
ADMIN_ONLY = ["stats", "key_limits"]
ROUTES = [*GATEWAY_CALLS, "models", "usage", *ADMIN_ONLY, *HANDOFF_WRITES, *HANDOFF_READS]

#: role -> route -> expected status.
EXPECTED: dict[str, dict[str, int]] = {
    "admin": dict.fromkeys(ROUTES, 200),
    "user": {**dict.fromkeys(ROUTES, 200), **dict.fromkeys(ADMIN_ONLY, 403)},
    "viewer": {
        **dict.fromkeys(ROUTES, 200),
        **dict.fromkeys(GATEWAY_CALLS, 403),
        **dict.fromkeys(HANDOFF_WRITES, 403),
        **dict.fromkeys(ADMIN_ONLY, 403),
    },
}
#: Routes whose success is a 201 rather than a 200.
CREATED = {"api_push"}


def _shape_of(route: str) -> str:
    if route in ("messages", "count_tokens"):
        return "anthropic"
    if route in (*GATEWAY_CALLS, "models"):
        return "openai"
    return "relay"


def _assert_refused(response: httpx.Response, status: int, route: str) -> None:
    assert response.status_code == status, (route, response.status_code, response.text[:300])
    body = response.json()
    shape = _shape_of(route)
    if shape == "anthropic":
        assert body["type"] == "error"
        assert body["error"]["message"]
    elif shape == "openai":
        assert body["error"]["message"]
        assert body["error"]["type"]
    else:
        assert set(body) == {"error"}
        assert body["error"]["message"]


CASES = [(role, route) for role in EXPECTED for route in ROUTES]


@pytest.mark.parametrize(("role", "route"), CASES, ids=[f"{r}-{t}" for r, t in CASES])
@pytest.mark.parametrize("as_jwt", [False, True], ids=["api-key", "jwt"])
def test_every_role_on_every_route(rig: Rig, role: str, route: str, as_jwt: bool) -> None:
    key = rig.keys[role]
    credential = (
        rig.auth.create_access_token(key["owner"], UserRole(role)) if as_jwt else key["key"]
    )
    if route in ("usage", "stats", "key_limits") and as_jwt:
        # The service's own APIs take a JWT as a bearer token.
        response = rig.client.get(
            {
                "usage": "/api/v1/gateway/usage?group_by=key",
                "stats": "/api/v1/gateway/stats",
                "key_limits": f"/api/v1/gateway/keys/{rig.keys['user']['id']}/limits",
            }[route],
            headers={"authorization": f"Bearer {credential}"},
        )
    else:
        response = _route(rig, route, credential)
    expected = EXPECTED[role][route]
    if expected == 200 and route in CREATED:
        expected = 201
    if expected < 400:
        assert response.status_code == expected, (response.status_code, response.text[:300])
    else:
        _assert_refused(response, expected, route)


def _b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _bad_credentials(rig: Rig) -> dict[str, str]:
    good = rig.auth.create_access_token("alice", UserRole.ADMIN)
    claims = jwt.decode(good, options={"verify_signature": False})
    header, _, signature = good.split(".")
    return {
        "alg none": jwt.encode(claims, None, algorithm="none"),
        "forged signature": jwt.encode(claims, "another-secret-" * 4, algorithm="HS256"),
        "tampered payload": f"{header}.{_b64({**claims, 'role': 'admin', 'sub': 'mallory'})}."
        + signature,
        "expired": rig.auth.create_access_token(
            "alice", UserRole.ADMIN, expires_delta=timedelta(minutes=-5)
        ),
        "wrong audience": jwt.encode({**claims, "aud": "someone-else"}, TEST_SECRET, "HS256"),
        "revoked key": rig.keys["revoked"]["key"],
        "unknown key": "relay_" + "A" * 43,
        "malformed key": "relay_!!",
        "garbage": "not-a-credential",
    }


BAD = [
    "alg none",
    "forged signature",
    "tampered payload",
    "expired",
    "wrong audience",
    "revoked key",
    "unknown key",
    "malformed key",
    "garbage",
]
NEEDS_CREDENTIAL = [r for r in ROUTES if r not in ("usage", "stats", "key_limits")]


@pytest.mark.parametrize("route", NEEDS_CREDENTIAL)
@pytest.mark.parametrize("case", [None, *BAD], ids=["none", *BAD])
def test_every_bad_credential_is_a_401_on_every_route(
    rig: Rig, route: str, case: str | None
) -> None:
    credential = None if case is None else _bad_credentials(rig)[case]
    if route in HANDOFF_READS:
        payload = rig.pushed_by("admin")
        path = {"pull": "/pull/", "peek": "/peek/", "info": "/api/v1/handoff/"}[route] + payload
        response = rig.client.get(
            path + ("/info" if route == "info" else ""), headers=rig.headers(credential)
        )
    else:
        response = _route(rig, route, credential)
    _assert_refused(response, 401, route)


@pytest.mark.parametrize("case", [None, *BAD], ids=["none", *BAD])
def test_bad_credentials_on_the_service_apis(rig: Rig, case: str | None) -> None:
    credential = None if case is None else _bad_credentials(rig)[case]
    headers = {} if credential is None else {"authorization": f"Bearer {credential}"}
    if credential is not None and credential.startswith("relay_"):
        headers = {"X-API-Key": credential}
    for path in ("/api/v1/gateway/usage", "/api/v1/gateway/stats", "/api/v1/handoff/stats"):
        _assert_refused(rig.client.get(path, headers=headers), 401, "usage")


def test_a_tenant_sees_only_its_own_usage(rig: Rig) -> None:
    for role in ("user", "other"):
        assert _route(rig, "chat", rig.keys[role]["key"]).status_code == 200
    own = rig.client.get(
        "/api/v1/gateway/usage?group_by=key", headers={"X-API-Key": rig.keys["user"]["key"]}
    )
    assert own.status_code == 200, own.text
    rows = own.json()["data"]
    assert rows
    # Rows are keyed by the principal: an API key's owner.
    assert {row["key"] for row in rows} == {"alice"}, rows
    everyone = rig.client.get(
        "/api/v1/gateway/usage?group_by=key", headers={"X-API-Key": rig.keys["admin"]["key"]}
    )
    assert {"alice", "bob"} <= {row["key"] for row in everyone.json()["data"]}


def test_a_tenant_cannot_delete_anothers_payload_but_the_pointer_reads(rig: Rig) -> None:
    payload = rig.pushed_by("other")
    mine = rig.headers(rig.keys["user"]["key"])
    refused = rig.client.delete(f"/api/v1/handoff/{payload}", headers=mine)
    _assert_refused(refused, 404, "info")  # not 403: no hint that the id exists
    # The pointer is the capability: whoever holds it reads it.
    assert rig.client.get(f"/pull/{payload}", headers=mine).status_code == 200
    owner = rig.headers(rig.keys["other"]["key"])
    assert rig.client.delete(f"/api/v1/handoff/{payload}", headers=owner).status_code == 204
    _assert_refused(rig.client.get(f"/pull/{payload}", headers=owner), 404, "pull")
