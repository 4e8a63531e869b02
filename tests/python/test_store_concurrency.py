"""Several processes appending to one session at once, and a writer killed mid-stream, on the
real SQLite and the real PostgreSQL: total order, no gap, no duplicate, nothing acknowledged lost.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections import defaultdict
from typing import Any

from engine_support import append_worker
from relay_context.engine.store.sql import SqlSessionStore

# "spawn": a fresh interpreter per child; forking a process that runs an event loop and holds
# database connections is not safe.
SPAWN = multiprocessing.get_context("spawn")
#: Generous bound for a child to start, append and exit on a busy 2-core machine (a hang guard,
#: not a speed assertion).
PATIENCE_SECONDS = 180


def check_total_order(messages: list[Any]) -> dict[str, list[int]]:
    """Seqs are 1..n without gaps; returns, per writer, its message indices in seq order."""
    assert [m.seq for m in messages] == list(range(1, len(messages) + 1))
    per_writer: dict[str, list[int]] = defaultdict(list)
    for message in messages:
        writer, index = message.content.rsplit(":", 1)
        assert message.metadata == {"writer": writer, "i": int(index)}
        per_writer[writer].append(int(index))
    return per_writer


async def test_many_processes_append_to_one_session_in_total_order(
    store: SqlSessionStore, store_config: dict[str, Any]
) -> None:
    await store.create_session("shared", "alice")
    writers, per_writer = 4, 30
    go = SPAWN.Event()
    processes = [
        SPAWN.Process(target=append_worker, args=(store_config, "shared", f"w{n}", per_writer, go))
        for n in range(writers)
    ]
    for process in processes:
        process.start()
    go.set()
    for process in processes:
        process.join(PATIENCE_SECONDS)
        assert process.exitcode == 0, f"writer {process.name} ended with {process.exitcode}"

    messages = await store.list_messages("shared")
    assert len(messages) == writers * per_writer  # nothing lost
    order = check_total_order(messages)
    # Each writer's appends keep the order it made them in, with none missing or doubled.
    assert order == {f"w{n}": list(range(per_writer)) for n in range(writers)}
    assert await store.count_messages("shared") == writers * per_writer
    session = await store.get_session("shared")
    assert session is not None
    assert session.last_seq == writers * per_writer


async def test_a_killed_writer_loses_no_acknowledged_message(
    store: SqlSessionStore, store_config: dict[str, Any]
) -> None:
    await store.create_session("crash", "alice")
    go = SPAWN.Event()
    receive_acks, send_acks = SPAWN.Pipe(duplex=False)
    victim = SPAWN.Process(
        target=append_worker, args=(store_config, "crash", "victim", 100_000, go, send_acks)
    )
    survivor_count = 40
    survivor = SPAWN.Process(
        target=append_worker, args=(store_config, "crash", "survivor", survivor_count, go)
    )
    victim.start()
    survivor.start()
    send_acks.close()  # the child holds the only write end now
    go.set()

    acks: list[tuple[int, int]] = []
    try:
        while len(acks) < 25:
            assert receive_acks.poll(PATIENCE_SECONDS), "the writer stopped acknowledging"
            acks.append(receive_acks.recv())
    finally:
        # Mid-stream: the victim is normally inside its next append when the signal lands.
        os.kill(victim.pid, signal.SIGKILL)  # type: ignore[arg-type]
        victim.join(PATIENCE_SECONDS)
    assert victim.exitcode == -signal.SIGKILL
    while True:  # acknowledgements sent before the kill are still in the pipe
        try:
            acks.append(receive_acks.recv())
        except EOFError:
            break
    survivor.join(PATIENCE_SECONDS)
    assert survivor.exitcode == 0

    messages = await store.list_messages("crash")
    order = check_total_order(messages)
    by_seq = {m.seq: m for m in messages}
    for index, seq in acks:  # every acknowledged message is there, where it was acknowledged
        assert by_seq[seq].content == f"victim:{index}"
    # The victim's messages are a prefix of what it sent: the acknowledged ones, plus at most
    # one that committed after its last acknowledgement went out.
    victim_indices = order["victim"]
    assert victim_indices == list(range(len(victim_indices)))
    assert len(acks) <= len(victim_indices) <= len(acks) + 1
    assert order["survivor"] == list(range(survivor_count))

    # The store is fully usable after the crash (no lock left behind).
    stored = await store.append_many("crash", [])
    assert stored == []
    from relay_context.engine.models import MessageRole, NewMessage

    after = await store.append("crash", NewMessage(MessageRole.USER, "after the crash"))
    assert after.seq == len(messages) + 1


async def test_a_writer_killed_inside_its_transaction_leaves_no_gap_and_no_lock(
    store: SqlSessionStore, store_config: dict[str, Any]
) -> None:
    from engine_support import hold_write_lock
    from relay_context.engine.models import MessageRole, NewMessage

    await store.create_session("held", "alice")
    await store.append("held", NewMessage(MessageRole.USER, "before"))
    receive, send = SPAWN.Pipe(duplex=False)
    holder = SPAWN.Process(target=hold_write_lock, args=(store_config, "held", send))
    holder.start()
    send.close()
    assert receive.poll(PATIENCE_SECONDS), "the child never took the lock"
    assert receive.recv() == "locked"
    os.kill(holder.pid, signal.SIGKILL)  # type: ignore[arg-type]
    holder.join(PATIENCE_SECONDS)
    # The half-done append is rolled back: the next seq follows the last committed one, and the
    # lock is gone (this append would time out otherwise).
    after = await store.append("held", NewMessage(MessageRole.USER, "after"))
    assert after.seq == 2
    assert [m.content for m in await store.list_messages("held")] == ["before", "after"]
