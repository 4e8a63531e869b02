"""``AsyncAgentBridge``: :class:`~relay_context.handoff_client.bridge.AgentBridge` on the
asyncio client. Same protocol: the task goes to ``task_channel`` with a fresh correlation id in
its metadata, and the caller waits on ``done_channel`` for the result carrying that id, so
concurrent callers (tasks in one loop, processes, machines) each get their own answer. The
subscription is open before the task is pushed, so a fast worker cannot answer into the void.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from relay_context.handoff_client.async_client import AsyncHandoffClient
from relay_context.handoff_client.bridge import CORRELATION_KEY


class AsyncAgentBridge:
    def __init__(
        self,
        relay: AsyncHandoffClient,
        task_channel: str = "agent-tasks",
        done_channel: str = "agent-done",
    ) -> None:
        self.relay = relay
        self.task_channel = task_channel
        self.done_channel = done_channel

    async def push_and_wait(
        self,
        task: str | bytes,
        timeout: float = 300.0,
        *,
        metadata: dict[str, Any] | None = None,
    ) -> str | bytes:
        """Push ``task``; the worker's result for it (``TimeoutError`` after ``timeout`` s)."""
        correlation = uuid.uuid4().hex
        try:
            # wait_for, not asyncio.timeout: the package supports Python 3.10.
            return await asyncio.wait_for(self._push_and_wait(task, correlation, metadata), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"no result on {self.done_channel!r} within {timeout} s") from None

    async def _push_and_wait(
        self, task: str | bytes, correlation: str, metadata: dict[str, Any] | None
    ) -> str | bytes:
        async with self.relay.subscription(self.done_channel) as events:
            await self.relay.push(
                task,
                channel=self.task_channel,
                metadata={**(metadata or {}), CORRELATION_KEY: correlation},
            )
            async for message in events:
                if message.url is None:
                    continue
                answer = await self.relay.peek(message.url)
                if answer.get(CORRELATION_KEY) == correlation:
                    return await self.relay.pull(message.url)
        raise TimeoutError(f"the subscription to {self.done_channel!r} ended")

    async def serve(
        self,
        handler: Callable[[str | bytes], Awaitable[str | bytes]],
        *,
        max_tasks: int | None = None,
        ready: asyncio.Event | None = None,
    ) -> int:
        """Answer tasks from ``task_channel`` with ``await handler(task)`` on ``done_channel``
        until cancelled or ``max_tasks`` were answered; how many it answered. ``ready`` is set
        once it is subscribed (tasks pushed from then on reach it)."""
        answered = 0
        async with self.relay.subscription(self.task_channel) as events:
            if ready is not None:
                ready.set()
            async for message in events:
                if message.url is None:
                    continue
                task_metadata = await self.relay.peek(message.url)
                result = await handler(await self.relay.pull(message.url))
                await self.relay.push(
                    result,
                    channel=self.done_channel,
                    metadata={
                        CORRELATION_KEY: task_metadata.get(CORRELATION_KEY),
                        "in_reply_to": message.id,
                    },
                )
                answered += 1
                if max_tasks is not None and answered >= max_tasks:
                    break
        return answered


__all__ = ["AsyncAgentBridge"]
