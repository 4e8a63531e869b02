"""``Subscription``: one subscriber's events of a channel, in order, none missed.

It registers for live events first, then reads the history after ``after`` (so nothing slips
between the two), then delivers live events, skipping what it has delivered and filling any gap
in the sequence ids from the history (Redis pub/sub may drop a message; a push on another
replica may publish after a later one). Without ``after`` it starts after the channel's current
last event.
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

    async def __anext__(self) -> ChannelEvent:
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
            if item.seq <= self.last:
                continue
            if item.seq > self.last + 1:
                self._backlog.extend(await self.log.between(self.channel, self.last, item.seq))
            self._backlog.append(item)


__all__ = ["Subscription"]
