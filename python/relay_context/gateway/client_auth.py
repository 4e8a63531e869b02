"""Who is calling the gateway, from the credentials the official SDKs send.

``GATEWAY_AUTH=keys`` (default): ``Authorization: Bearer relay_...`` (OpenAI SDK),
``x-api-key: relay_...`` (Anthropic SDK) or a Relay JWT as the bearer token; the provider key
is the gateway's own. ``passthrough``: the client's credential is the provider key (forwarded
upstream), and the caller is known by a hash of it. ``open``: no credential needed.

A verified Relay API key is remembered for :data:`KEY_CACHE_SECONDS` (the key store is a
database read; a revocation takes effect within that time).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass

from relay_context.errors import AuthenticationError
from relay_context.gateway.errors import GatewayAuthenticationError
from relay_context.security.api_keys import ApiKeyStore
from relay_context.security.auth import API_KEY_PREFIX, AuthService, Principal, UserRole

KEY_CACHE_SECONDS = 5.0
KEY_CACHE_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class Caller:
    principal: Principal
    #: The credential to send upstream instead of the provider's key (``passthrough`` only).
    upstream_key: str | None = None


def presented_credential(
    headers: Mapping[str, str], query: Mapping[str, str] | None = None
) -> str | None:
    """The caller's credential: ``x-api-key``, ``x-goog-api-key`` (Gemini clients), a bearer
    token, or Gemini's ``?key=`` query parameter."""
    for name in ("x-api-key", "x-goog-api-key"):
        api_key = headers.get(name)
        if api_key:
            return api_key.strip()
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        raise GatewayAuthenticationError("Authorization must be 'Bearer <key>'")
    if query is not None and query.get("key"):
        return query["key"].strip()
    return None


class ClientAuthenticator:
    def __init__(self, api_keys: ApiKeyStore, auth: AuthService) -> None:
        self.api_keys = api_keys
        self.auth = auth
        self._verified: dict[bytes, tuple[Principal, float]] = {}

    async def authenticate(
        self, headers: Mapping[str, str], mode: str, query: Mapping[str, str] | None = None
    ) -> Caller:
        if mode == "open":
            return Caller(Principal("open", UserRole.USER, "api_key"))
        credential = presented_credential(headers, query)
        if credential is None:
            raise GatewayAuthenticationError(
                "You didn't provide an API key: send 'Authorization: Bearer relay_...' or "
                "'x-api-key: relay_...'"
            )
        if mode == "passthrough":
            digest = hashlib.sha256(credential.encode()).hexdigest()[:24]
            return Caller(Principal(f"passthrough:{digest}", UserRole.USER, "api_key"), credential)
        if credential.startswith(API_KEY_PREFIX):
            return Caller(await self._api_key(credential))
        try:
            return Caller(self.auth.principal_from_token(credential))
        except AuthenticationError as exc:
            raise GatewayAuthenticationError(f"invalid credentials: {exc}") from exc

    async def _api_key(self, key: str) -> Principal:
        digest = hashlib.sha256(key.encode()).digest()
        now = time.monotonic()
        remembered = self._verified.get(digest)
        if remembered is not None and now < remembered[1]:
            return remembered[0]
        try:
            principal = await self.api_keys.authenticate(key)
        except AuthenticationError as exc:
            raise GatewayAuthenticationError(f"Incorrect API key provided: {exc}") from exc
        if principal is None:
            self._verified.pop(digest, None)
            raise GatewayAuthenticationError("Incorrect API key provided: unknown or revoked key")
        if len(self._verified) >= KEY_CACHE_ENTRIES:
            del self._verified[next(iter(self._verified))]
        self._verified[digest] = (principal, now + KEY_CACHE_SECONDS)
        return principal


__all__ = ["Caller", "ClientAuthenticator", "presented_credential"]
