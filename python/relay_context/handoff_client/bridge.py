"""``AgentBridge``: hand a task to a worker agent over two channels and wait for its answer.

The caller pushes the task to ``task_channel`` with a fresh correlation id in its metadata and
waits on ``done_channel`` for the result whose metadata carries the same id, so concurrent
callers (threads, processes, machines) each get their own answer, never another's. It is
subscribed to ``done_channel`` before the task is pushed, so a fast worker cannot answer into
the void. The worker side is :meth:`AgentBridge.serve`.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from relay_context.handoff_client.client import HandoffClient

CORRELATION_KEY = "correlation_id"


class AgentBridge:
    def __init__(
        self,
        relay: HandoffClient,
        task_channel: str = "agent-tasks",
        done_channel: str = "agent-done",
    ) -> None:
        self.relay = relay
        self.task_channel = task_channel
        self.done_channel = done_channel

    def push_and_wait(
        self,
        task: str,
        timeout: float = 300.0,
        *,
        metadata: dict[str, Any] | None = None,
    ) -> str | bytes:
        """Push ``task``; the worker's result for it (``TimeoutError`` after ``timeout`` s)."""
        correlation = uuid.uuid4().hex
        deadline = time.monotonic() + timeout
        with self.relay.subscription(self.done_channel) as events:
            timer = threading.Timer(timeout, events.close)
            timer.daemon = True
            timer.start()
            try:
                self.relay.push(
                    task,
                    channel=self.task_channel,
                    metadata={**(metadata or {}), CORRELATION_KEY: correlation},
                )
                for message in events:
                    if message.url is None:
                        continue
                    if self.relay.peek(message.url).get(CORRELATION_KEY) == correlation:
                        return self.relay.pull(message.url)
            finally:
                timer.cancel()
        raise TimeoutError(
            f"no result on {self.done_channel!r} within {timeout} s"
            if time.monotonic() >= deadline
            else f"the subscription to {self.done_channel!r} ended"
        )

    def serve(
        self,
        handler: Callable[[str | bytes], str | bytes],
        *,
        stop: threading.Event | None = None,
        max_tasks: int | None = None,
        ready: threading.Event | None = None,
    ) -> int:
        """Answer tasks from ``task_channel`` with ``handler(task)`` on ``done_channel`` (blocks
        until ``stop`` is set or ``max_tasks`` were answered); how many it answered. ``ready``
        is set once it is subscribed (tasks pushed from then on reach it)."""
        answered = 0
        with self.relay.subscription(self.task_channel) as events:
            if stop is not None:
                events.close_when(stop)
            if ready is not None:
                ready.set()
            for message in events:
                if message.url is None:
                    continue
                metadata = self.relay.peek(message.url)
                result = handler(self.relay.pull(message.url))
                self.relay.push(
                    result,
                    channel=self.done_channel,
                    metadata={
                        CORRELATION_KEY: metadata.get(CORRELATION_KEY),
                        "in_reply_to": message.id,
                    },
                )
                answered += 1
                if max_tasks is not None and answered >= max_tasks:
                    break
        return answered


__all__ = ["CORRELATION_KEY", "AgentBridge"]
