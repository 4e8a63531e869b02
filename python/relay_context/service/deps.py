"""Dependencies of the routes, as ``Annotated`` aliases::

    @router.get("/things/{id}")
    async def get_thing(principal: CurrentPrincipal, engine: EngineDep, settings: SettingsDep): ...

    @router.post("/admin/thing")
    async def admin_only(admin: AdminPrincipal): ...         # or Annotated[Principal,
                                                             #   RequireRole(UserRole.ADMIN)]

Authentication takes ``X-API-Key: relay_...`` or ``Authorization: Bearer <jwt>``; the principal
is then charged one request on its sliding window (429 past the limit), and the window's state
goes into the response's ``X-RateLimit-*`` headers. A request without valid credentials is
charged to its client address instead, so guessing keys is rate limited too.

Routers whose routes authenticate use ``route_class=AuthFirstRoute``: FastAPI reads and
validates a request's body before it runs any dependency, so without it an unauthenticated client
could make the server parse (and answer 422 for) any body, unmetered. ``AuthFirstRoute``
authenticates and charges the rate limit first, then checks that every string of a JSON body is
valid Unicode (a lone surrogate is a 422 naming the field), then hands the request to FastAPI;
``CurrentPrincipal`` returns the principal found then.

For the context routes: :func:`require_write`, :func:`session_access` (what the engine lets a
principal see: another principal's session is a 404, never a 403) and :func:`session_quota`
(checked by the engine atomically with the session's creation).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request, Response, Security
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import APIKeyHeader, HTTPBearer
from opentelemetry.trace import Tracer
from starlette.requests import HTTPConnection

from relay_context.checks import check_text, find_invalid_text
from relay_context.config.settings import Settings
from relay_context.engine.context_engine import ContextEngine
from relay_context.engine.models import Session, SessionAccess
from relay_context.errors import (
    AuthenticationError,
    InvalidUnicodeError,
    PermissionDeniedError,
    RateLimitExceededError,
    SessionNotFoundError,
)
from relay_context.handoff import HandoffRelay
from relay_context.security.auth import Principal, UserRole
from relay_context.service.metrics import ServiceMetrics
from relay_context.service.state import ServiceState


def state_of(request: HTTPConnection) -> ServiceState:
    state: ServiceState = request.app.state.relay
    return state


# The dependencies are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in its
# thread pool, a thread hop per dependency per request for what is an attribute read.
async def get_state(request: Request) -> ServiceState:
    return state_of(request)


async def get_settings(request: Request) -> Settings:
    return state_of(request).settings


async def get_metrics(request: Request) -> ServiceMetrics:
    return state_of(request).metrics


async def get_tracer(request: Request) -> Tracer:
    return state_of(request).tracer


async def get_engine(request: Request) -> ContextEngine:
    return state_of(request).engine


async def get_handoff(request: Request) -> HandoffRelay:
    relay = state_of(request).handoff
    if relay is None:  # build_state always makes one; a hand-built state may not
        raise RuntimeError("this app has no handoff relay")
    return relay


StateDep = Annotated[ServiceState, Depends(get_state)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
TracerDep = Annotated[Tracer, Depends(get_tracer)]
EngineDep = Annotated[ContextEngine, Depends(get_engine)]
HandoffDep = Annotated[HandoffRelay, Depends(get_handoff)]


async def _charge(request: HTTPConnection, state: ServiceState, key: str) -> None:
    allowed, info = await state.limiter.is_allowed(key)
    request.state.rate_limit = info
    state.metrics.rate_limit_remaining.set(info["remaining"])
    state.metrics.rate_limit_decisions.labels("allowed" if allowed else "limited").inc()
    if not allowed:
        raise RateLimitExceededError(
            f"rate limit of {info['limit']} requests per "
            f"{state.settings.rate_limit_window_seconds} s exceeded; retry in "
            f"{info['retry_after']:.1f} s",
            limit=info["limit"],
            retry_after=info["retry_after"],
            reset_at=info["reset_at"],
        )


def has_credentials(request: HTTPConnection) -> bool:
    return "x-api-key" in request.headers or "authorization" in request.headers


async def principal_of_credentials(request: HTTPConnection, state: ServiceState) -> Principal:
    """The principal of the request's credentials (a WebSocket's too), not rate limited."""
    api_key = request.headers.get("x-api-key")
    authorization = request.headers.get("authorization")
    if authorization is not None and api_key is None:
        scheme, _, token = authorization.partition(" ")
        # ``Authorization: Bearer relay_...`` (how ContextRelay's SDK sends its key) is an API
        # key; JWTs never start with ``relay_``.
        if scheme.lower() == "bearer" and token.strip().startswith("relay_"):
            api_key = token
    if api_key is not None:
        with state.tracer.start_as_current_span("db.api_key.authenticate"):
            principal = await state.api_keys.authenticate(api_key.strip())
        if principal is None:
            raise AuthenticationError("unknown or revoked API key")
        return principal
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError("Authorization must be 'Bearer <token>'")
        return state.auth.principal_from_token(token.strip())
    raise AuthenticationError(
        "credentials required: 'Authorization: Bearer <token>' or 'X-API-Key: relay_...'"
    )


async def authenticate(request: Request) -> Principal:
    """The request's principal, charged one request on its window (once per request: later
    calls return the same principal). Bad credentials are charged to the client address."""
    found: Principal | None = getattr(request.state, "principal", None)
    if found is not None:
        return found
    state = state_of(request)
    try:
        principal = await principal_of_credentials(request, state)
    except AuthenticationError:
        method = "api_key" if "x-api-key" in request.headers else "jwt"
        state.metrics.auth_failures.labels(method).inc()
        client = request.client.host if request.client else "unknown"
        await _charge(request, state, f"anon:{client}")
        raise
    request.state.principal = principal
    await _charge(request, state, f"principal:{principal.id}")
    return principal


async def charge_client(request: HTTPConnection) -> None:
    """Charge the client address one request (callers without credentials, where allowed)."""
    client = request.client.host if request.client else "unknown"
    await _charge(request, state_of(request), f"anon:{client}")


# Only for the OpenAPI document (``securitySchemes`` and each route's ``security``): they never
# refuse a request themselves (``auto_error=False``); ``authenticate`` decides.
bearer_scheme = HTTPBearer(
    auto_error=False, bearerFormat="JWT", description="A JWT: `relay token USER_ID --role ROLE`"
)
api_key_scheme = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="An API key: `relay_` + 43 characters"
)


async def get_principal(
    request: Request,
    _bearer: Annotated[Any, Security(bearer_scheme)],
    _api_key: Annotated[Any, Security(api_key_scheme)],
) -> Principal:
    return await authenticate(request)


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


def RequireRole(*roles: UserRole) -> Any:  # noqa: N802 - reads as a type in Annotated[...]
    """``Annotated[Principal, RequireRole(UserRole.ADMIN)]``: 403 for other roles."""
    allowed = frozenset(UserRole(r) for r in roles)

    async def check(principal: CurrentPrincipal) -> Principal:
        if principal.role not in allowed:
            raise PermissionDeniedError(
                f"role {principal.role.value} may not do this (needs "
                f"{' or '.join(sorted(r.value for r in allowed))})"
            )
        return principal

    return Depends(check)


AdminPrincipal = Annotated[Principal, RequireRole(UserRole.ADMIN)]
WriterPrincipal = Annotated[Principal, RequireRole(UserRole.ADMIN, UserRole.USER)]


def _needs_principal(dependant: Dependant) -> bool:
    return any(d.call is get_principal or _needs_principal(d) for d in dependant.dependencies)


def _check_body_text(body: object) -> None:
    """Every string (object keys included) of a parsed JSON body must be valid Unicode: JSON's
    ``\\ud800`` escapes decode to lone surrogates, which nothing downstream can encode."""
    found = find_invalid_text(body)
    if found is None:
        return
    path, text, is_key = found
    # The answer names the field and must itself be valid UTF-8: a bad key is escaped.
    loc = tuple(
        p.encode("utf-8", "backslashreplace").decode() if isinstance(p, str) else p for p in path
    )
    try:
        where = ".".join(map(str, ("body", *loc)))
        check_text(f"the key {where}" if is_key else where, text)
    except InvalidUnicodeError as exc:
        raise RequestValidationError(
            [{"loc": ("body", *loc), "msg": str(exc), "type": "invalid_unicode"}]
        ) from None


async def _json_body(request: Request) -> Any:
    """The parsed JSON body, or ``None`` when there is none or it is not JSON (FastAPI then
    answers as it does; the bytes read here are cached on the request, not read twice)."""
    content_type = request.headers.get("content-type", "")
    if "json" not in content_type.lower() or not await request.body():
        return None
    try:
        return await request.json()
    except (ValueError, RecursionError):  # JSONDecodeError, invalid UTF-8, an over-long integer
        return None


class AuthFirstRoute(APIRoute):
    """A route that authenticates (and charges the rate limit) before its body is read."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if not _needs_principal(self.dependant):
            return handler
        has_body = self.body_field is not None

        async def authenticate_first(request: Request) -> Response:
            await authenticate(request)
            if has_body:
                _check_body_text(await _json_body(request))
            return await handler(request)

        return authenticate_first


def require_write(principal: Principal) -> None:
    """VIEWER principals only read."""
    if not principal.can_write:
        raise PermissionDeniedError(f"role {principal.role.value} is read-only")


def session_access(principal: Principal) -> SessionAccess:
    """What the context engine lets ``principal`` see: its own sessions (ADMIN: every one)."""
    return SessionAccess(principal.id, sees_all=principal.is_admin)


def visible_session(principal: Principal, session: Session | None, session_id: str) -> Session:
    """``session`` if ``principal`` may see it; otherwise the same 404 as a missing session, so
    that nobody learns which ids other principals use."""
    if session is None or not session_access(principal).can_see(session):
        raise SessionNotFoundError(f"no live session {session_id!r}")
    return session


def session_quota(state: ServiceState, principal: Principal) -> int | None:
    """How many live sessions ``principal`` may own (``None``: no limit); a USER may own
    ``max_sessions_per_user``. Pass it to ``SessionStore.ensure_session(max_owned=...)``, which
    checks it atomically with the creation."""
    if principal.role is not UserRole.USER:
        return None
    return state.settings.max_sessions_per_user


__all__ = [
    "AdminPrincipal",
    "AuthFirstRoute",
    "CurrentPrincipal",
    "EngineDep",
    "HandoffDep",
    "MetricsDep",
    "RequireRole",
    "SettingsDep",
    "StateDep",
    "TracerDep",
    "WriterPrincipal",
    "authenticate",
    "charge_client",
    "get_handoff",
    "get_principal",
    "get_state",
    "has_credentials",
    "principal_of_credentials",
    "require_write",
    "session_access",
    "session_quota",
    "state_of",
    "visible_session",
]
