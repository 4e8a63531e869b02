"""New-message notifications for :meth:`ContextEngine.subscribe` (the SSE stream).

The store is the source of truth; notifications only say "look now". A subscriber reads the
store from the seq after the last one it yielded, so it never misses or repeats a message and can
resume after any seq:

* **in process**: ``add_message`` hands the stored message to every local subscriber of the
  session (bounded queues; one that falls behind reads the store instead);
* **across processes with Redis** (``REDIS_URL`` set): ``add_message`` also publishes the seq on
  the channel ``{redis_key_prefix}events:{session_id}``; subscribers listen on it;
* **across processes without Redis**, and as a safety net for lost pub/sub messages (Redis
  pub/sub is at-most-once): subscribers re-read the store every ``subscribe_poll_seconds``.

A session that is cleared and re-created (a new incarnation) starts again from seq 1.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator
from typing import Any

from relay_context.engine.models import StoredMessage
from relay_context.engine.store.base import SessionStore
from relay_context.errors import BackendUnavailableError, SessionNotFoundError

log = logging.getLogger(__name__)

#: Messages a local subscriber may have pending before it falls back to reading the store.
QUEUE_SIZE = 1024
#: Messages read from the store per catch-up query.
PAGE_SIZE = 500


class _Subscriber:
    __slots__ = ("queue",)

    def __init__(self) -> None:
        # None is a bare wake-up ("read the store"), a message is a possible fast path.
        self.queue: asyncio.Queue[StoredMessage | None] = asyncio.Queue(QUEUE_SIZE)

    def notify(self, item: StoredMessage | None) -> None:
        with contextlib.suppress(asyncio.QueueFull):
            # A full queue already guarantees a wake-up; the gap is read from the store.
            self.queue.put_nowait(item)


class MessageBus:
    """Fan-out of appended messages to subscribers (see the module docstring)."""

    def __init__(
        self,
        store: SessionStore,
        *,
        poll_seconds: float,
        redis: Any | None = None,
        key_prefix: str = "relay:",
    ) -> None:
        self.store = store
        self.poll_seconds = poll_seconds
        self.redis = redis
        self.key_prefix = key_prefix
        self._local: defaultdict[str, set[_Subscriber]] = defaultdict(set)

    def channel(self, session_id: str) -> str:
        return f"{self.key_prefix}events:{session_id}"

    async def publish(self, message: StoredMessage) -> None:
        """Tell local subscribers, and other processes through Redis, about ``message``."""
        for subscriber in tuple(self._local.get(message.session_id, ())):
            subscriber.notify(message)
        if self.redis is not None:
            try:
                await self.redis.publish(self.channel(message.session_id), str(message.seq))
            except Exception as exc:  # the message is stored; pollers will find it
                log.warning(
                    "publishing seq %s of %s failed: %r", message.seq, message.session_id, exc
                )

    async def _listen(self, session_id: str, subscriber: _Subscriber, ready: asyncio.Event) -> None:
        assert self.redis is not None
        pubsub = self.redis.pubsub()
        try:
            await pubsub.subscribe(self.channel(session_id))
            ready.set()
            while True:
                item = await pubsub.get_message(ignore_subscribe_messages=True, timeout=30.0)
                if item is not None:
                    subscriber.notify(None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # polling still delivers everything
            log.warning("Redis subscription for %s lost: %r; polling the store", session_id, exc)
        finally:
            ready.set()
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    async def subscribe(self, session_id: str, after_seq: int = 0) -> AsyncIterator[StoredMessage]:
        """The session's messages with ``seq > after_seq``, then each new one, in seq order."""
        subscriber = _Subscriber()
        self._local[session_id].add(subscriber)
        listener: asyncio.Task[None] | None = None
        try:
            if self.redis is not None:
                ready = asyncio.Event()
                listener = asyncio.create_task(self._listen(session_id, subscriber, ready))
                await ready.wait()  # subscribed before the first read: nothing slips between
            last = after_seq
            incarnation: str | None = None
            while True:
                # Catch up from the store.
                while True:
                    try:
                        session = await self.store.get_session(session_id)
                        if session is None:
                            break
                        if incarnation is not None and session.incarnation != incarnation:
                            last = 0  # cleared and re-created: a new conversation
                        incarnation = session.incarnation
                        if session.last_seq <= last:
                            break
                        page = await self.store.list_messages(
                            session_id, start_seq=last + 1, limit=PAGE_SIZE
                        )
                    except SessionNotFoundError:
                        break
                    except BackendUnavailableError as exc:
                        log.warning("subscribe(%s): store unavailable: %r", session_id, exc)
                        break
                    for message in page:
                        yield message
                        last = message.seq
                    if len(page) < PAGE_SIZE:
                        break
                # Wait for news; take contiguous in-process messages directly.
                while True:
                    try:
                        item = await asyncio.wait_for(subscriber.queue.get(), self.poll_seconds)
                    except TimeoutError:
                        break
                    if item is None or item.seq > last + 1:
                        break
                    if item.seq == last + 1:
                        yield item
                        last = item.seq
        finally:
            subscribers = self._local.get(session_id)
            if subscribers is not None:
                subscribers.discard(subscriber)
                if not subscribers:
                    del self._local[session_id]
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener


__all__ = ["MessageBus"]
