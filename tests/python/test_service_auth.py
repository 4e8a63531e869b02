"""Authentication and roles, end to end against ``relay serve`` on embedded defaults."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import SecretStr

from relay_context.config.settings import Environment, Settings
from relay_context.errors import AuthenticationError
from relay_context.security.auth import AuthService, Principal, UserRole, api_key_lookup
from service_support import (
    TEST_SECRET,
    Server,
    assert_error,
    create_key,
    relay_cli,
    run_server,
    service_env,
)

# HS512 with a 43-byte key is one of the rejected cases; PyJWT warns while forging it.
pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("auth")
    with run_server(service_env(data / "state"), data) as running:
        yield running


@pytest.fixture(scope="module")
def auth() -> AuthService:
    return AuthService(Settings(environment=Environment.TESTING, secret_key=SecretStr(TEST_SECRET)))


@pytest.fixture(scope="module")
def admin_key(server: Server) -> str:
    key: str = create_key(server.env, "admin", owner="root")["key"]
    return key


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# --- JWT -----------------------------------------------------------------------------------


def test_a_valid_admin_token_is_accepted(server: Server, auth: AuthService) -> None:
    token = auth.create_access_token("alice", UserRole.ADMIN)
    response = server.client.get("/api/v1/keys", headers=bearer(token))
    assert response.status_code == 200, response.text
    assert isinstance(response.json(), list)


def _claims(auth: AuthService, **overrides: Any) -> dict[str, Any]:
    payload = jwt.decode(
        auth.create_access_token("alice", UserRole.ADMIN),
        options={"verify_signature": False},
    )
    payload.update(overrides)
    return payload


def _bad_tokens(auth: AuthService) -> dict[str, str]:
    good = auth.create_access_token("alice", UserRole.ADMIN)
    header, payload, signature = good.split(".")
    tampered = b64({**_claims(auth), "sub": "mallory"})
    return {
        "alg none": jwt.encode(_claims(auth), None, algorithm="none"),
        "unsigned": f"{b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "wrong key": jwt.encode(_claims(auth), "another-secret-" * 4, algorithm="HS256"),
        "expired": auth.create_access_token(
            "alice", UserRole.ADMIN, expires_delta=timedelta(minutes=-5)
        ),
        "wrong audience": jwt.encode(_claims(auth, aud="someone-else"), TEST_SECRET, "HS256"),
        "wrong issuer": jwt.encode(_claims(auth, iss="evil-issuer"), TEST_SECRET, "HS256"),
        "no expiry": jwt.encode(
            {k: v for k, v in _claims(auth).items() if k != "exp"}, TEST_SECRET, "HS256"
        ),
        "unknown role": jwt.encode(_claims(auth, role="superuser"), TEST_SECRET, "HS256"),
        "tampered payload": f"{header}.{tampered}.{signature}",
        "garbage": "not-a-jwt",
        "HS512 with the right key": jwt.encode(_claims(auth), TEST_SECRET, "HS512"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "alg none",
        "unsigned",
        "wrong key",
        "expired",
        "wrong audience",
        "wrong issuer",
        "no expiry",
        "unknown role",
        "tampered payload",
        "garbage",
        "HS512 with the right key",
    ],
)
def test_bad_tokens_are_rejected_with_401(server: Server, auth: AuthService, case: str) -> None:
    token = _bad_tokens(auth)[case]
    error = assert_error(
        server.client.get("/api/v1/keys", headers=bearer(token)), 401, "authentication"
    )
    assert "token" in error["message"]


def test_401_names_the_scheme(server: Server) -> None:
    response = server.client.get("/api/v1/keys")
    assert_error(response, 401, "authentication")
    assert response.headers["www-authenticate"] == "Bearer"
    assert_error(
        server.client.get("/api/v1/keys", headers={"Authorization": "Basic YTpi"}),
        401,
        "authentication",
    )


def test_verify_token_messages_say_why(auth: AuthService) -> None:
    bad = _bad_tokens(auth)
    for case, pattern in [
        ("expired", "expired"),
        ("wrong audience", "audience"),
        ("wrong issuer", "issuer"),
        ("wrong key", "signature"),
    ]:
        with pytest.raises(AuthenticationError, match=pattern):
            auth.verify_token(bad[case])


def test_rs256_tokens_and_algorithm_confusion(tmp_path: Any) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    (tmp_path / "public.pem").write_text(public_pem)
    signer = AuthService(
        Settings(jwt_algorithm="RS256", jwt_private_key=SecretStr(pem), data_dir=tmp_path)
    )
    verifier = AuthService(
        Settings(
            jwt_algorithm="RS256", jwt_public_key=str(tmp_path / "public.pem"), data_dir=tmp_path
        )
    )
    token = signer.create_access_token("bob", UserRole.VIEWER)
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    payload = verifier.verify_token(token)
    assert (payload.sub, payload.role) == ("bob", UserRole.VIEWER)
    # An HS256 token whose "secret" is the public key (the classic algorithm confusion),
    # forged by hand since PyJWT refuses to make one.
    claims = jwt.decode(token, options={"verify_signature": False})
    signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(claims)}"
    mac = hmac.new(public_pem.encode(), signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    with pytest.raises(AuthenticationError, match="algorithm"):
        verifier.verify_token(forged)
    with pytest.raises(Exception, match="only verifies"):
        verifier.create_access_token("bob", UserRole.USER)


# --- API keys ------------------------------------------------------------------------------


def test_api_key_roles_on_the_admin_endpoints(server: Server, admin_key: str) -> None:
    as_admin = {"X-API-Key": admin_key}
    created = server.client.post(
        "/api/v1/keys", headers=as_admin, json={"role": "user", "name": "ci", "owner": "carol"}
    )
    assert created.status_code == 201, created.text
    user_key = created.json()
    assert user_key["key"].startswith("relay_")
    assert user_key["prefix"] == api_key_lookup(user_key["key"])
    assert (user_key["role"], user_key["owner"], user_key["name"]) == ("user", "carol", "ci")

    viewer_key = server.client.post(
        "/api/v1/keys", headers=as_admin, json={"role": "viewer"}
    ).json()
    for key in (user_key["key"], viewer_key["key"]):
        headers = {"X-API-Key": key}
        assert_error(server.client.get("/api/v1/keys", headers=headers), 403, "permission_denied")
        assert_error(
            server.client.post("/api/v1/keys", headers=headers, json={"role": "admin"}),
            403,
            "permission_denied",
        )
        assert_error(
            server.client.delete(f"/api/v1/keys/{user_key['id']}", headers=headers),
            403,
            "permission_denied",
        )

    listing = server.client.get("/api/v1/keys", headers=as_admin).json()
    assert {user_key["id"], viewer_key["id"]} <= {k["id"] for k in listing}
    assert all("key" not in k and "key_hash" not in k for k in listing)
    used = next(k for k in listing if k["id"] == user_key["id"])
    assert used["last_used_at"] is not None


def test_unknown_revoked_and_malformed_keys_get_401(server: Server, admin_key: str) -> None:
    as_admin = {"X-API-Key": admin_key}
    created = server.client.post("/api/v1/keys", headers=as_admin, json={"role": "admin"}).json()
    key = created["key"]
    assert server.client.get("/api/v1/keys", headers={"X-API-Key": key}).status_code == 200

    revoked = server.client.delete(f"/api/v1/keys/{created['id']}", headers=as_admin)
    assert revoked.status_code == 200
    assert revoked.json()["revoked_at"] is not None
    error = assert_error(
        server.client.get("/api/v1/keys", headers={"X-API-Key": key}), 401, "authentication"
    )
    assert "revoked" in error["message"]

    # Same prefix, different secret: found by prefix, refused by the hash.
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    unknown = "relay_" + "x" * 43
    for bad in (forged, unknown, "relay_short", "sk-" + "a" * 40, key + "=", ""):
        assert_error(
            server.client.get("/api/v1/keys", headers={"X-API-Key": bad}), 401, "authentication"
        )
    assert_error(
        server.client.delete("/api/v1/keys/key_nope", headers=as_admin), 404, "api_key_not_found"
    )


def test_the_database_holds_only_hashes(server: Server, admin_key: str) -> None:
    import sqlite3

    db = sqlite3.connect(f"{server.env['DATA_DIR']}/relay.db")
    try:
        rows = db.execute("SELECT lookup, key_hash FROM relay_api_keys").fetchall()
    finally:
        db.close()
    assert rows
    dump = repr(rows)
    assert admin_key not in dump
    assert admin_key[len("relay_") + 8 :] not in dump
    assert all(len(h) == 64 for _, h in rows)


def test_cli_keys_create_list_revoke(server: Server) -> None:
    env = server.env
    created = create_key(env, "viewer", owner="dave")
    listed = json.loads(relay_cli(env, "keys", "list", "--json").stdout)
    assert created["id"] in {k["id"] for k in listed}
    assert server.client.get("/health", headers={"X-API-Key": created["key"]}).status_code == 200
    out = relay_cli(env, "keys", "revoke", created["id"]).stdout
    assert created["id"] in out
    active = json.loads(relay_cli(env, "keys", "list", "--json").stdout)
    assert created["id"] not in {k["id"] for k in active}
    everything = json.loads(relay_cli(env, "keys", "list", "--all", "--json").stdout)
    assert created["id"] in {k["id"] for k in everything}
    missing = relay_cli(env, "keys", "revoke", "key_missing", check=False)
    assert missing.returncode != 0
    assert "no API key" in missing.stderr
    for sub in ("create", "list", "revoke"):
        assert "Usage" in relay_cli(env, "keys", sub, "--help").stdout
    assert "--port" in relay_cli(env, "serve", "--help").stdout


def test_principal_helpers() -> None:
    viewer = Principal("v", UserRole.VIEWER, "jwt")
    user = Principal("u", UserRole.USER, "api_key", key_id="key_1")
    admin = Principal("a", UserRole.ADMIN, "jwt")
    assert not viewer.can_write
    assert user.can_write
    assert admin.can_write
    assert user.can_access("u")
    assert not user.can_access("v")
    assert admin.can_access("anyone")


def test_cli_token_is_accepted_by_the_server(server: Server) -> None:
    issued = relay_cli(server.env, "token", "erin", "--role", "admin", "--minutes", "5")
    headers = bearer(issued.stdout.strip())
    assert server.client.get("/api/v1/keys", headers=headers).status_code == 200
    viewer = relay_cli(server.env, "token", "erin", "--role", "viewer").stdout.strip()
    assert_error(
        server.client.get("/api/v1/keys", headers=bearer(viewer)), 403, "permission_denied"
    )
    assert "USER_ID" in relay_cli(server.env, "token", "--help").stdout


def test_cli_role_names_are_the_roles() -> None:
    from relay_context.cli.keys import ROLE_NAMES

    assert tuple(r.value for r in UserRole) == ROLE_NAMES
