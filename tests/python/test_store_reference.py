"""Random sequences of store operations against a plain Python list, on both back-ends."""

from __future__ import annotations

import random

import pytest

from relay_context.engine.models import MessageRole, NewMessage
from relay_context.engine.store.sql import SqlSessionStore


@pytest.mark.parametrize("seed", [1, 2])
async def test_random_operations_match_a_list(store: SqlSessionStore, seed: int) -> None:
    """Appends (single and batched), deletions of old messages and every kind of range read,
    in a random order, give what a list of (seq, content) gives."""
    rng = random.Random(seed)
    await store.create_session("ref", "alice")
    reference: list[tuple[int, str]] = []
    next_seq = 1
    for step in range(150):
        action = rng.random()
        if action < 0.45:
            batch = [f"s{step}m{k}" + "x" * rng.randrange(0, 300) for k in range(rng.randint(1, 4))]
            stored = await store.append_many(
                "ref", [NewMessage(MessageRole.USER, text) for text in batch]
            )
            assert [m.seq for m in stored] == list(range(next_seq, next_seq + len(batch)))
            reference += [(m.seq, m.content) for m in stored]
            next_seq += len(batch)
        elif action < 0.5:
            before = rng.randint(1, next_seq)
            deleted = await store.delete_messages("ref", before_seq=before)
            assert deleted == sum(1 for seq, _ in reference if seq < before)
            reference = [(seq, text) for seq, text in reference if seq >= before]
        else:
            start = rng.randint(0, next_seq + 1)
            end = rng.choice([None, rng.randint(0, next_seq + 1)])
            limit = rng.choice([None, 0, 1, rng.randint(1, 10)])
            newest = rng.random() < 0.5
            expected = [
                item for item in reference if item[0] >= start and (end is None or item[0] <= end)
            ]
            if limit is not None:
                if limit == 0:
                    expected = []
                elif newest:
                    expected = expected[-limit:]
                else:
                    expected = expected[:limit]
            got = await store.list_messages(
                "ref", start_seq=start, end_seq=end, limit=limit, newest=newest
            )
            assert [(m.seq, m.content) for m in got] == expected, (start, end, limit, newest)
        assert await store.count_messages("ref") == len(reference)
