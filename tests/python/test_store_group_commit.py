"""Group commit of appends (``SqlSessionStore.appender``), on the real SQLite and PostgreSQL:
concurrent appends share transactions yet each is acknowledged only after its own batch
committed, with consecutive seqs per session; a failing batch acknowledges nobody and leaves no
gap; a writer killed mid-stream loses no acknowledged append."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import defaultdict
from typing import Any

from engine_support import build_store, concurrent_append_worker
from relay_context.engine.models import MessageRole, NewMessage
from relay_context.engine.store.sql import SqlSessionStore
from relay_context.errors import SessionNotFoundError
from test_store_concurrency import PATIENCE_SECONDS, SPAWN


def msg(text: str, **metadata: Any) -> NewMessage:
    return NewMessage(MessageRole.USER, text, metadata=metadata)


async def test_concurrent_appends_to_one_session_get_consecutive_seqs(
    store: SqlSessionStore,
) -> None:
    await store.create_session("hot", "alice")
    n = 300
    stored = await asyncio.gather(*(store.append("hot", msg(f"m{i}", i=i)) for i in range(n)))
    # Every append acknowledged, each with its own seq, together 1..n without a gap.
    assert sorted(m.seq for m in stored) == list(range(1, n + 1))
    # Submission order is commit order: the i-th append got seq i + 1.
    assert [m.seq for m in stored] == list(range(1, n + 1))
    by_seq = {m.seq: m.content for m in await store.list_messages("hot")}
    assert by_seq == {m.seq: m.content for m in stored}
    session = await store.get_session("hot")
    assert session is not None
    assert (session.last_seq, session.revision) == (n, n)  # one revision per append
    # They did share transactions.
    assert store.appender.batches < n


async def test_concurrent_appends_over_many_sessions(store: SqlSessionStore) -> None:
    sessions = [f"s{k}" for k in range(25)]
    for sid in sessions:
        await store.create_session(sid, "alice")
    n = 400
    stored = await asyncio.gather(
        *(
            store.append_many(sessions[i % len(sessions)], [msg(f"{i}a"), msg(f"{i}b")])
            for i in range(n)
        )
    )
    per_session: dict[str, list[int]] = defaultdict(list)
    for pair in stored:
        a, b = pair
        assert (a.session_id, b.seq) == (b.session_id, a.seq + 1)  # a batch of 2 stays whole
        per_session[a.session_id] += [a.seq, b.seq]
    for sid in sessions:
        assert sorted(per_session[sid]) == list(range(1, 2 * n // len(sessions) + 1))
        listed = await store.list_messages(sid)
        assert [m.seq for m in listed] == sorted(per_session[sid])
    assert store.appender.batches < n


async def test_an_append_to_a_missing_session_fails_alone(store: SqlSessionStore) -> None:
    await store.create_session("live", "alice")
    results = await asyncio.gather(
        *(store.append("live" if i % 3 else "missing", msg(f"m{i}")) for i in range(30)),
        return_exceptions=True,
    )
    missing = [r for i, r in enumerate(results) if i % 3 == 0]
    assert all(isinstance(r, SessionNotFoundError) for r in missing)
    live = [r for i, r in enumerate(results) if i % 3]
    assert sorted(r.seq for r in live) == list(range(1, 21))  # type: ignore[union-attr]
    assert await store.count_messages("live") == 20


async def test_an_owner_checked_append_leaves_another_principals_session_alone(
    store: SqlSessionStore,
) -> None:
    await store.create_session("bobs", "bob")
    before = await store.get_session("bobs")
    try:
        await store.append_with_version("bobs", msg("intruder"), owner="alice")
    except SessionNotFoundError:
        pass
    else:
        raise AssertionError("alice appended to bob's session")
    # Nothing stored, and the session not even touched (its TTL did not restart).
    assert await store.list_messages("bobs") == []
    assert await store.get_session("bobs") == before
    stored, version = await store.append_with_version("bobs", msg("mine"), owner="bob")
    assert stored.seq == 1
    assert version is not None
    assert version[1] == 1


async def test_mixed_owner_checks_in_one_batch_keep_submission_order(
    store: SqlSessionStore,
) -> None:
    """The owner, an administrator (no owner check) and an intruder append to one session at
    once: the intruder's appends are refused alone; the others get consecutive seqs in the
    order they were submitted."""
    await store.create_session("shared", "alice")
    await store.create_session("other", "carol")
    owners = ["alice", None, "mallory"]
    results = await asyncio.gather(
        *(
            store.append_with_version(
                "shared" if i % 4 else "other", msg(f"m{i}"), owner=owners[i % 3]
            )
            for i in range(60)
        ),
        return_exceptions=True,
    )
    expected_shared = [i for i in range(60) if i % 4 and owners[i % 3] in ("alice", None)]
    expected_other = [i for i in range(60) if not i % 4 and owners[i % 3] is None]
    for i, result in enumerate(results):
        allowed = i in expected_shared or i in expected_other
        assert isinstance(result, SessionNotFoundError) != allowed, (i, result)
    shared = await store.list_messages("shared")
    assert [m.content for m in shared] == [f"m{i}" for i in expected_shared]
    assert [m.seq for m in shared] == list(range(1, len(expected_shared) + 1))
    other = await store.list_messages("other")
    assert [m.content for m in other] == [f"m{i}" for i in expected_other]
    session = await store.get_session("shared")
    assert session is not None
    assert session.revision == len(expected_shared)
    assert store.appender.batches < 60


async def test_a_failing_batch_acknowledges_nobody_and_leaves_no_gap(
    store: SqlSessionStore,
) -> None:
    await store.create_session("s", "alice")
    await store.create_session("t", "alice")
    await store.append("s", msg("before"))
    # A row planted where the next append of "s" goes: the batch's insert hits the primary key,
    # a real database failure inside the batch's transaction (statement, on PostgreSQL).
    async with store.database.write() as tx:
        await tx.execute(
            "INSERT INTO relay_messages (session_id, seq, role, metadata, token_counts, codec,"
            " content_size, content, created_at_us) VALUES ('s', 2, 'user', '{}', '{}', 'raw',"
            " 1, $1, 0)",
            b"x",
        )
    batches = store.appender.batches
    results = await asyncio.gather(
        *(store.append("s" if i % 2 else "t", msg(f"lost {i}")) for i in range(40)),
        return_exceptions=True,
    )
    # Nobody was told their append is stored: every caller got the batch's failure.
    assert all(isinstance(r, Exception) for r in results), results
    assert store.appender.batches == batches
    async with store.database.write() as tx:
        await tx.execute("DELETE FROM relay_messages WHERE session_id = 's' AND seq = 2")
    # Nothing of the failed batches is there, and seqs go on from the last commit.
    assert [m.content for m in await store.list_messages("s")] == ["before"]
    assert await store.list_messages("t") == []
    after = await asyncio.gather(store.append("s", msg("after")), store.append("t", msg("t1")))
    assert [m.seq for m in after] == [2, 1]
    session = await store.get_session("s")
    assert session is not None
    assert session.last_seq == 2


async def test_keyed_and_grouped_appends_interleave_in_order(store: SqlSessionStore) -> None:
    await store.create_session("s", "alice")

    async def keyed(i: int) -> int:
        message = msg(f"k{i}")
        stored, _ = await store.append_once(
            "s", message, request_key=f"key-{i % 10}", fingerprint=message.fingerprint()
        )
        return stored.seq

    async def plain(i: int) -> int:
        return (await store.append("s", msg(f"p{i}"))).seq

    results = await asyncio.gather(
        *(plain(i) for i in range(60)), *(keyed(i) for i in range(10)), return_exceptions=True
    )
    assert not [r for r in results if isinstance(r, BaseException)]
    messages = await store.list_messages("s")
    assert [m.seq for m in messages] == list(range(1, 71))
    assert sorted(m.content for m in messages) == sorted(
        [f"p{i}" for i in range(60)] + [f"k{i}" for i in range(10)]
    )


async def test_close_commits_what_is_queued(store_config: dict[str, Any]) -> None:
    store = build_store(store_config)
    await store.open()
    await store.create_session("s", "alice")
    pending = [asyncio.ensure_future(store.append("s", msg(f"m{i}"))) for i in range(20)]
    await asyncio.sleep(0)  # queued, not yet committed
    await store.close()
    assert sorted(m.seq for m in await asyncio.gather(*pending)) == list(range(1, 21))
    async with build_store(store_config) as reopened:
        assert await reopened.count_messages("s") == 20


async def test_a_killed_group_committing_writer_loses_no_acknowledged_append(
    store: SqlSessionStore, store_config: dict[str, Any]
) -> None:
    sessions = ["k0", "k1", "k2"]
    for sid in sessions:
        await store.create_session(sid, "alice")
    go = SPAWN.Event()
    receive_acks, send_acks = SPAWN.Pipe(duplex=False)
    victim = SPAWN.Process(
        target=concurrent_append_worker,
        args=(store_config, sessions, "victim", 24, go, send_acks),
    )
    victim.start()
    send_acks.close()
    go.set()
    acks: list[tuple[str, int, int]] = []
    try:
        while len(acks) < 300:
            assert receive_acks.poll(PATIENCE_SECONDS), "the writer stopped acknowledging"
            acks.append(receive_acks.recv())
    finally:
        os.kill(victim.pid, signal.SIGKILL)  # type: ignore[arg-type]
        victim.join(PATIENCE_SECONDS)
    assert victim.exitcode == -signal.SIGKILL
    while True:  # acknowledgements sent before the kill are still in the pipe
        try:
            acks.append(receive_acks.recv())
        except EOFError:
            break
    for sid in sessions:
        messages = await store.list_messages(sid)
        # Gap-free, and every acknowledged append is stored where it was acknowledged.
        assert [m.seq for m in messages] == list(range(1, len(messages) + 1))
        by_seq = {m.seq: m.content for m in messages}
        for acked_sid, i, seq in acks:
            if acked_sid == sid:
                assert by_seq[seq] == f"victim:{i}"
    # The store is usable after the kill (no lock left behind).
    after = await store.append("k0", msg("after"))
    assert after.seq == len(await store.list_messages("k0"))
