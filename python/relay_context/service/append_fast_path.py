"""``AppendFastPath``: ``POST /api/v1/context/messages`` answered without FastAPI's machinery.

Appends are the service's hottest write. Through FastAPI, each one walks the router (a pattern
match per route of every router), resolves the route's dependencies (two security schemes, the
state, a header), validates the body, then dumps the returned model and validates it again
against the response model before encoding it. This ASGI layer sits just above FastAPI's
exception middleware and does only what the route needs, in the route's own order:

1. authenticate and charge the rate limit (:func:`~relay_context.service.deps.authenticate`,
   exactly as ``AuthFirstRoute``: before a byte of the body is read);
2. read the body, parse it once, check it is valid Unicode and a valid ``MessageIn``;
3. append it with the route's own code (:func:`~relay_context.service.routes.context.
   append_message`) and encode the answer once.

Only a request that passes every check of step 2 takes this path. Any other one (not JSON, a
lone surrogate, a field error, an over-long ``Idempotency-Key``) is handed to FastAPI with its
body replayed, so that its 422 is exactly the route's; the principal found in step 1 is kept
in the request's state, so it is neither authenticated nor charged twice. Typed errors of
steps 1 and 3 are answered by the same handler FastAPI would use (``relay_error_handler``).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relay_context.checks import find_invalid_text
from relay_context.errors import RelayError
from relay_context.service.deps import authenticate, state_of
from relay_context.service.errors import relay_error_handler
from relay_context.service.routes.context import (
    IDEMPOTENCY_KEY_MAX_LENGTH,
    MessageIn,
    append_message,
    router,
)

APPEND_PATH = "/api/v1/context/messages"


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` (already read) once, then what ``receive`` gives."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _is_json(content_type: str | None) -> bool:
    if content_type is None:
        return False
    return content_type.partition(";")[0].strip().lower() == "application/json"


class AppendFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._route = next(
            r
            for r in router.routes
            if isinstance(r, APIRoute) and r.path == APPEND_PATH and "POST" in (r.methods or ())
        )
        #: Appends answered here, and requests to the path handed to FastAPI (for tests).
        self.served = 0
        self.delegated = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != APPEND_PATH:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            principal = await authenticate(request)
        except RelayError as exc:
            await self._answer(scope, receive, send, await relay_error_handler(request, exc))
            return
        body = await request.body()
        message, key = self._parse(request, body)
        if message is None:
            self.delegated += 1
            await self.app(scope, _replay(body, receive), send)
            return
        response: Response
        try:
            added = await append_message(state_of(request), principal, message, key)
        except RelayError as exc:
            response = await relay_error_handler(request, exc)
        else:
            response = Response(
                added.__pydantic_serializer__.to_json(added),
                status_code=201,
                media_type="application/json",
            )
        self.served += 1
        await self._answer(scope, receive, send, response)

    @staticmethod
    def _parse(request: Request, body: bytes) -> tuple[MessageIn | None, str | None]:
        """The message and idempotency key of a request the route would accept; ``(None,
        None)`` for any other (FastAPI then answers it)."""
        headers = request.headers
        key = headers.get("idempotency-key")
        if not _is_json(headers.get("content-type")) or (
            key is not None and len(key) > IDEMPOTENCY_KEY_MAX_LENGTH
        ):
            return None, None
        try:
            parsed: Any = json.loads(body)
        except (ValueError, RecursionError):  # not JSON, not UTF-8, too deep, too many digits
            return None, None
        if not isinstance(parsed, dict) or find_invalid_text(parsed) is not None:
            return None, None
        try:
            return MessageIn.model_validate(parsed), key
        except ValidationError:
            return None, None

    async def _answer(self, scope: Scope, receive: Receive, send: Send, response: Response) -> None:
        # The route's template labels the request's metrics and span, as when FastAPI routes it.
        scope["route"] = self._route
        await response(scope, receive, send)


__all__ = ["APPEND_PATH", "AppendFastPath"]
