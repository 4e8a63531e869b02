"""Who is calling: JWT bearer tokens, API keys, roles and the :class:`Principal` they yield.

>>> auth = AuthService(settings)
>>> token = auth.create_access_token("user-1", UserRole.USER)
>>> auth.verify_token(token).sub
'user-1'

Tokens are HS256 (``SECRET_KEY``) by default, or RS256 (``JWT_PRIVATE_KEY`` signs,
``JWT_PUBLIC_KEY`` verifies). Verification accepts exactly the configured algorithm (so neither
``alg: none`` nor an HS256 token signed with the RS256 public key passes) and checks the
signature, ``exp``, ``iat``, ``nbf``, ``iss`` and ``aud``.

API keys look like ``relay_<43 url-safe characters>`` (32 random bytes). Only their SHA-256 is
stored (see :mod:`relay_context.security.api_keys`); a key is found by its first characters
(its prefix) and then compared in constant time.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, RSAPublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from relay_context.config.settings import Settings
from relay_context.errors import AuthenticationError, InvalidArgumentError


class UserRole(str, enum.Enum):
    """ADMIN may do everything; USER reads and writes its own sessions; VIEWER only reads."""

    ADMIN = "admin"
    USER = "user"
    VIEWER = "viewer"


AuthMethod = Literal["jwt", "api_key"]


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. ``id`` owns the sessions it creates."""

    id: str
    role: UserRole
    method: AuthMethod
    #: The API key's id when ``method == "api_key"``.
    key_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is UserRole.ADMIN

    @property
    def can_read(self) -> bool:
        return True

    @property
    def can_write(self) -> bool:
        return self.role in (UserRole.ADMIN, UserRole.USER)

    def can_access(self, owner: str) -> bool:
        """Whether this principal may see a resource owned by ``owner`` (ADMIN sees all)."""
        return self.is_admin or hmac.compare_digest(self.id.encode(), owner.encode())


class TokenPayload(BaseModel):
    """The verified claims of an access token."""

    model_config = ConfigDict(extra="allow", frozen=True)

    sub: str = Field(min_length=1, max_length=256)
    role: UserRole
    exp: int
    iat: int
    iss: str
    aud: str | list[str]
    jti: str | None = None
    type: str = "access"

    @property
    def user_id(self) -> str:
        return self.sub


def _pem(value: str) -> bytes:
    """PEM text as is, else the contents of the file it names."""
    text = value.strip()
    if text.startswith("-----BEGIN"):
        return text.encode()
    path = Path(text).expanduser()
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidArgumentError(f"cannot read the JWT key file {path}: {exc}") from exc


#: How long a verified token is remembered (by its SHA-256), so that a client sending the same
#: bearer token on every request pays for the signature check once per this many seconds; never
#: past the token's own expiry. Only successes are remembered: a bad token is checked each time.
VERIFIED_TOKEN_CACHE_SECONDS = 30.0
#: Most verified tokens remembered (the oldest goes first).
VERIFIED_TOKEN_CACHE_ENTRIES = 10_000


class AuthService:
    """Issues and verifies access tokens with the algorithm and keys ``settings`` name."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        #: SHA-256 of a verified token -> (its claims, wall-clock time it may be reused until).
        self._verified: dict[bytes, tuple[TokenPayload, float]] = {}
        self.algorithm = settings.jwt_algorithm
        self._signing_key: str | RSAPrivateKey | None
        self._verifying_key: str | RSAPublicKey
        if self.algorithm == "HS256":
            secret = settings.resolved_secret_key().get_secret_value()
            self._signing_key = secret
            self._verifying_key = secret
        else:
            private: RSAPrivateKey | None = None
            if settings.jwt_private_key is not None:
                loaded = serialization.load_pem_private_key(
                    _pem(settings.jwt_private_key.get_secret_value()), password=None
                )
                if not isinstance(loaded, RSAPrivateKey):
                    raise InvalidArgumentError("JWT_PRIVATE_KEY must be an RSA private key")
                private = loaded
            if settings.jwt_public_key:
                public = serialization.load_pem_public_key(_pem(settings.jwt_public_key))
                if not isinstance(public, RSAPublicKey):
                    raise InvalidArgumentError("JWT_PUBLIC_KEY must be an RSA public key")
            elif private is not None:
                public = private.public_key()
            else:  # Settings already refuses this; kept for a clear message.
                raise InvalidArgumentError("RS256 needs JWT_PRIVATE_KEY or JWT_PUBLIC_KEY")
            self._signing_key = private
            self._verifying_key = public

    def create_access_token(
        self,
        user_id: str,
        role: UserRole,
        *,
        expires_delta: timedelta | None = None,
        extra_claims: dict[str, Any] | None = None,
    ) -> str:
        """A signed token for ``user_id`` with ``role``, valid for ``JWT_EXPIRATION_MINUTES``
        (or ``expires_delta``)."""
        if not isinstance(user_id, str) or not user_id or len(user_id) > 256:
            raise InvalidArgumentError(f"user_id must be 1-256 characters, got {user_id!r}")
        role = UserRole(role)
        if self._signing_key is None:
            raise InvalidArgumentError(
                "this service only verifies tokens: RS256 without JWT_PRIVATE_KEY cannot sign"
            )
        now = datetime.now(timezone.utc)
        lifetime = expires_delta or timedelta(minutes=self.settings.jwt_expiration_minutes)
        claims: dict[str, Any] = dict(extra_claims or {})
        claims.update(
            {
                "sub": user_id,
                "role": role.value,
                "iat": int(now.timestamp()),
                "nbf": int(now.timestamp()),
                "exp": int((now + lifetime).timestamp()),
                "iss": self.settings.jwt_issuer,
                "aud": self.settings.jwt_audience,
                "jti": uuid.uuid4().hex,
                "type": "access",
            }
        )
        return jwt.encode(claims, self._signing_key, algorithm=self.algorithm)

    def verify_token(self, token: str) -> TokenPayload:
        """The token's claims; :class:`AuthenticationError` saying why when it is not valid."""
        if not isinstance(token, str) or not token:
            raise AuthenticationError("empty bearer token")
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        now = time.time()
        remembered = self._verified.get(digest)
        if remembered is not None:
            if now < remembered[1]:
                return remembered[0]
            del self._verified[digest]
        payload = self._verify_token(token)
        # Valid until its expiry (plus the leeway jwt.decode grants), at most the cache period.
        until = min(
            now + VERIFIED_TOKEN_CACHE_SECONDS, payload.exp + self.settings.jwt_leeway_seconds
        )
        if until > now:
            if len(self._verified) >= VERIFIED_TOKEN_CACHE_ENTRIES:
                del self._verified[next(iter(self._verified))]
            self._verified[digest] = (payload, until)
        return payload

    def _verify_token(self, token: str) -> TokenPayload:
        try:
            claims = jwt.decode(
                token,
                self._verifying_key,
                algorithms=[self.algorithm],
                audience=self.settings.jwt_audience,
                issuer=self.settings.jwt_issuer,
                leeway=self.settings.jwt_leeway_seconds,
                options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthenticationError("the token has expired") from exc
        except jwt.InvalidAudienceError as exc:
            raise AuthenticationError("the token is for another audience") from exc
        except jwt.InvalidIssuerError as exc:
            raise AuthenticationError("the token has another issuer") from exc
        except jwt.InvalidAlgorithmError as exc:
            raise AuthenticationError(
                f"the token's algorithm is not the configured {self.algorithm}"
            ) from exc
        except jwt.InvalidSignatureError as exc:
            raise AuthenticationError("the token's signature does not match") from exc
        except jwt.PyJWTError as exc:
            raise AuthenticationError(f"invalid token: {exc}") from exc
        if claims.get("type", "access") != "access":
            raise AuthenticationError("not an access token")
        try:
            return TokenPayload.model_validate(claims)
        except ValidationError as exc:
            raise AuthenticationError(f"invalid token claims: {exc.errors()[0]['msg']}") from exc

    def principal_from_token(self, token: str) -> Principal:
        payload = self.verify_token(token)
        return Principal(id=payload.sub, role=payload.role, method="jwt")


# --- API keys ------------------------------------------------------------------------------

API_KEY_PREFIX = "relay_"
#: Characters of the random part that identify a key (stored in clear, shown in listings).
API_KEY_LOOKUP_CHARS = 8
_API_KEY_RANDOM_BYTES = 32
_API_KEY_RANDOM_CHARS = 43  # base64url of 32 bytes, unpadded
_URLSAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True)
class NewApiKey:
    """A freshly generated key: ``plaintext`` is shown once and never stored."""

    plaintext: str
    lookup: str
    key_hash: str


def hash_api_key(plaintext: str) -> str:
    """Hex SHA-256 of the whole key. A salt adds nothing: the key is 256 random bits."""
    return hashlib.sha256(plaintext.encode("ascii")).hexdigest()


def generate_api_key() -> NewApiKey:
    random_part = base64.urlsafe_b64encode(secrets.token_bytes(_API_KEY_RANDOM_BYTES))
    plaintext = API_KEY_PREFIX + random_part.decode("ascii").rstrip("=")
    return NewApiKey(plaintext, api_key_lookup(plaintext), hash_api_key(plaintext))


def api_key_lookup(plaintext: str) -> str:
    """The stored, non-secret part used to find a key: ``relay_`` + its first 8 characters.

    :class:`AuthenticationError` when ``plaintext`` is not shaped like a Relay API key."""
    random_part = plaintext[len(API_KEY_PREFIX) :]
    if (
        not plaintext.startswith(API_KEY_PREFIX)
        or len(random_part) != _API_KEY_RANDOM_CHARS
        or not set(random_part) <= _URLSAFE
    ):
        raise AuthenticationError(
            f"malformed API key: expected {API_KEY_PREFIX}<{_API_KEY_RANDOM_CHARS} url-safe "
            "characters>"
        )
    return plaintext[: len(API_KEY_PREFIX) + API_KEY_LOOKUP_CHARS]


def api_key_matches(plaintext: str, key_hash: str) -> bool:
    """Constant-time comparison of ``plaintext``'s hash with a stored one."""
    return hmac.compare_digest(hash_api_key(plaintext), key_hash)


__all__ = [
    "API_KEY_PREFIX",
    "AuthMethod",
    "AuthService",
    "NewApiKey",
    "Principal",
    "TokenPayload",
    "UserRole",
    "api_key_lookup",
    "api_key_matches",
    "generate_api_key",
    "hash_api_key",
]
