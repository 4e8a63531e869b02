"""``/api/v1/context``: messages in, context windows out, and a live stream of a session.

Every route authenticates and charges the principal's rate limit (``CurrentPrincipal``). A
session belongs to the principal that created it; another principal's session answers 404
exactly as a missing one (ADMIN sees every session). VIEWER principals read only; a USER may own
at most ``max_sessions_per_user`` live sessions.

Spans (children of the request span): ``db.get_session``, ``tokens.count`` (adding a message:
its tokens are counted and the row stored), ``context.select`` (building or fetching a window;
attribute ``relay.cache_hit``), ``db.stats``, ``db.delete_session``, ``db.count_sessions``.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from relay_context.core.message_tokens import REPLY_PRIMING_TOKENS
from relay_context.engine.models import Session, StoredMessage
from relay_context.engine.policies import POLICIES
from relay_context.engine.window import ContextWindow
from relay_context.errors import InvalidArgumentError
from relay_context.security.auth import Principal
from relay_context.service.deps import (
    AuthFirstRoute,
    CurrentPrincipal,
    StateDep,
    require_write,
    session_access,
    session_quota,
)
from relay_context.service.openapi import (
    AUTHENTICATED,
    MESSAGE_RULES,
    MODEL_SCHEMA,
    NAME_SCHEMA,
    ROLE_SCHEMA,
    SESSION_ID_SCHEMA,
    STREAM_AUTHENTICATED,
    STREAM_WITH_ID,
    TOOL_CALL_SCHEMA,
    WITH_ID,
    error_responses,
    event_stream_responses,
    links_to,
)
from relay_context.service.sse import EventStreamResponse, event_stream, sse_event, sse_retry
from relay_context.service.state import ServiceState

router = APIRouter(
    prefix="/api/v1/context",
    tags=["context"],
    route_class=AuthFirstRoute,
    responses=AUTHENTICATED,
)

#: A session id in a path (documented with the pattern ``validate_session_id`` enforces; the
#: check itself stays there, so a bad id is the typed ``invalid_session_id``).
SessionIdPath = Annotated[str, Path(json_schema_extra=SESSION_ID_SCHEMA)]
#: The longest ``Idempotency-Key`` header the route takes (longer ones are a 422).
IDEMPOTENCY_KEY_MAX_LENGTH = 255


class MessageIn(BaseModel):
    """A message to append (OpenAI fields; ``tool_calls`` in OpenAI's shape).

    The engine validates the message (typed errors: ``unknown_role``, ``empty_content``, ...);
    the JSON Schema only documents the same rules (``MESSAGE_RULES``, ``TOOL_CALL_SCHEMA``)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=MESSAGE_RULES)

    session_id: str = Field(min_length=1, max_length=256, json_schema_extra=SESSION_ID_SCHEMA)
    #: Checked by the engine (``unknown_role``); the schema lists the four accepted values.
    role: str = Field(min_length=1, max_length=32, json_schema_extra=ROLE_SCHEMA)
    content: str = ""
    name: str | None = Field(default=None, max_length=256, json_schema_extra=NAME_SCHEMA)
    tool_call_id: str | None = Field(default=None, max_length=256, json_schema_extra=NAME_SCHEMA)
    tool_calls: list[dict[str, Any]] | None = Field(
        default=None, json_schema_extra={"items": TOOL_CALL_SCHEMA}
    )
    metadata: dict[str, Any] | None = None


class SessionTotals(BaseModel):
    message_count: int
    #: Tokens of the whole session sent as one request (``count_messages`` rule).
    total_tokens: int
    last_seq: int


class MessageAdded(BaseModel):
    #: The message's id: its position in the session (1, 2, 3, ...).
    id: int
    seq: int
    session_id: str
    role: str
    #: Content tokens in the engine's encoding.
    tokens: int
    encoding: str
    #: Whether this message created the session (it is the session's first).
    created_session: bool
    session: SessionTotals


async def _refresh_session_gauge(state: ServiceState) -> None:
    with state.tracer.start_as_current_span("db.count_sessions"):
        state.metrics.sessions_active.set(await state.engine.count_live_sessions())


async def _session(state: ServiceState, principal: Principal, session_id: str) -> Session:
    """The live session ``session_id`` if ``principal`` may see it; 404 otherwise."""
    with state.tracer.start_as_current_span("db.get_session"):
        return await state.engine.session(session_id, access=session_access(principal))


@router.post(
    "/messages",
    status_code=201,
    summary="Add a message to a session",
    operation_id="add_message",
    responses={
        201: {
            "description": "The message as stored, with the session's totals",
            "links": links_to(
                {
                    "GetContext": "get_context",
                    "GetStats": "session_stats",
                    "DeleteSession": "clear_session",
                },
                "session_id",
                "$response.body#/session_id",
            ),
        },
        **WITH_ID,
    },
)
async def add_message(
    body: MessageIn,
    principal: CurrentPrincipal,
    state: StateDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=IDEMPOTENCY_KEY_MAX_LENGTH,
            description="Retrying with the same key returns the first answer, stores nothing new",
        ),
    ] = None,
) -> MessageAdded:
    return await append_message(state, principal, body, idempotency_key)


async def append_message(
    state: ServiceState, principal: Principal, body: MessageIn, idempotency_key: str | None
) -> MessageAdded:
    """``POST /messages`` after its request was authenticated and validated (shared by the
    route and by :class:`~relay_context.service.append_fast_path.AppendFastPath`)."""
    require_write(principal)
    engine = state.engine
    with state.tracer.start_as_current_span("tokens.count") as span:
        # The engine validates the message before creating a session, creates it atomically
        # within the principal's quota, and answers another principal's session as missing.
        stored = await engine.add_message(
            body.session_id,
            body.role,
            body.content,
            name=body.name,
            tool_call_id=body.tool_call_id,
            tool_calls=body.tool_calls,
            metadata=body.metadata,
            access=session_access(principal),
            max_owned=session_quota(state, principal),
            request_key=idempotency_key,
        )
        tokens = stored.token_counts.get(engine.encoding, 0)
        span.set_attribute("relay.tokens", tokens)
        span.set_attribute("relay.encoding", engine.encoding)
    state.metrics.tokens_counted.inc(tokens)
    # Sessions are made by their first message (there is no route that makes an empty one).
    created = stored.seq == 1
    if created:
        state.metrics.sessions_created.inc()
        await _refresh_session_gauge(state)
    # The totals of the session with this message in it; from the engine's memory when it
    # followed the session up to this append (no re-read of the session per append).
    count, total = await engine.totals(stored.session_id, since=stored)
    return MessageAdded(
        id=stored.seq,
        seq=stored.seq,
        session_id=stored.session_id,
        role=stored.role.value,
        tokens=tokens,
        encoding=engine.encoding,
        created_session=created,
        session=SessionTotals(message_count=count, total_tokens=total, last_seq=stored.seq),
    )


def window_body(window: ContextWindow, output: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "session_id": window.session_id,
        "format": output,
        "tokens_used": window.tokens_used,
        "budget": window.budget,
        "utilization": window.utilization,
        "model": window.model,
        "encoding": window.encoding,
        "policy": window.policy,
        "total_tokens": window.total_tokens,
        "tokens_saved": window.tokens_saved,
        "dedup_tokens_saved": window.dedup_tokens_saved,
        "compression_tokens_saved": window.compression_tokens_saved,
        "kept_ids": list(window.kept_seqs),
        "dropped_ids": list(window.dropped_seqs),
        "deduplicated_ids": list(window.deduplicated_seqs),
        "drift_score": window.drift_score,
    }
    if output == "anthropic":
        anthropic = window.to_anthropic()
        body["system"] = anthropic.get("system", "")
        body["messages"] = anthropic["messages"]
    else:
        body["messages"] = window.to_openai()
    return body


@router.get(
    "/{session_id}",
    summary="The context window of a session",
    operation_id="get_context",
    responses={**WITH_ID, **error_responses(409)},
)
async def get_context(
    session_id: SessionIdPath,
    principal: CurrentPrincipal,
    state: StateDep,
    budget: Annotated[
        int | None,
        Query(
            ge=1,
            description="Token budget (at most max_window_tokens)",
            # Below the reply priming no window fits (the engine says so: infeasible_budget).
            json_schema_extra={"minimum": REPLY_PRIMING_TOKENS},
        ),
    ] = None,
    model: Annotated[str | None, Query(max_length=128, json_schema_extra=MODEL_SCHEMA)] = None,
    policy: Annotated[
        str | None, Query(max_length=32, json_schema_extra={"enum": sorted(POLICIES)})
    ] = None,
    query: Annotated[str | None, Query(max_length=10_000)] = None,
    output: Annotated[Literal["openai", "anthropic"], Query(alias="format")] = "openai",
) -> dict[str, Any]:
    session = await _session(state, principal, session_id)
    engine = state.engine
    if budget is not None and budget > state.settings.max_window_tokens:
        raise InvalidArgumentError(
            f"budget {budget} is above max_window_tokens ({state.settings.max_window_tokens})"
        )
    with state.tracer.start_as_current_span("context.select") as span:
        window = await engine.get_context(
            session.id, budget=budget, model=model, policy=policy, query=query, session=session
        )
        hit = window.from_cache  # this call's answer, whatever other requests did meanwhile
        span.set_attribute("relay.cache_hit", hit)
        span.set_attribute("relay.policy", window.policy)
        span.set_attribute("relay.tokens_used", window.tokens_used)
    m = state.metrics
    m.record_cache_lookup(hit)
    m.context_tokens_used.set(window.tokens_used)
    m.context_drift_score.set(window.drift_score)
    if window.tokens_used:
        m.compression_ratio.set(window.total_tokens / window.tokens_used)
    if not hit:  # count each window's savings once, when it is built
        m.compression_saved_tokens.inc(window.tokens_saved)
    return window_body(window, output)


@router.get(
    "/{session_id}/stats",
    summary="Statistics of a session",
    operation_id="session_stats",
    responses=WITH_ID,
)
async def session_stats(
    session_id: SessionIdPath, principal: CurrentPrincipal, state: StateDep
) -> dict[str, Any]:
    await _session(state, principal, session_id)
    with state.tracer.start_as_current_span("db.stats"):
        stats = await state.engine.stats(session_id)
    state.metrics.context_drift_score.set(stats.drift_score)
    return stats.as_dict()


@router.delete(
    "/{session_id}",
    status_code=204,
    summary="Delete a session and its messages",
    operation_id="clear_session",
    responses=WITH_ID,
)
async def clear_session(
    session_id: SessionIdPath, principal: CurrentPrincipal, state: StateDep
) -> Response:
    require_write(principal)
    await _session(state, principal, session_id)
    with state.tracer.start_as_current_span("db.delete_session"):
        await state.engine.clear(session_id, access=session_access(principal))
    await _refresh_session_gauge(state)
    return Response(status_code=204)


def message_event(message: StoredMessage, encoding: str) -> bytes:
    """One SSE event: ``id`` is the seq (what ``Last-Event-ID`` resumes from)."""
    data = {
        "id": message.seq,
        "seq": message.seq,
        "session_id": message.session_id,
        **message.to_openai(),
        "metadata": dict(message.metadata),
        "tokens": message.token_counts.get(encoding),
        "created_at": message.created_at.isoformat(),
    }
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return sse_event(payload, event="message", event_id=message.seq)


#: The largest seq a client may name (a database integer).
MAX_SEQ = 2**63 - 1
#: ``Last-Event-ID``: a seq (ASCII digits; empty means none), as ``_resume_point`` reads it.
LAST_EVENT_ID_SCHEMA = {"type": "string", "pattern": r"^[ \t]*[0-9]{0,18}[ \t]*(?![\s\S])"}


def _resume_point(last_event_id: str | None, after: int | None) -> int:
    # Only spaces and tabs are trimmed and only ASCII digits read: str.isdigit() also accepts
    # "²" (a Latin-1 header byte), which int() refuses.
    text = (last_event_id or "").strip(" \t")
    if text:
        if not (text.isascii() and text.isdigit()) or len(text) > 18:
            raise InvalidArgumentError(f"Last-Event-ID must be a message seq, got {text[:40]!r}")
        return max(int(text), after or 0)
    return after or 0


@router.get(
    "/{session_id}/stream",
    summary="Server-Sent Events of the session's new messages",
    operation_id="stream_messages",
    response_class=EventStreamResponse,
    responses={
        **event_stream_responses("message", "The session's messages, then each new one"),
        **STREAM_AUTHENTICATED,
        **STREAM_WITH_ID,
    },
)
async def stream_messages(
    session_id: SessionIdPath,
    request: Request,
    principal: CurrentPrincipal,
    state: StateDep,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_SEQ, description="Resume after this seq")
    ] = None,
    last_event_id: Annotated[
        str | None, Header(alias="Last-Event-ID", json_schema_extra=LAST_EVENT_ID_SCHEMA)
    ] = None,
) -> EventStreamResponse:
    session = await _session(state, principal, session_id)
    start = _resume_point(last_event_id, after)
    engine = state.engine

    async def messages() -> AsyncIterator[bytes]:
        async for message in engine.subscribe(session.id, after_seq=start):
            yield message_event(message, engine.encoding)

    return event_stream(request, state, messages(), first=sse_retry())


__all__ = ["MessageIn", "message_event", "router", "window_body"]
