"""Verified bearer tokens are remembered briefly (by their SHA-256) so a client sending the same
token on every request pays for the signature check once; never past the token's expiry, and a
bad token is checked (and refused) every time."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
from pydantic import SecretStr

from relay_context.config.settings import Environment, Settings
from relay_context.errors import AuthenticationError
from relay_context.security import auth as auth_module
from relay_context.security.auth import AuthService, UserRole

SECRET = "token-cache-secret-0123456789abcdef-0123456789"


def service(tmp_path: Path, leeway: int = 0) -> AuthService:
    return AuthService(
        Settings(
            environment=Environment.TESTING,
            secret_key=SecretStr(SECRET),
            data_dir=tmp_path,
            jwt_leeway_seconds=leeway,
        )
    )


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts the signature checks (calls of PyJWT's decode)."""
    calls: list[str] = []
    real = jwt.decode

    def counting(token: str, *args: object, **kwargs: object) -> object:
        calls.append(token)
        return real(token, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(jwt, "decode", counting)
    return calls


def test_a_verified_token_is_checked_once(tmp_path: Path, decodes: list[str]) -> None:
    auth = service(tmp_path)
    token = auth.create_access_token("alice", UserRole.USER)
    first = auth.verify_token(token)
    assert auth.verify_token(token) == first
    assert auth.principal_from_token(token).id == "alice"
    assert len(decodes) == 1
    other = auth.create_access_token("bob", UserRole.VIEWER)
    assert auth.verify_token(other).sub == "bob"
    assert len(decodes) == 2


def test_bad_tokens_are_refused_every_time(tmp_path: Path, decodes: list[str]) -> None:
    auth = service(tmp_path)
    token = auth.create_access_token("alice", UserRole.USER)
    auth.verify_token(token)
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for _ in range(2):
        with pytest.raises(AuthenticationError, match="signature"):
            auth.verify_token(tampered)
    assert len(decodes) == 3
    # Another service (another secret) never sees this one's remembered tokens.
    other = AuthService(
        Settings(environment=Environment.TESTING, secret_key=SecretStr("x" * 40), data_dir=tmp_path)
    )
    with pytest.raises(AuthenticationError):
        other.verify_token(token)


def test_a_remembered_token_still_expires(tmp_path: Path) -> None:
    auth = service(tmp_path, leeway=0)
    token = auth.create_access_token("alice", UserRole.USER, expires_delta=timedelta(seconds=2))
    assert auth.verify_token(token).sub == "alice"
    exp = jwt.decode(token, options={"verify_signature": False})["exp"]
    while time.time() < exp + 0.2:
        time.sleep(0.1)
    with pytest.raises(AuthenticationError, match="expired"):
        auth.verify_token(token)


def test_the_cache_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auth_module, "VERIFIED_TOKEN_CACHE_ENTRIES", 3)
    auth = service(tmp_path)
    tokens = [auth.create_access_token(f"u{i}", UserRole.USER) for i in range(5)]
    for token in tokens:
        auth.verify_token(token)
    assert len(auth._verified) == 3
    assert [auth.verify_token(t).sub for t in tokens] == [f"u{i}" for i in range(5)]
