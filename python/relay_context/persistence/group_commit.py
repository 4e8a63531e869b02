"""``GroupCommitter``: concurrent writes gathered into one transaction, one commit.

A commit costs a flush to disk (SQLite ``synchronous=FULL``: an fsync; PostgreSQL: a WAL flush)
and, on SQLite, the database-wide write lock, so writers that commit one by one queue behind
each other's fsync. A committer lets every caller hand in its item and wait; one task takes
everything queued so far (up to ``max_weight``), runs it in one transaction (``run_batch``) and
then answers each caller with its own result. While that commit is running, new items queue up
and form the next batch, so batches grow with the load and need no timer.

Guarantees:

* A caller is answered only after the batch holding its item committed: ``run_batch`` returns
  after its commit, and only then are results handed out.
* A batch is all or nothing: when ``run_batch`` raises, every caller of that batch gets the
  exception and nothing of the batch is kept (``run_batch`` runs in one transaction).
* Items are run in the order they were submitted.
* A caller cancelled before its batch started is left out of it; once the batch has started
  its item commits (or not) with the others, as a single write's would after its ``BEGIN``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from relay_context.errors import BackendUnavailableError, InvalidArgumentError

T = TypeVar("T")
R = TypeVar("R")


class GroupCommitter(Generic[T, R]):
    """Batches of ``T`` committed by ``run_batch`` (one result per item, in order).

    ``max_weight`` bounds a batch (the sum of the items' weights, e.g. message rows: bounds how
    long one transaction holds the write lock); an item heavier than that runs alone.
    ``wait_seconds`` > 0 makes the committer wait that long before taking a batch, to gather
    more items under light load (0: take what is queued, never add latency).
    """

    def __init__(
        self,
        run_batch: Callable[[Sequence[T]], Awaitable[Sequence[R]]],
        *,
        max_weight: int,
        wait_seconds: float = 0.0,
        name: str = "group-commit",
    ) -> None:
        if not isinstance(max_weight, int) or max_weight < 1:
            raise InvalidArgumentError(f"max_weight must be an int >= 1, got {max_weight!r}")
        if not wait_seconds >= 0:
            raise InvalidArgumentError(f"wait_seconds must be >= 0, got {wait_seconds!r}")
        self._run_batch = run_batch
        self.max_weight = max_weight
        self.wait_seconds = float(wait_seconds)
        self.name = name
        self._queue: deque[tuple[T, int, asyncio.Future[R]]] = deque()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        #: Batches committed and items in them (for tests and benchmarks).
        self.batches = 0
        self.items = 0

    async def submit(self, item: T, weight: int = 1) -> R:
        """Queue ``item`` and wait until its batch has committed; its result."""
        if self._closed:
            raise BackendUnavailableError(f"{self.name} is closed")
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # first use, or a new event loop (the old one's is gone)
            self._loop, self._task = loop, None
            self._queue.clear()
        future: asyncio.Future[R] = loop.create_future()
        self._queue.append((item, weight, future))
        if self._task is None:
            # Started on the next loop turn: what else is submitted in this turn joins it.
            self._task = loop.create_task(self._run(), name=self.name)
        return await future

    def _take(self) -> list[tuple[T, asyncio.Future[R]]]:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        weight = 0
        while self._queue:
            item, w, future = self._queue[0]
            if future.done():  # its caller was cancelled while it waited: leave it out
                self._queue.popleft()
                continue
            if batch and weight + w > self.max_weight:
                break
            self._queue.popleft()
            batch.append((item, future))
            weight += w
        return batch

    async def _run(self) -> None:
        try:
            while self._queue:
                if self.wait_seconds > 0:
                    await asyncio.sleep(self.wait_seconds)
                batch = self._take()
                if not batch:
                    continue
                try:
                    results = await self._run_batch([item for item, _ in batch])
                    if len(results) != len(batch):
                        raise AssertionError(
                            f"{self.name}: {len(results)} results for {len(batch)} items"
                        )
                except BaseException as exc:
                    # Nothing of the batch committed: every caller in it gets the failure.
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    if isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt, SystemExit)):
                        raise
                    continue
                self.batches += 1
                self.items += len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            # No await between the empty-queue check and here: a submit after this starts a
            # new task. On cancellation (loop shutting down), queued callers are failed.
            self._task = None
            while self._queue:
                _, _, future = self._queue.popleft()
                if not future.done():
                    future.set_exception(BackendUnavailableError(f"{self.name} stopped"))

    def open(self) -> None:
        """Accept items again after :meth:`close`."""
        self._closed = False

    async def close(self) -> None:
        """Refuse new items and wait until everything queued has committed. Idempotent."""
        self._closed = True
        task = self._task
        if task is not None and self._loop is asyncio.get_running_loop():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(task)


__all__ = ["GroupCommitter"]
