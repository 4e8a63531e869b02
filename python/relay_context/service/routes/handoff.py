"""The handoff relay's routes: ContextRelay's wire protocol, and Relay's own ``/api/v1/handoff``.

ContextRelay's Worker protocol, so its published SDK works unchanged:

* ``POST /push`` — JSON ``{"data": str, "channel"?, "metadata"?, "ttl"?}`` (or a raw body) ->
  ``{"url": "<base>/pull/<id>", "id", "channel"}``;
* ``GET /pull/{id}`` — the envelope ``{"data", "metadata"}``, streamed;
* ``GET /peek/{id}`` — the metadata object as pushed; Relay's facts in ``x-relay-*`` headers;
* ``GET /ws/{channel}`` — WebSocket frames ``{"url", "ts", "seq", ...}``; ``?after=<seq>``
  resumes; ``POST /publish/{channel}`` — a signal without a payload; ``GET /sse/{channel}`` —
  the same events as Server-Sent Events (``Last-Event-ID`` resumes).

Relay's own: ``POST /api/v1/handoff`` (any bytes, streamed in: ``?channel=&ttl=&encrypted=``,
metadata as JSON in ``X-Relay-Metadata``, the client's own id in ``X-Relay-Payload-Id``: an
encrypting client binds the id into its ciphertext), ``GET /api/v1/handoff/{id}`` (the bytes,
streamed out), ``GET /api/v1/handoff/{id}/info``, ``DELETE /api/v1/handoff/{id}``,
``POST /api/v1/handoff/publish/{channel}``, ``GET /api/v1/handoff/stats``.

``HANDOFF_AUTH=keys`` takes the credentials of the rest of the service (also an API key as
``Authorization: Bearer relay_...``); ``open`` needs none and rate limits callers by address.
Every error has Relay's shape; a missing, expired and malformed id answer the same 404.
"""

from __future__ import annotations

import asyncio
import base64
import codecs
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response, Security, WebSocket
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocketDisconnect, WebSocketState

from relay_context.checks import parse_json
from relay_context.errors import (
    AuthenticationError,
    InvalidArgumentError,
    PayloadTooLargeError,
    PermissionDeniedError,
    QuotaExceededError,
    RateLimitExceededError,
    SlowConsumerError,
)
from relay_context.handoff import ChannelEvent, HandoffRelay, PayloadInfo, Subscription
from relay_context.security.auth import Principal
from relay_context.service.deps import (
    HandoffDep,
    api_key_scheme,
    authenticate,
    bearer_scheme,
    charge_client,
    has_credentials,
    principal_of_credentials,
    require_write,
    state_of,
)
from relay_context.service.openapi import (
    AUTHENTICATED,
    STREAM_AUTHENTICATED,
    STREAM_WITH_ID,
    WITH_ID,
    ErrorResponse,
    links_to,
)
from relay_context.service.sse import event_stream, sse_event, sse_retry

#: ContextRelay's protocol (documented in docs/handoff.md; a foreign wire format, so not part of
#: Relay's OpenAPI document) and Relay's own API under ``API``.
router = APIRouter(tags=["handoff"])
API = "/api/v1/handoff"
#: ContextRelay's routes take this (see the comment above).
COMPAT: dict[str, Any] = {"include_in_schema": False}
#: What a channel name may be (``handoff.ids.validate_channel``), for the OpenAPI document.
CHANNEL_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"

TEXT_UTF8 = "text/plain; charset=utf-8"
#: WebSocket close codes: a subscriber too slow for its queue, and bad input or credentials.
CLOSE_SLOW_CONSUMER = 4008
CLOSE_POLICY = 1008
CLOSE_GOING_AWAY = 1001


async def handoff_caller(request: Request) -> Principal | None:
    """The caller: a principal, or ``None`` in open mode without credentials (then charged
    to its client address)."""
    if state_of(request).settings.handoff.auth == "open" and not has_credentials(request):
        await charge_client(request)
        return None
    return await authenticate(request)


Caller = Annotated[Principal | None, Depends(handoff_caller)]


async def api_caller(
    request: Request,
    _bearer: Annotated[Any, Security(bearer_scheme)],
    _api_key: Annotated[Any, Security(api_key_scheme)],
) -> Principal | None:
    """:func:`handoff_caller`, with the credentials described in the OpenAPI document."""
    return await handoff_caller(request)


ApiCaller = Annotated[Principal | None, Depends(api_caller)]


def _served(request: HTTPConnection, operation: str, info: PayloadInfo | None = None) -> None:
    metrics = state_of(request).metrics.handoff
    metrics.operations.labels(operation).inc()
    if info is not None and operation == "push":
        metrics.bytes.labels("in").inc(info.size)
        if not info.stored_new_blob:
            metrics.dedup_hits.inc()
    elif info is not None and operation == "pull":
        metrics.bytes.labels("out").inc(info.size)


@contextlib.asynccontextmanager
async def _span(request: HTTPConnection, name: str) -> AsyncIterator[None]:
    """A span ``handoff.<name>`` (child of the request span); quota refusals are counted."""
    state = state_of(request)
    with state.tracer.start_as_current_span(f"handoff.{name}"):
        try:
            yield
        except QuotaExceededError as exc:
            state.metrics.handoff.quota_refusals.labels(str(exc.details.get("quota"))).inc()
            raise


def _client_owner(request: HTTPConnection) -> str:
    return f"addr:{request.client.host if request.client else 'unknown'}"


def _writer(request: Request, caller: Principal | None) -> tuple[str, str | None]:
    """Who owns what this caller pushes, and the plan whose quotas apply (``None``: no quota,
    for ADMIN principals). Open-mode callers are owners by client address."""
    settings = state_of(request).settings.handoff
    if caller is None:
        return _client_owner(request), settings.open_plan
    require_write(caller)
    return caller.id, None if caller.is_admin else settings.default_plan


def _count_pull(request: Request, relay: HandoffRelay, caller: Principal | None) -> None:
    relay.count_pull(_client_owner(request) if caller is None else caller.id)


def _base_url(request: Request) -> str:
    configured = state_of(request).settings.handoff.public_url
    return (configured or str(request.base_url)).rstrip("/")


def pointer(request: Request, payload_id: str) -> str:
    return f"{_base_url(request)}/pull/{payload_id}"


def relay_headers(info: PayloadInfo) -> dict[str, str]:
    return {
        "x-relay-id": info.id,
        "x-relay-size": str(info.size),
        "x-relay-sha256": info.sha256,
        "x-relay-content-type": info.content_type,
        "x-relay-encrypted": "true" if info.encrypted else "false",
        "x-relay-created-at": info.created_at.isoformat(),
        "x-relay-expires-at": info.expires_at.isoformat(),
    }


def _declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    return int(value) if value is not None and value.isdigit() else None


async def _read_capped(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes ``limit`` (checked per piece)."""
    declared = _declared_length(request)
    if declared is not None and declared > limit:
        raise PayloadTooLargeError(f"request body larger than {limit} bytes", limit=limit)
    parts: list[bytes] = []
    size = 0
    async for piece in request.stream():
        size += len(piece)
        if size > limit:
            raise PayloadTooLargeError(f"request body larger than {limit} bytes", limit=limit)
        parts.append(piece)
    return b"".join(parts)


def _refuse_declared_oversize(
    request: Request, relay: HandoffRelay, *, encrypted: bool = False
) -> None:
    limit = relay.limit(encrypted)
    declared = _declared_length(request)
    if declared is not None and declared > limit:
        raise PayloadTooLargeError(f"payload larger than the limit of {limit} bytes", limit=limit)


async def _stream_capped(request: Request, limit: int) -> AsyncIterator[bytes]:
    """The body as it arrives, refused with 413 as soon as it passes ``limit``."""
    declared = _declared_length(request)
    if declared is not None and declared > limit:
        raise PayloadTooLargeError(f"request body larger than {limit} bytes", limit=limit)
    size = 0
    async for piece in request.stream():
        size += len(piece)
        if size > limit:
            raise PayloadTooLargeError(f"request body larger than {limit} bytes", limit=limit)
        yield piece


def _push_answer(request: Request, info: PayloadInfo, event: ChannelEvent | None) -> dict[str, Any]:
    return {
        "url": pointer(request, info.id),
        "id": info.id,
        "channel": info.channel,
        "seq": None if event is None else event.seq,
        "size": info.size,
        "sha256": info.sha256,
        "encrypted": info.encrypted,
        "expires_at": info.expires_at.isoformat(),
    }


# --- ContextRelay's protocol ---------------------------------------------------------------------
@router.post("/push", **COMPAT, summary="Push a payload (ContextRelay protocol)")
async def push(request: Request, caller: Caller, relay: HandoffDep) -> JSONResponse:
    owner, plan = _writer(request, caller)
    content_type = request.headers.get("content-type", "")
    if content_type.split(";", 1)[0].strip().lower() == "application/json":
        # Parsed as it streams in: the data goes to the spool piece by piece.
        async with _span(request, "push"):
            info, event = await relay.push_envelope(
                _stream_capped(request, relay.settings.max_json_body_bytes),
                owner=owner,
                plan=plan,
            )
        _served(request, "push", info)
    else:
        # A raw body streams to disk; the channel and TTL come from the query.
        _refuse_declared_oversize(request, relay)
        ttl = request.query_params.get("ttl")
        async with _span(request, "push"):
            info, event = await relay.push(
                request.stream(),
                content_type=content_type or TEXT_UTF8,
                channel=request.query_params.get("channel"),
                ttl_seconds=int(ttl) if ttl is not None and ttl.isdigit() else None,
                owner=owner,
                plan=plan,
            )
        _served(request, "push", info)
    return JSONResponse(_push_answer(request, info, event))


async def _envelope(info: PayloadInfo, stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """``{"metadata": ..., "data": "..."}`` written as the payload streams out: text is JSON
    escaped chunk by chunk (an incremental decoder keeps characters whole), other bytes are
    base64 (``"encoding": "base64"``) in runs of whole 3-byte groups."""
    yield b'{"metadata":' + json.dumps(info.metadata).encode() + b',"data":"'
    if info.is_text:
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        async for chunk in stream:
            text = decoder.decode(chunk)
            if text:
                yield json.dumps(text)[1:-1].encode()
        tail = decoder.decode(b"", final=True)
        if tail:
            yield json.dumps(tail)[1:-1].encode()
        yield b'"}'
        return
    rest = b""
    async for chunk in stream:
        data = rest + chunk
        whole = len(data) - len(data) % 3
        rest = data[whole:]
        if whole:
            yield base64.b64encode(data[:whole])
    yield base64.b64encode(rest) + b'","encoding":"base64"}'


@router.get(
    "/pull/{payload_id}", **COMPAT, summary="Pull a payload's envelope (ContextRelay protocol)"
)
async def pull(
    payload_id: str, request: Request, caller: Caller, relay: HandoffDep
) -> StreamingResponse:
    async with _span(request, "pull"):
        info, stream = await relay.pull(payload_id)
    _served(request, "pull", info)
    _count_pull(request, relay, caller)
    return StreamingResponse(
        _envelope(info, stream),
        media_type="application/json; charset=utf-8",
        headers=relay_headers(info),
    )


@router.get("/peek/{payload_id}", **COMPAT, summary="A payload's metadata (ContextRelay protocol)")
async def peek(
    payload_id: str, request: Request, caller: Caller, relay: HandoffDep
) -> JSONResponse:
    async with _span(request, "peek"):
        info = await relay.info(payload_id)
    _served(request, "peek")
    return JSONResponse(info.metadata, headers=relay_headers(info))


def _signal(body: bytes) -> object:
    if not body:
        return None
    doc = parse_json(body)
    if isinstance(doc, dict) and set(doc) == {"message"}:
        return doc["message"]
    return doc


@router.post("/publish/{channel}", **COMPAT, summary="Publish a signal on a channel")
async def publish(
    channel: str, request: Request, caller: Caller, relay: HandoffDep
) -> dict[str, Any]:
    return await _publish(channel, request, caller, relay)


@router.post(
    API + "/publish/{channel}",
    summary="Publish a signal on a channel",
    responses={**AUTHENTICATED, **WITH_ID},
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": {"description": "Any JSON value"}}},
        }
    },
)
async def api_publish(
    channel: Annotated[str, Path(pattern=CHANNEL_PATTERN)],
    request: Request,
    caller: ApiCaller,
    relay: HandoffDep,
) -> dict[str, Any]:
    """``{"message": value}`` or any JSON value; the event's ``seq``."""
    return await _publish(channel, request, caller, relay)


async def _publish(
    channel: str, request: Request, caller: Principal | None, relay: HandoffRelay
) -> dict[str, Any]:
    _writer(request, caller)
    message = _signal(await _read_capped(request, relay.settings.max_metadata_bytes))
    async with _span(request, "publish"):
        event = await relay.publish(channel, message)
    _served(request, "publish")
    return {"channel": channel, "seq": event.seq, "ts": event.ts}


def frame(base_url: str, event: ChannelEvent) -> dict[str, Any]:
    """An event as a WebSocket/SSE frame: ContextRelay's ``{"url", "ts"}`` and Relay's ids."""
    out: dict[str, Any] = {"channel": event.channel, "seq": event.seq, "ts": event.ts}
    if event.payload_id is not None:
        out["url"] = f"{base_url}/pull/{event.payload_id}"
        out["id"] = event.payload_id
    else:
        out["type"] = "signal"
        out["message"] = event.message
    return out


def _after(value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit():
        raise InvalidArgumentError(f"after must be an event id (an integer >= 0), got {value!r}")
    return int(value)


async def _ws_caller(websocket: WebSocket) -> Principal | None:
    state = state_of(websocket)
    if state.settings.handoff.auth == "open" and not has_credentials(websocket):
        await charge_client(websocket)
        return None
    if not has_credentials(websocket) and "api_key" in websocket.query_params:
        # Browsers cannot set headers on a WebSocket: the key may come in the query instead.
        principal = await state.api_keys.authenticate(websocket.query_params["api_key"])
        if principal is None:
            raise AuthenticationError("unknown or revoked API key")
        return principal
    return await principal_of_credentials(websocket, state)


@router.websocket("/ws/{channel}")
async def channel_socket(websocket: WebSocket, channel: str) -> None:
    state = state_of(websocket)
    relay = state.handoff
    assert relay is not None
    try:
        await _ws_caller(websocket)
        subscription = relay.subscribe(channel, after=_after(websocket.query_params.get("after")))
    except (AuthenticationError, PermissionDeniedError, RateLimitExceededError) as exc:
        await websocket.close(code=CLOSE_POLICY, reason=str(exc)[:120])
        return
    except InvalidArgumentError as exc:
        await websocket.close(code=CLOSE_POLICY, reason=str(exc)[:120])
        return
    await websocket.accept()
    metrics = state.metrics.handoff
    metrics.subscribers.inc()
    try:
        async with subscription as events:
            # Where the subscription starts: a client that reconnects resumes after it, even
            # if no event came in between.
            await websocket.send_text(
                json.dumps({"type": "subscribed", "channel": channel, "seq": events.last})
            )
            code, reason = await _pump(websocket, events, relay, state.shutting_down)
    finally:
        metrics.subscribers.dec()
    if code == CLOSE_SLOW_CONSUMER:
        metrics.slow_consumers.inc()
    if websocket.client_state is WebSocketState.CONNECTED:
        with contextlib.suppress(Exception):
            await websocket.close(code=code, reason=reason)


async def _pump(
    websocket: WebSocket, events: Subscription, relay: HandoffRelay, stopping: asyncio.Event
) -> tuple[int, str]:
    """Forward events until the client leaves, the server stops or the subscriber is cut;
    a heartbeat frame after each idle ``heartbeat_seconds``. The close code and reason.

    One loop awaits the subscription and sends; a watcher (the client's frames, the server's
    stop) and a ticker (heartbeats) only wake it through the subscription, so an event costs
    one await and one send, not a round of ``asyncio.wait`` over new futures."""
    base_url = (relay.settings.public_url or str(websocket.base_url)).rstrip("/")
    base_url = base_url.replace("ws://", "http://", 1).replace("wss://", "https://", 1)
    deliveries = state_of(websocket).metrics.handoff.deliveries
    interval = relay.settings.heartbeat_seconds
    loop = asyncio.get_running_loop()
    last_sent = loop.time()
    ended: list[tuple[int, str]] = []

    async def watch() -> None:
        stop = asyncio.ensure_future(stopping.wait())
        try:
            while True:
                receive = asyncio.ensure_future(websocket.receive())
                done, _ = await asyncio.wait({receive, stop}, return_when=asyncio.FIRST_COMPLETED)
                if stop in done:
                    receive.cancel()
                    ended.append((CLOSE_GOING_AWAY, "server shutting down"))
                    return
                if receive.result()["type"] == "websocket.disconnect":
                    ended.append((1000, ""))
                    return
                # Other client frames are ignored.
        except Exception:
            ended.append((1000, ""))
        finally:
            stop.cancel()
            events.end()

    async def beat() -> None:
        while True:
            await asyncio.sleep(interval)
            if loop.time() - last_sent >= interval * 0.9:
                events.tick()

    watcher = asyncio.ensure_future(watch())
    ticker = asyncio.ensure_future(beat())
    try:
        while True:
            try:
                event = await events.next_or_tick()
            except StopAsyncIteration:
                return ended[0] if ended else (CLOSE_GOING_AWAY, "server shutting down")
            except SlowConsumerError as exc:
                return CLOSE_SLOW_CONSUMER, str(exc)[:120]
            if event is None:
                await websocket.send_text(json.dumps({"type": "heartbeat", "seq": events.last}))
            else:
                text = event.frames.get(base_url)
                if text is None:
                    text = event.frames[base_url] = json.dumps(frame(base_url, event))
                await websocket.send_text(text)
                deliveries.inc()
            last_sent = loop.time()
    except (WebSocketDisconnect, RuntimeError, OSError):
        return 1000, ""
    finally:
        ticker.cancel()
        watcher.cancel()


@router.get("/sse/{channel}", **COMPAT, summary="A channel's events as Server-Sent Events")
async def channel_events(
    channel: str,
    request: Request,
    caller: Caller,
    relay: HandoffDep,
    after: Annotated[str | None, Query()] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    subscription = relay.subscribe(channel, after=_after(after or last_event_id))
    base_url = _base_url(request)
    deliveries = state_of(request).metrics.handoff.deliveries

    async def events() -> AsyncIterator[bytes]:
        async with subscription as stream:
            try:
                async for event in stream:
                    yield sse_event(json.dumps(frame(base_url, event)), event_id=event.seq)
                    deliveries.inc()
            except SlowConsumerError as exc:
                yield sse_event(json.dumps({"type": "slow_consumer", "message": str(exc)}))

    return event_stream(request, state_of(request), events(), first=sse_retry())


# --- Relay's API ---------------------------------------------------------------------------------
def _metadata_header(value: str | None) -> dict[str, Any] | None:
    if value is None:
        return None
    doc = parse_json(value, "X-Relay-Metadata")
    if not isinstance(doc, dict):
        raise InvalidArgumentError("X-Relay-Metadata must be a JSON object")
    return doc


@router.get(
    API + "/stats", summary="Payloads, bytes, dedup savings, subscribers", responses=AUTHENTICATED
)
async def stats(caller: ApiCaller, relay: HandoffDep) -> dict[str, Any]:
    return {**(await relay.stats()).to_json(), "blob_storage": relay.blob_storage}


@router.get(
    API + "/usage", summary="This month's pushes, pulls and bytes stored", responses=AUTHENTICATED
)
async def usage(
    request: Request,
    caller: ApiCaller,
    relay: HandoffDep,
    owner: Annotated[str | None, Query(max_length=300)] = None,
) -> dict[str, Any]:
    """The caller's own usage and quotas; an ADMIN may ask for any ``owner``'s."""
    settings = relay.settings
    if owner is not None and (caller is None or not caller.is_admin):
        raise PermissionDeniedError("only an admin may see another owner's usage")
    if owner is None:
        owner = _client_owner(request) if caller is None else caller.id
    plan = settings.open_plan if owner.startswith("addr:") else settings.default_plan
    return (await relay.usage(owner, plan=plan)).to_json()


@router.post(
    API + "",
    status_code=201,
    summary="Push any bytes, streamed in",
    operation_id="push_payload",
    responses={
        **AUTHENTICATED,
        201: {
            "description": "Stored: its pointer URL and id",
            "links": links_to(
                {
                    "GetPayload": "get_payload",
                    "GetPayloadInfo": "get_payload_info",
                    "DeletePayload": "delete_payload",
                },
                "payload_id",
                "$response.body#/id",
            ),
        },
        402: {"description": "Over the plan's quota (details say which)", "model": ErrorResponse},
        409: {"description": "The proposed payload id is in use", "model": ErrorResponse},
    },
    openapi_extra={
        "requestBody": {
            "required": False,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def push_bytes(
    request: Request,
    caller: ApiCaller,
    relay: HandoffDep,
    channel: Annotated[str | None, Query(pattern=CHANNEL_PATTERN)] = None,
    ttl: Annotated[
        int | None, Query(ge=1, description="Seconds; longer is cut to the maximum")
    ] = None,
    encrypted: Annotated[bool, Query()] = False,
) -> JSONResponse:
    """The body is stored as it arrives (its ``Content-Type`` is kept); metadata, if any, is a
    JSON object in the ``X-Relay-Metadata`` header. ``X-Relay-Payload-Id`` proposes the id
    (32 characters of URL-safe base64; 409 if in use): an end-to-end encrypting client binds
    the id into its ciphertext, so it draws the id before it sends the bytes."""
    x_relay_metadata = request.headers.get("x-relay-metadata")
    owner, plan = _writer(request, caller)
    _refuse_declared_oversize(request, relay)
    async with _span(request, "push"):
        info, event = await relay.push(
            request.stream(),
            content_type=request.headers.get("content-type") or "application/octet-stream",
            metadata=_metadata_header(x_relay_metadata),
            channel=channel,
            ttl_seconds=ttl,
            encrypted=encrypted,
            owner=owner,
            plan=plan,
            # Read here rather than declared as a parameter: a fuzzer replaying one generated id
            # would meet 409 after the first push (the relay checks its shape: 422).
            payload_id=request.headers.get("x-relay-payload-id"),
        )
    _served(request, "push", info)
    return JSONResponse(_push_answer(request, info, event), status_code=201)


@router.get(
    API + "/{payload_id}",
    summary="A payload's bytes, streamed out",
    operation_id="get_payload",
    response_class=StreamingResponse,
    responses={
        **STREAM_AUTHENTICATED,
        **STREAM_WITH_ID,
        200: {
            "description": "The bytes as pushed, with their content type",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                "*/*": {},
            },
        },
    },
)
async def get_bytes(
    payload_id: str, request: Request, caller: ApiCaller, relay: HandoffDep
) -> StreamingResponse:
    async with _span(request, "pull"):
        info, stream = await relay.pull(payload_id)
    _served(request, "pull", info)
    _count_pull(request, relay, caller)
    headers = relay_headers(info)
    headers["content-length"] = str(info.size)
    return StreamingResponse(stream, media_type=info.content_type, headers=headers)


@router.get(
    API + "/{payload_id}/info",
    summary="A payload's facts and metadata",
    operation_id="get_payload_info",
    responses={**AUTHENTICATED, **WITH_ID},
)
async def get_info(
    payload_id: str, request: Request, caller: ApiCaller, relay: HandoffDep
) -> dict[str, Any]:
    async with _span(request, "peek"):
        info = await relay.info(payload_id)
    _served(request, "peek")
    return {**info.to_json(), "url": pointer(request, info.id)}


@router.delete(
    API + "/{payload_id}",
    status_code=204,
    summary="Delete a payload",
    operation_id="delete_payload",
    responses={**AUTHENTICATED, **WITH_ID},
)
async def delete(
    payload_id: str, request: Request, caller: ApiCaller, relay: HandoffDep
) -> Response:
    # In open mode the pointer is the capability; with keys, the owner's (or an admin's).
    if caller is None:
        await relay.delete(payload_id, owner=None, any_owner=True)
    else:
        require_write(caller)
        await relay.delete(payload_id, owner=caller.id, any_owner=caller.is_admin)
    _served(request, "delete")
    return Response(status_code=204)


__all__ = ["CLOSE_SLOW_CONSUMER", "frame", "pointer", "router"]
