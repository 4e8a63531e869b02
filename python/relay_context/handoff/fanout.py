"""``Fanout``: channel events to the subscribers of this process, and of the others via Redis.

Events are delivered to local subscribers directly; with Redis each event is also published on
``{prefix}handoff:ch:{channel}``, and every process's one pattern subscription hands the events
of other processes to its own subscribers (its own are recognised by an origin token and
skipped). Pub/sub is at-most-once: a subscriber that sees a gap in the sequence ids fills it
from the channel's history (see :mod:`relay_context.handoff.subscription`), so a lost message
costs a query, not an event.

A subscriber's queue is bounded: one that falls ``queue_events`` behind is marked overflowed
and cut by whoever serves it, rather than allowed to grow memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections import defaultdict
from typing import Any

from relay_context.handoff.models import ChannelEvent
from relay_context.lifecycle import AsyncResource

log = logging.getLogger(__name__)

#: How long the Redis listener waits before reconnecting after an error (seconds, doubling).
RECONNECT_SECONDS = (0.1, 0.5, 1.0, 2.0, 5.0)


class LocalSubscriber:
    """One subscriber's queue. ``None`` in the queue means "overflowed: stop"."""

    def __init__(self, channel: str, limit: int) -> None:
        self.channel = channel
        self.limit = limit
        self.queue: asyncio.Queue[ChannelEvent | None] = asyncio.Queue()
        self.overflowed = False
        #: The fan-out closed (server shutting down): the ``None`` means "end", not "too slow".
        self.closed = False
        #: Queued by ``Subscription.tick`` to wake its reader without an event (heartbeats).
        self.tick_marker = ChannelEvent(channel=channel, seq=-1, ts=0)

    def offer(self, event: ChannelEvent) -> None:
        if self.overflowed:
            return
        if self.queue.qsize() >= self.limit:
            self.overflowed = True
            self.queue.put_nowait(None)
            return
        self.queue.put_nowait(event)


class Fanout(AsyncResource):
    def __init__(self, *, queue_events: int, redis: Any | None = None, prefix: str = "") -> None:
        self.queue_events = queue_events
        self.redis = redis
        self.pattern = f"{prefix}handoff:ch:"
        self.origin = secrets.token_hex(8)
        self._local: defaultdict[str, set[LocalSubscriber]] = defaultdict(set)
        self._listener: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    # --- life cycle ----------------------------------------------------------------------------
    async def open(self) -> None:
        if self.redis is None or self._listener is not None:
            return
        self._ready = asyncio.Event()
        self._listener = asyncio.create_task(self._listen(), name="handoff-fanout")
        # Subscribed before the first subscriber registers: nothing published after this
        # process is up can miss it (and gaps are filled from the history anyway).
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._ready.wait(), 5.0)

    async def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await listener
        for subscribers in self._local.values():
            for subscriber in subscribers:
                subscriber.closed = True
                subscriber.queue.put_nowait(None)

    # --- subscribers ---------------------------------------------------------------------------
    def add(self, channel: str) -> LocalSubscriber:
        subscriber = LocalSubscriber(channel, self.queue_events)
        self._local[channel].add(subscriber)
        return subscriber

    def remove(self, subscriber: LocalSubscriber) -> None:
        subscribers = self._local.get(subscriber.channel)
        if subscribers is not None:
            subscribers.discard(subscriber)
            if not subscribers:
                del self._local[subscriber.channel]

    @property
    def subscriber_count(self) -> int:
        return sum(len(s) for s in self._local.values())

    @property
    def live_channels(self) -> int:
        return len(self._local)

    # --- events --------------------------------------------------------------------------------
    def _deliver(self, event: ChannelEvent) -> None:
        for subscriber in tuple(self._local.get(event.channel, ())):
            subscriber.offer(event)

    async def publish(self, event: ChannelEvent) -> None:
        self._deliver(event)
        if self.redis is None:
            return
        body = json.dumps({"origin": self.origin, "event": event.to_json()})
        try:
            await self.redis.publish(self.pattern + event.channel, body)
        except Exception as exc:  # the event is committed; remote subscribers fill the gap
            log.warning("handoff fan-out through Redis failed: %r", exc)

    async def _listen(self) -> None:
        attempt = 0
        while True:
            pubsub = self.redis.pubsub() if self.redis is not None else None
            if pubsub is None:
                return
            try:
                await pubsub.psubscribe(self.pattern + "*")
                self._ready.set()
                attempt = 0
                while True:
                    item = await pubsub.get_message(ignore_subscribe_messages=True, timeout=30.0)
                    if item is None or item.get("type") != "pmessage":
                        continue
                    raw = json.loads(item["data"])
                    if raw.get("origin") == self.origin:
                        continue
                    self._deliver(ChannelEvent.from_json(raw["event"]))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = RECONNECT_SECONDS[min(attempt, len(RECONNECT_SECONDS) - 1)]
                attempt += 1
                log.warning("handoff fan-out listener: %r; reconnecting in %.1f s", exc, delay)
                await asyncio.sleep(delay)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()


__all__ = ["Fanout", "LocalSubscriber"]
