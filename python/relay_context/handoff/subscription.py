"""``Subscription``: one subscriber's events of a channel, in order, none missed.

It registers for live events first, then reads the history after ``after`` (so nothing slips
between the two), then delivers live events, skipping what it has delivered and filling any gap
in the sequence ids from the history (Redis pub/sub may drop a message; a push on another
replica may publish after a later one), and on each heartbeat tick of an idle subscriber
checking the history for events whose notification never came. Without ``after`` it starts
after the channel's current last event.
"""

from __future__ import annotations

from collections import deque
from types import TracebackType

from relay_context.errors import SlowConsumerError
from relay_context.handoff.channels import ChannelLog
from relay_context.handoff.fanout import Fanout, LocalSubscriber
from relay_context.handoff.models import ChannelEvent


class Subscription:
    def __init__(self, channel: str, *, after: int | None, fanout: Fanout, log: ChannelLog) -> None:
        self.channel = channel
        self.after = after
        self.fanout = fanout
        self.log = log
        #: The last sequence id delivered (or skipped as before the subscription).
        self.last = 0
        self._backlog: deque[ChannelEvent] = deque()
        self._subscriber: LocalSubscriber | None = None

    async def __aenter__(self) -> Subscription:
        self._subscriber = self.fanout.add(self.channel)
        try:
            if self.after is None:
                self.last = await self.log.last_seq(self.channel)
            else:
                self.last = max(0, self.after)
                self._backlog.extend(await self.log.between(self.channel, self.last))
        except BaseException:
            self.close()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._subscriber is not None:
            self.fanout.remove(self._subscriber)
            self._subscriber = None

    def __aiter__(self) -> Subscription:
        return self

    def tick(self) -> None:
        """Wake the reader of :meth:`next_or_tick` with ``None`` if it is idle (a heartbeat
        is due): one task per subscriber then serves events and heartbeats alike."""
        subscriber = self._subscriber
        if subscriber is not None and subscriber.queue.empty():
            subscriber.queue.put_nowait(subscriber.tick_marker)

    def end(self) -> None:
        """End the iteration (the client left, the server stops): the reader gets
        ``StopAsyncIteration`` after the events already queued."""
        subscriber = self._subscriber
        if subscriber is not None:
            subscriber.closed = True
            subscriber.queue.put_nowait(None)

    async def __anext__(self) -> ChannelEvent:
        while True:
            event = await self.next_or_tick()
            if event is not None:
                return event

    async def next_or_tick(self) -> ChannelEvent | None:
        """The next event, or ``None`` when :meth:`tick` woke the reader first."""
        subscriber = self._subscriber
        if subscriber is None:
            raise StopAsyncIteration
        while True:
            while self._backlog:
                event = self._backlog.popleft()
                if event.seq > self.last:
                    self.last = event.seq
                    return event
            item = await subscriber.queue.get()
            if item is None:
                if subscriber.closed:
                    raise StopAsyncIteration
                raise SlowConsumerError(
                    f"subscriber of {self.channel!r} fell {subscriber.limit} events behind; "
                    f"resume with after={self.last}"
                )
            if item is subscriber.tick_marker:
                # Idle: an event whose notification was lost (Redis down for a moment) would
                # otherwise wait for the next one to reveal the gap. One read by primary key.
                missed = await self.log.between(self.channel, self.last)
                if not missed:
                    return None
                self._backlog.extend(missed)
                continue
            if item.seq <= self.last:
                continue
            if item.seq > self.last + 1:
                self._backlog.extend(await self.log.between(self.channel, self.last, item.seq))
            self._backlog.append(item)


__all__ = ["Subscription"]
