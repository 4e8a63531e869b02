"""``ContextEngine``: conversations in, token-budgeted context windows out.

>>> engine = ContextEngine(settings=settings, token_manager=TokenManager("gpt-4"),
...                        compression=CompressionEngine(algorithm="zstd", level=3))
>>> await engine.add_message("session-001", MessageRole.USER, "Hello!")
>>> window = await engine.get_context("session-001", budget=8000)
>>> window.to_openai()          # count_messages(...) == window.tokens_used <= 8000

Messages are persisted in a :class:`~relay_context.engine.store.SessionStore` (SQLite or
PostgreSQL from the settings, content compressed with the ``CompressionEngine``); windows are
cached (Redis or in process) under the session's version, so a window is never served after the
messages changed. See ``docs/context-engine.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import itertools
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from relay_context.checks import check_int
from relay_context.config.settings import Settings, get_settings
from relay_context.core.compression import CompressionEngine
from relay_context.core.encodings import SHIPPED_ENCODINGS
from relay_context.core.message_tokens import REPLY_PRIMING_TOKENS
from relay_context.core.model_encodings import encoding_name_for_model
from relay_context.core.token_manager import TokenManager
from relay_context.core.tokenizer import TokenCounter
from relay_context.engine.cache import ContextCache, InProcessContextCache, open_cache
from relay_context.engine.dedup import signature
from relay_context.engine.events import MessageBus
from relay_context.engine.models import (
    MessageRole,
    NewMessage,
    Session,
    SessionAccess,
    StoredMessage,
    ToolCall,
    validate_session_id,
)
from relay_context.engine.plan import SessionPlanner
from relay_context.engine.policies import get_policy, policy_name
from relay_context.engine.policies.base import (
    Candidate,
    PolicyContext,
    Summarizer,
    message_tokens,
)
from relay_context.engine.session_memory import (
    SessionMemory,
    message_footprint,
    messages_footprint,
)
from relay_context.engine.stats import SessionStats
from relay_context.engine.store import open_store
from relay_context.engine.store.base import SessionStore
from relay_context.engine.window import ContextWindow, WindowMessage, window_tokens
from relay_context.errors import (
    BackendUnavailableError,
    InfeasibleBudgetError,
    InputTypeError,
    InvalidArgumentError,
    SessionNotFoundError,
    UnknownModelError,
)
from relay_context.lifecycle import AsyncResource
from relay_context.persistence.redis import redis_client_for

log = logging.getLogger(__name__)

#: Appends of one session remembered while the engine cannot yet add them to its messages.
PENDING_APPENDS = 4096


@dataclass
class _History:
    """A session's messages as last read, to read only what changed next time."""

    incarnation: str
    messages: list[StoredMessage]
    #: The session's revision these messages are exactly (``None``: not known, e.g. read while
    #: other appends were landing); lets an append made here extend them without a read.
    revision: int | None = None
    #: Billed tokens of ``messages`` in the engine's encoding (``None``: not summed yet).
    tokens: int | None = None
    #: Appends made here that could not extend ``messages`` yet (revision -> message): the
    #: session had changed elsewhere, or was forgotten. The next exact read applies them, so
    #: the engine follows the session again from there without reading them back.
    pending: dict[int, StoredMessage] = dataclasses.field(default_factory=dict)

    @property
    def last_seq(self) -> int:
        return self.messages[-1].seq if self.messages else 0


def _visible(access: SessionAccess | None, session: Session | None, session_id: str) -> Session:
    if session is None or (access is not None and not access.can_see(session)):
        raise SessionNotFoundError(f"no live session {session_id!r}")
    return session


class ContextEngine(AsyncResource):
    """Sessions of messages, and the context window to send for each (see the module docs).

    ``settings`` default to :func:`get_settings`. ``token_manager`` sets the default model (else
    ``settings.default_model``); ``compression`` the store's codec (else the settings' algorithm
    and level); ``store``/``cache`` default to ``open_store``/``open_cache`` of the settings and
    are then owned (closed by :meth:`close`). ``summarizer`` replaces the extractive one of the
    ``summarize`` policy; ``redis`` is a shared Redis client for the notifications (else one of
    its own when ``REDIS_URL`` is set). Every method opens the engine on first use; ``async with``
    closes it.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        token_manager: TokenManager | None = None,
        compression: CompressionEngine | None = None,
        store: SessionStore | None = None,
        cache: ContextCache | None = None,
        summarizer: Summarizer | None = None,
        redis: Any | None = None,
    ) -> None:
        self.settings = settings if settings is not None else get_settings()
        self.token_manager = token_manager
        self.compression = compression
        self.summarizer = summarizer
        self._store = store
        self._cache = cache
        self._owns_store = store is None
        self._owns_cache = cache is None and store is None
        #: The Redis client of the notifications (``redis.asyncio.Redis``); given, it is shared
        #: with the caller (the service's one client) and not closed here.
        self._redis: Any | None = redis
        self._owns_redis = redis is None
        self._bus: MessageBus | None = None
        self._open_lock = asyncio.Lock()
        self._counters: dict[str, TokenCounter] = {}
        #: Sessions' messages as last read, LRU within ``context_memory_max_bytes``; a session
        #: evicted from it is dropped by the planner too (its plan and near-duplicate index).
        self._history: SessionMemory[_History] = SessionMemory(
            self.settings.context_memory_max_bytes, on_evict=self._evicted
        )
        #: Sessions whose totals are being caught up by a read (see totals).
        self._reloading: dict[str, asyncio.Lock] = {}
        self.planner = SessionPlanner(self.counter, lambda: self.settings)
        self._sweeper: asyncio.Task[None] | None = None
        #: Sessions the periodic sweep has purged since the engine opened.
        self.sessions_expired = 0
        if token_manager is not None:
            self._counters[token_manager.encoding_name] = token_manager.counter
        self.model: str = (
            token_manager.model or token_manager.encoding_name
            if token_manager is not None
            else self.settings.default_model
        )
        self.encoding: str = self._encoding_for(self.model)
        #: Encodings counted at add_message: the engine's, and the settings' default model's.
        self.counted_encodings: tuple[str, ...] = (self.encoding,)
        try:
            default_encoding = self._encoding_for(self.settings.default_model)
        except UnknownModelError:
            default_encoding = self.encoding
        if default_encoding != self.encoding:
            self.counted_encodings = tuple(sorted((self.encoding, default_encoding)))

    # --- life cycle -------------------------------------------------------------------------
    @property
    def store(self) -> SessionStore:
        if self._store is None:
            raise RuntimeError("the engine is not open; use `async with` or `await open()`")
        return self._store

    @property
    def cache(self) -> ContextCache:
        if self._cache is None:
            raise RuntimeError("the engine is not open; use `async with` or `await open()`")
        return self._cache

    async def open(self) -> None:
        """Open the store (connect, migrate), the cache and the Redis notifications. Idempotent."""
        async with self._open_lock:
            if self._bus is not None:
                return
            s = self.settings
            if s.redis_url and self._redis is None:
                # One client for the notifications and the cache this engine makes.
                self._redis = redis_client_for(s)
                self._owns_redis = True
            if self.compression is None:
                self.compression = CompressionEngine(s.compression_algorithm, s.compression_level)
            if self._store is None:
                if self._cache is None:
                    self._cache = open_cache(s, codec=self.compression, redis=self._redis)
                self._store = await open_store(s, codec=self.compression, cache=self._cache)
            elif self._cache is None:
                self._cache = getattr(self._store, "cache", None) or InProcessContextCache(
                    s.context_cache_entries,
                    max_bytes=s.context_cache_max_bytes,
                    default_ttl_seconds=s.context_cache_ttl_seconds,
                )
                self._owns_cache = getattr(self._store, "cache", None) is None
            self._bus = MessageBus(
                self._store,
                poll_seconds=s.subscribe_poll_seconds,
                redis=self._redis,
                key_prefix=s.redis_key_prefix,
            )
            if s.session_sweep_interval_seconds > 0:
                self._sweeper = asyncio.create_task(
                    self._sweep_forever(s.session_sweep_interval_seconds),
                    name="relay-session-sweep",
                )

    async def close(self) -> None:
        """Release what the engine opened. Idempotent."""
        async with self._open_lock:
            self._bus = None
            if self._sweeper is not None:
                self._sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._sweeper
                self._sweeper = None
            if self._redis is not None and self._owns_redis:
                with contextlib.suppress(Exception):
                    await self._redis.aclose()
                self._redis = None
            if self._owns_store and self._store is not None:
                await self._store.close()
                self._store = None
            if self._owns_cache and self._cache is not None:
                await self._cache.close()
                self._cache = None

    async def expire_sessions(self) -> int:
        """Purge the sessions whose TTL has run out (with their messages) now; how many.

        The engine also does this every ``session_sweep_interval_seconds`` while it is open.
        """
        await self._ready()
        store = self.store
        purged = 0
        while True:
            batch = await store.expire_sessions(limit=1000)
            purged += batch
            if batch < 1000:
                return purged

    async def _sweep_forever(self, interval: float) -> None:
        # A failing sweep (database briefly down) is logged and retried at the next interval:
        # expired sessions are already invisible, so purging late loses nothing.
        while True:
            await asyncio.sleep(interval)
            try:
                self.sessions_expired += await self.expire_sessions()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("session sweep failed; retrying in %.0f s", interval, exc_info=True)

    async def _ready(self) -> MessageBus:
        if self._bus is None:
            await self.open()
        assert self._bus is not None
        return self._bus

    # --- tokens ----------------------------------------------------------------------------------
    @staticmethod
    def _encoding_for(model: object) -> str:
        """The encoding of ``model`` (a model or an encoding name); ``UnknownModelError``."""
        if isinstance(model, str) and model in SHIPPED_ENCODINGS:
            return model
        return encoding_name_for_model(model)  # type: ignore[arg-type]

    def counter(self, encoding: str) -> TokenCounter:
        """The (shared) token counter of ``encoding``."""
        counter = self._counters.get(encoding)
        if counter is None:
            counter = self._counters[encoding] = TokenCounter(encoding)
        return counter

    # --- writing -----------------------------------------------------------------------------
    async def add_message(
        self,
        session_id: str,
        role: MessageRole | str,
        content: str,
        *,
        name: str | None = None,
        tool_call_id: str | None = None,
        tool_calls: Sequence[ToolCall | Mapping[str, Any]] | None = None,
        metadata: Mapping[str, Any] | None = None,
        owner: str | None = None,
        ttl_seconds: int | None = None,
        access: SessionAccess | None = None,
        max_owned: int | None = None,
        request_key: str | None = None,
    ) -> StoredMessage:
        """Append a message (creating the session for ``owner`` if it does not exist).

        Its content tokens are counted once, in the engine's encoding (the token manager's) and
        the settings' default model's, and stored with it. ``metadata`` may carry
        ``importance`` (a number, default 1) and ``pinned`` (``True``: always in the window).
        The message is validated before anything is created, so a refused first message leaves
        no session. For a caller acting for a principal: ``access`` (the owner defaults to its
        principal) makes a session it may not see a ``SessionNotFoundError``, exactly as a
        missing one; ``max_owned`` refuses a new session with ``SessionLimitExceededError`` when
        the owner already has that many live ones (checked atomically with the creation).
        ``request_key`` (a client's idempotency key) makes a retry of the same append return
        the message stored the first time instead of storing it again; the same key with a
        different message raises ``IdempotencyKeyReusedError``. Raises ``UnknownRoleError``,
        ``EmptyContentError``, ``MessageTooLargeError``, ``InvalidSessionIdError``.
        """
        bus = await self._ready()
        sid = validate_session_id(session_id)
        draft = NewMessage(
            MessageRole.parse(role),
            content,
            name=name,
            tool_call_id=tool_call_id,
            tool_calls=tuple(tool_calls or ()),  # type: ignore[arg-type]
            metadata=metadata or {},
        )
        draft.check_size(self.store.max_message_bytes)  # before spending time counting it
        owner_name = owner or (access.principal if access is not None else None)
        owner_name = owner_name or self.settings.default_owner
        # The append itself checks that the session is the principal's (a session it may not
        # see is refused as a missing one, in the same statement): no read of the session
        # first. Keyed appends read it, since their key lookup comes before the append.
        required_owner = access.principal if access is not None and not access.sees_all else None
        if request_key is not None and (access is not None or max_owned is not None):
            session = await self.store.get_session(sid)
            if session is None:
                session = await self._create(sid, owner_name, ttl_seconds, max_owned)
            _visible(access, session, sid)
        counts = {
            e: await self.counter(e).count_tokens(draft.content) for e in self.counted_encodings
        }
        message = draft.with_token_counts(counts, signature(draft.role, draft.content))
        try:
            stored, replayed = await self._append(sid, message, request_key, required_owner)
        except SessionNotFoundError:  # no session yet, expired, or another principal's
            session = await self._create(sid, owner_name, ttl_seconds, max_owned)
            _visible(access, session, sid)
            stored, replayed = await self._append(sid, message, request_key, required_owner)
        if not replayed:
            await bus.publish(stored)
        return stored

    async def _create(
        self, sid: str, owner: str, ttl_seconds: int | None, max_owned: int | None
    ) -> Session:
        # Atomic: when two principals race for a new id, one creates the session and the
        # other gets it back as it is (owned by the first: not visible to it). The quota is
        # checked in the same database transaction.
        return await self.store.ensure_session(
            sid, owner, ttl_seconds=ttl_seconds, max_owned=max_owned
        )

    async def _append(
        self, sid: str, message: NewMessage, request_key: str | None, owner: str | None
    ) -> tuple[StoredMessage, bool]:
        if request_key is not None:  # ownership was checked by the caller
            return await self.store.append_once(
                sid, message, request_key=request_key, fingerprint=message.fingerprint()
            )
        stored, version = await self.store.append_with_version(sid, message, owner=owner)
        # No await since the commit: appends of this process get here in commit order.
        if version is not None:
            self._follow(stored, *version)
        return stored, False

    def _message_cost(self, message: StoredMessage) -> int:
        """Billed tokens of a message appended here (its content was counted at append)."""
        content = message.token_counts.get(self.encoding)
        if content is None:
            content = self.counter(self.encoding).count(message.content)
        return message_tokens(self.counter(self.encoding), message, content)

    def _follow(self, stored: StoredMessage, incarnation: str, revision: int) -> None:
        """Extend the remembered messages of the session by the one just appended, when they
        are exactly the session before it (same incarnation, the revision just before): the
        totals after an append then need no read. Otherwise the append waits in ``pending``
        for the next read of the session to catch up with it."""
        sid = stored.session_id
        history = self._history.get(sid)
        if revision == 1 and stored.seq == 1:  # the first write of a new session
            self._keep(sid, _History(incarnation, [stored], 1, self._message_cost(stored)))
        elif (
            history is not None
            and history.incarnation == incarnation
            and history.revision == revision - 1
            and history.last_seq == stored.seq - 1
        ):
            # A new list: the old one may be held by a plan, which compares message lists.
            tokens = history.tokens
            self._keep(
                sid,
                _History(
                    incarnation,
                    [*history.messages, stored],
                    revision,
                    None if tokens is None else tokens + self._message_cost(stored),
                    history.pending,
                ),
                self._history.size_of(sid) + message_footprint(stored),
            )
        else:
            if history is None or history.incarnation != incarnation:
                # Forgotten (LRU) or re-created: an empty entry that the next read fills.
                history = _History(incarnation, [])
                self._keep(sid, history)
            if (history.revision is None or revision > history.revision) and len(
                history.pending
            ) < PENDING_APPENDS:
                history.pending[revision] = stored
                # Counted as kept: a session that stays out of step holds up to PENDING_APPENDS.
                self._keep(sid, history, self._history.size_of(sid) + message_footprint(stored))

    def _keep(self, session_id: str, history: _History, nbytes: int | None = None) -> None:
        """Keep ``history`` as the session's, counted for ``nbytes`` (default: its messages and
        pending appends' footprint); sessions used least recently go while over the bound."""
        if nbytes is None:
            nbytes = messages_footprint(history.messages) + messages_footprint(
                history.pending.values()
            )
        self._history.put(session_id, history, nbytes)

    def _evicted(self, session_id: str) -> None:
        # What the planner keeps of a session is only worth keeping with its messages (a plan
        # is reused for the very same message objects): both go, and both are made again.
        self.planner.forget(session_id)

    @property
    def session_memory(self) -> SessionMemory[_History]:
        """The sessions kept in memory (``total_bytes``, ``evictions``, ``max_bytes``)."""
        return self._history

    async def session(self, session_id: str, *, access: SessionAccess | None = None) -> Session:
        """The live session ``session_id``; ``SessionNotFoundError`` if there is none or
        ``access`` may not see it."""
        await self._ready()
        sid = validate_session_id(session_id)
        return _visible(access, await self.store.get_session(sid), sid)

    async def count_live_sessions(self) -> int:
        """Sessions not yet expired, of every owner."""
        await self._ready()
        return await self.store.count_live_sessions()

    async def clear(self, session_id: str, *, access: SessionAccess | None = None) -> bool:
        """Delete the session and its messages; ``False`` if there was none. With ``access``,
        a session it may not see is a ``SessionNotFoundError`` (and is left alone)."""
        await self._ready()
        sid = validate_session_id(session_id)
        if access is not None:
            _visible(access, await self.store.get_session(sid), sid)
        deleted = await self.store.delete_session(sid)
        self.planner.forget(sid)
        self._history.forget(sid)
        try:
            await self.cache.invalidate(sid)
        except BackendUnavailableError as exc:  # versioned entries are never served stale
            log.warning("cache invalidation of %s failed: %r", sid, exc)
        return deleted

    async def messages(self, session_id: str) -> list[StoredMessage]:
        """Every stored message of the session, in order."""
        await self._ready()
        return await self.store.list_messages(validate_session_id(session_id))

    # --- reading -----------------------------------------------------------------------------
    def drift(self, messages: Sequence[StoredMessage]) -> float:
        """Topic drift of the last ``drift_recent_messages`` user/assistant turns from the
        ``drift_earlier_messages`` before them (0 when there are too few)."""
        return self.planner.drift(messages)

    async def _load(self, session: Session) -> list[StoredMessage]:
        """The session's messages. Messages never change once stored and deletes only remove a
        prefix (``delete_messages(before_seq=)``), so a session read before is brought up to
        date with two small reads: the messages after the last seq seen, and the oldest seq
        still stored. Their billed tokens are kept up to date the same way (for totals)."""
        sid = session.id
        history = self._history.get(sid)
        tokens: int | None = None
        # Reads stop at the session's last_seq: the messages are then the session at its
        # revision (appends landing meanwhile are read next time), which _remember relies on.
        if history is None or history.incarnation != session.incarnation:
            messages = await self.store.list_messages(sid, end_seq=session.last_seq)
        elif history.revision is not None and history.revision == session.revision:
            messages, tokens = history.messages, history.tokens  # nothing changed since
        else:
            new: list[StoredMessage] = []
            if session.last_seq > history.last_seq:
                new = await self.store.list_messages(
                    sid, start_seq=history.last_seq + 1, end_seq=session.last_seq
                )
            oldest = await self.store.list_messages(sid, limit=1)
            first_seq = oldest[0].seq if oldest else history.last_seq + 1
            messages = [m for m in history.messages if m.seq >= first_seq]
            added = [m for m in new if m.seq >= first_seq]
            messages.extend(added)
            if history.tokens is not None:
                dropped = history.messages[: len(history.messages) - (len(messages) - len(added))]
                tokens = (
                    history.tokens
                    - sum(self._message_cost(m) for m in dropped)
                    + sum(self._message_cost(m) for m in added)
                )
        self._remember(session, messages, tokens)
        return messages

    def _remember(
        self, session: Session, messages: list[StoredMessage], tokens: int | None = None
    ) -> None:
        """Keep ``messages`` as the session's, read with ``session``; then apply the appends made
        here since, in revision order, as far as they follow on without a gap."""
        previous = self._history.get(session.id)
        pending = (
            previous.pending
            if previous is not None and previous.incarnation == session.incarnation
            else {}
        )
        # The messages are the session at its revision when they end at its last_seq (reads
        # stop there; a prefix deleted in between is the one race this does not see).
        last = messages[-1].seq if messages else 0
        revision = session.revision if last == session.last_seq and messages else None
        if revision is not None and pending:
            applied = list(messages)  # the caller keeps the list it read
            while (nxt := pending.get(revision + 1)) is not None and nxt.seq == last + 1:
                applied.append(nxt)
                if tokens is not None:
                    tokens += self._message_cost(nxt)
                revision, last = revision + 1, nxt.seq
            pending = {r: m for r, m in pending.items() if r > revision}
            messages = applied
        nbytes = None
        if previous is not None and messages is previous.messages and pending is previous.pending:
            nbytes = self._history.size_of(session.id)  # the same messages: the same size
        self._keep(
            session.id, _History(session.incarnation, messages, revision, tokens, pending), nbytes
        )

    async def _with_counts(
        self, session_id: str, messages: list[StoredMessage], encoding: str
    ) -> list[StoredMessage]:
        """``messages`` with token counts in ``encoding``; counts missing from the store are made
        now and written back, so the next window for this encoding reads them."""
        missing = [i for i, m in enumerate(messages) if encoding not in m.token_counts]
        if not missing:
            return messages
        found = await self.planner.content_tokens([messages[i] for i in missing], encoding)
        out = list(messages)
        updates: dict[int, dict[str, int]] = {}
        for i, n in zip(missing, found, strict=True):
            counts = {**messages[i].token_counts, encoding: n}
            out[i] = dataclasses.replace(messages[i], token_counts=counts)
            updates[messages[i].seq] = counts
        try:
            await self.store.store_token_counts(session_id, updates)
        except Exception as exc:  # an optimisation: the counts are made again next time
            log.warning("storing %s token counts of %s failed: %r", encoding, session_id, exc)
        return out

    async def _with_signatures(
        self, session_id: str, messages: list[StoredMessage]
    ) -> list[StoredMessage]:
        """``messages`` with the near-duplicate signatures of those that may collapse; the ones
        missing from the store (rows stored before signatures were kept) are made now and
        written back, so the next first window of the session reads them."""
        missing = [
            (i, found)
            for i, m in enumerate(messages)
            if m.dedup_signature is None and (found := signature(m.role, m.content)) is not None
        ]
        if not missing:
            return messages
        out = list(messages)
        for i, found in missing:
            out[i] = dataclasses.replace(messages[i], dedup_signature=found)
        try:
            await self.store.store_signatures(
                session_id, {messages[i].seq: found for i, found in missing}
            )
        except Exception as exc:  # an optimisation: the signatures are made again next time
            log.warning("storing near-duplicate signatures of %s failed: %r", session_id, exc)
        return out

    async def get_context(
        self,
        session_id: str,
        budget: int | None = None,
        model: str | None = None,
        policy: str | None = None,
        query: str | None = None,
        *,
        session: Session | None = None,
    ) -> ContextWindow:
        """The window to send for the session's next request.

        ``budget`` (default ``settings.max_window_tokens``) bounds
        ``TokenCounter.count_messages(window.to_openai())`` for ``model``'s encoding (default
        the engine's model). ``policy``: ``knapsack``, ``recent`` or ``summarize`` (default
        ``settings.context_policy``). ``query`` is what relevance is measured against (default:
        the latest user turn). Raises ``SessionNotFoundError``, ``UnknownModelError``,
        ``UnknownPolicyError``, ``InfeasibleBudgetError`` (the messages that must be kept do not
        fit). ``session``: the live session ``session_id`` as the caller has just read it
        (the service reads it to check ownership), which saves reading it again.
        """
        await self._ready()
        sid = validate_session_id(session_id)
        if session is not None and session.id != sid:
            raise InvalidArgumentError(f"session {session.id!r} given for session_id {sid!r}")
        chosen_policy = policy_name(policy if policy is not None else self.settings.context_policy)
        model_name = model if model is not None else self.model
        encoding = self._encoding_for(model_name)
        limit = check_int(
            budget if budget is not None else self.settings.max_window_tokens, "budget", minimum=1
        )
        if query is not None and not isinstance(query, str):
            raise InputTypeError(f"query must be a str, got {type(query).__name__}")
        if session is None:
            session = await self.store.get_session(sid)
        if session is None:
            raise SessionNotFoundError(f"no live session {sid!r}")
        cacheable = chosen_policy != "summarize" or self.summarizer is None
        variant = "|".join(
            (
                chosen_policy,
                model_name,
                str(limit),
                hashlib.sha256(query.encode("utf-8", "surrogatepass")).hexdigest()[:24]
                if query is not None
                else "",
            )
        )
        if cacheable:
            try:
                cached = await self.cache.get_window(sid, session.cache_version, variant)
            except BackendUnavailableError as exc:
                log.warning("context cache unavailable: %r", exc)
                cached = None
            if cached is not None:
                return cached
        loaded = await self._load(session)
        kept = self._history[sid]
        messages = await self._with_signatures(sid, await self._with_counts(sid, loaded, encoding))
        if messages is not loaded:  # counts added: keep them (tokens in the engine's encoding
            # stay; appends applied after the loaded ones are read again next time)
            self._remember(session, messages, kept.tokens if kept.messages is loaded else None)
        window = await self.build_window(
            sid, messages, budget=limit, model=model_name, policy=chosen_policy, query=query
        )
        if sid not in self._history:
            # Evicted while the window was built (other requests ran meanwhile): the plan just
            # made goes too, or it would stay outside the memory bound.
            self.planner.forget(sid)
        if cacheable:
            try:
                await self.cache.set_window(sid, session.cache_version, window, variant=variant)
            except BackendUnavailableError as exc:
                log.warning("context cache unavailable: %r", exc)
        return window

    async def build_window(
        self,
        session_id: str,
        messages: Sequence[StoredMessage],
        *,
        budget: int,
        model: str,
        policy: str,
        query: str | None = None,
    ) -> ContextWindow:
        """The window for ``messages`` (no store, no cache): what :meth:`get_context` computes.

        The plan made for them is kept for the next call (under the planner's own bound of
        sessions, ``PLANNED_SESSIONS``): messages given here are the caller's, not in the
        engine's byte-bounded memory."""
        encoding = self._encoding_for(model)
        counter = self.counter(encoding)
        message_budget = budget - REPLY_PRIMING_TOKENS
        if message_budget < 0:
            raise InfeasibleBudgetError(
                f"budget {budget} is below the {REPLY_PRIMING_TOKENS} tokens every request "
                "spends priming the reply"
            )
        plan = await self.planner.plan(session_id, messages, encoding)
        kept, collapsed = plan.kept, plan.collapsed
        if query is None:
            query = plan.default_query
        ctx = PolicyContext(
            counter=counter,
            settings=self.settings,
            budget=message_budget,
            query=query,
            summarizer=self.summarizer,
            prepared=plan.prepared,
        )
        result = await get_policy(policy).select(kept, ctx)
        chosen: list[WindowMessage] = result.messages
        tokens_used = window_tokens(chosen)
        if tokens_used > budget:  # a policy bug; never hand out an over-budget window
            raise AssertionError(f"policy {policy!r} produced {tokens_used} > {budget} tokens")
        kept_seqs = tuple(m.seq for m in chosen if m.seq is not None)
        in_window = set(kept_seqs)
        return ContextWindow(
            session_id=session_id,
            messages=tuple(chosen),
            tokens_used=tokens_used,
            budget=budget,
            model=model,
            encoding=encoding,
            policy=policy,
            total_tokens=plan.total_tokens,
            dropped_seqs=tuple(itertools.filterfalse(in_window.__contains__, plan.seqs)),
            deduplicated_seqs=tuple(c.seq for c in collapsed),
            dedup_tokens_saved=sum(c.tokens for c in collapsed),
            compression_tokens_saved=result.compression_tokens_saved,
            drift_score=plan.drift_score,
            kept_seqs=kept_seqs,
        )

    async def _read_session(
        self, session_id: str
    ) -> tuple[Session, list[StoredMessage], list[Candidate]]:
        """The live session, its messages and their candidates in the engine's encoding."""
        await self._ready()
        sid = validate_session_id(session_id)
        session = await self.store.get_session(sid)
        if session is None:
            raise SessionNotFoundError(f"no live session {sid!r}")
        messages = await self._load(session)
        return session, messages, await self.planner.candidates(messages, self.encoding)

    async def stats(self, session_id: str) -> SessionStats:
        """Counts, tokens per role, compression and drift of the session."""
        session, messages, candidates = await self._read_session(session_id)
        sid = session.id
        tokens_by_role: dict[str, int] = {}
        messages_by_role: dict[str, int] = {}
        for c in candidates:
            role = c.message.role.value
            tokens_by_role[role] = tokens_by_role.get(role, 0) + c.tokens
            messages_by_role[role] = messages_by_role.get(role, 0) + 1
        _, collapsed = self.planner.dedup.collapse(sid, candidates, self.settings.dedup_threshold)
        contents = [m.content.encode("utf-8") for m in messages]
        codec = self.compression

        def stored_size() -> int:
            if codec is None:
                return sum(len(b) for b in contents)
            # What the store keeps per row: the compressed form, or the raw bytes if smaller.
            return sum(min(len(b), len(codec.compress(b))) for b in contents)

        cache_stats = getattr(self.cache, "stats", None)
        return SessionStats(
            session_id=sid,
            owner=session.owner,
            message_count=len(messages),
            last_seq=session.last_seq,
            created_at=session.created_at,
            updated_at=session.updated_at,
            expires_at=session.expires_at,
            encoding=self.encoding,
            total_tokens=REPLY_PRIMING_TOKENS + sum(c.tokens for c in candidates),
            tokens_by_role=tokens_by_role,
            messages_by_role=messages_by_role,
            content_bytes=sum(len(b) for b in contents),
            stored_bytes=await asyncio.to_thread(stored_size),
            drift_score=self.planner.drift(messages),
            near_duplicates=len(collapsed),
            near_duplicate_tokens=sum(c.tokens for c in collapsed),
            cache={
                "hits": float(getattr(cache_stats, "hits", 0)),
                "misses": float(getattr(cache_stats, "misses", 0)),
                "hit_rate": float(getattr(cache_stats, "hit_rate", 0.0)),
            },
        )

    async def totals(
        self, session_id: str, *, since: StoredMessage | None = None
    ) -> tuple[int, int]:
        """``(message_count, total_tokens)`` of the session, as :meth:`stats` reports them but
        without its compression, drift and near-duplicate work (reads only new messages).

        ``since``: a message this engine has just appended. Then the totals may be those of any
        committed state of the session that includes it, and come from memory (no read) when
        the engine has followed the session up to it (its own appends, in commit order)."""
        sid = validate_session_id(session_id)
        if (found := self._remembered_totals(sid, since)) is not None:
            return found
        await self._ready()
        # One catch-up read per session at a time: the callers waiting here are usually
        # answered from what it brought back (with their own appends applied to it).
        lock = self._reloading.setdefault(sid, asyncio.Lock())
        try:
            async with lock:
                if (found := self._remembered_totals(sid, since)) is not None:
                    return found
                session = await self.store.get_session(sid)
                if session is None:
                    raise SessionNotFoundError(f"no live session {sid!r}")
                await self._load(session)  # brings the remembered messages and tokens up to date
                history = self._history[sid]  # the session read, plus this engine's appends since
                if history.tokens is None:
                    history.tokens = sum(self._message_cost(m) for m in history.messages)
                return len(history.messages), REPLY_PRIMING_TOKENS + history.tokens
        finally:
            if not lock.locked():
                self._reloading.pop(sid, None)

    def _remembered_totals(self, sid: str, since: StoredMessage | None) -> tuple[int, int] | None:
        history = self._history.get(sid)
        if (
            since is None
            or history is None
            or history.revision is None
            or not history.messages
            or history.last_seq < since.seq
            or since.session_id != sid
        ):
            return None
        if history.tokens is None:
            history.tokens = sum(self._message_cost(m) for m in history.messages)
        return len(history.messages), REPLY_PRIMING_TOKENS + history.tokens

    # --- streaming -----------------------------------------------------------------------------
    async def subscribe(self, session_id: str, after_seq: int = 0) -> AsyncIterator[StoredMessage]:
        """The session's messages after ``after_seq`` (resume point), then every new one as it is
        added, here or in another process, in seq order, until the consumer stops iterating."""
        bus = await self._ready()
        sid = validate_session_id(session_id)
        start = check_int(after_seq, "after_seq", minimum=0)
        async for message in bus.subscribe(sid, start):
            yield message


__all__ = ["ContextEngine", "ContextWindow", "MessageRole", "SessionStats", "WindowMessage"]
