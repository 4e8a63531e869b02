"""``persistence.GroupCommitter`` on its own: batching, order, all-or-nothing failures, limits,
cancelled callers, close."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from relay_context.errors import BackendUnavailableError, InvalidArgumentError
from relay_context.persistence.group_commit import GroupCommitter


class Recorder:
    """A ``run_batch`` that records its batches and can be told to fail or to stall."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.fail_when: int | None = None
        self.gate: asyncio.Event | None = None

    async def __call__(self, items: Sequence[int]) -> list[int]:
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(0)  # a commit takes a while; others queue meanwhile
        if self.fail_when is not None and self.fail_when in items:
            raise OSError(f"batch with {self.fail_when} failed")
        self.batches.append(list(items))
        return [item * 10 for item in items]


async def test_concurrent_items_share_batches_in_order() -> None:
    run = Recorder()
    committer: GroupCommitter[int, int] = GroupCommitter(run, max_weight=1000)
    results = await asyncio.gather(*(committer.submit(i) for i in range(100)))
    assert results == [i * 10 for i in range(100)]
    assert [i for batch in run.batches for i in batch] == list(range(100))
    assert len(run.batches) < 100
    assert (committer.batches, committer.items) == (len(run.batches), 100)


async def test_a_failed_batch_fails_each_of_its_callers_and_no_other() -> None:
    run = Recorder()
    run.gate = asyncio.Event()
    committer: GroupCommitter[int, int] = GroupCommitter(run, max_weight=5)
    run.fail_when = 7  # in the second batch of five: 5..9
    tasks = [asyncio.ensure_future(committer.submit(i)) for i in range(15)]
    await asyncio.sleep(0)
    run.gate.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert results[:5] == [0, 10, 20, 30, 40]
    assert all(isinstance(r, OSError) for r in results[5:10])
    assert results[10:] == [100, 110, 120, 130, 140]
    assert run.batches == [[0, 1, 2, 3, 4], [10, 11, 12, 13, 14]]


async def test_weights_bound_a_batch_and_a_heavy_item_runs_alone() -> None:
    run = Recorder()
    run.gate = asyncio.Event()
    committer: GroupCommitter[int, int] = GroupCommitter(run, max_weight=10)
    tasks = [asyncio.ensure_future(committer.submit(i, weight=4)) for i in range(5)]
    tasks.append(asyncio.ensure_future(committer.submit(99, weight=50)))
    await asyncio.sleep(0)
    run.gate.set()
    await asyncio.gather(*tasks)
    assert run.batches == [[0, 1], [2, 3], [4], [99]]


async def test_a_caller_cancelled_while_queued_is_left_out() -> None:
    run = Recorder()
    run.gate = asyncio.Event()
    committer: GroupCommitter[int, int] = GroupCommitter(run, max_weight=100)
    first = asyncio.ensure_future(committer.submit(0))
    await asyncio.sleep(0.01)  # batch [0] has started and waits at the gate
    queued = [asyncio.ensure_future(committer.submit(i)) for i in (1, 2, 3)]
    await asyncio.sleep(0)
    queued[1].cancel()
    run.gate.set()
    assert await first == 0
    assert await queued[0] == 10
    assert await queued[2] == 30
    assert run.batches == [[0], [1, 3]]


async def test_close_drains_the_queue_then_refuses() -> None:
    run = Recorder()
    committer: GroupCommitter[int, int] = GroupCommitter(run, max_weight=3)
    tasks = [asyncio.ensure_future(committer.submit(i)) for i in range(10)]
    await asyncio.sleep(0)
    await committer.close()
    assert [t.result() for t in tasks] == [i * 10 for i in range(10)]
    with pytest.raises(BackendUnavailableError):
        await committer.submit(1)
    committer.open()
    assert await committer.submit(2) == 20


async def test_wait_seconds_gathers_items_submitted_later() -> None:
    run = Recorder()
    committer: GroupCommitter[int, int] = GroupCommitter(run, max_weight=100, wait_seconds=0.05)

    async def later(i: int) -> int:
        await asyncio.sleep(0.01)
        return await committer.submit(i)

    await asyncio.gather(committer.submit(0), later(1), later(2))
    assert run.batches == [[0, 1, 2]]


def test_limits_are_checked() -> None:
    run = Recorder()
    with pytest.raises(InvalidArgumentError):
        GroupCommitter(run, max_weight=0)
    with pytest.raises(InvalidArgumentError):
        GroupCommitter(run, max_weight=1, wait_seconds=-1)
