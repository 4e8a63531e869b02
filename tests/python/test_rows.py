"""MessageRowDecoder (C++) against the store's one-row Python decoding, the reference it
falls back to: equal messages for every row form, the fallback for the uncommon ones, errors
from bad rows."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from datetime import timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay_context.core.rows import MESSAGE_SLOTS, MessageRowDecoder
from relay_context.engine.models import MessageRole, StoredMessage
from relay_context.engine.store import sql
from relay_context.errors import InputTypeError

ROLES = [role.value for role in MessageRole]
US_PER_DAY = 86_400_000_000
# datetime's range in microseconds since the epoch: 0001-01-01 to 9999-12-31 23:59:59.999999.
MIN_US = -719_162 * US_PER_DAY
MAX_US = 2_932_897 * US_PER_DAY - 1


class Record:
    """A row as asyncpg gives it: a sequence, not a tuple."""

    def __init__(self, values: Sequence[Any]) -> None:
        self._values = tuple(values)

    def __getitem__(self, i: int) -> Any:
        return self._values[i]

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)


def tool_calls_json(n: int) -> str:
    return json.dumps(
        [
            {"id": f"call_{i}", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            for i in range(n)
        ]
    )


names = st.one_of(st.none(), st.text(max_size=8))
rows = st.tuples(
    st.just("sess-1"),
    st.integers(min_value=1, max_value=2**40),
    st.sampled_from(ROLES),
    names,
    names,
    st.one_of(st.none(), st.integers(min_value=0, max_value=2).map(tool_calls_json)),
    st.one_of(st.just("{}"), st.just('{"pinned": true}'), st.just('{"a": [1, 2]}')),
    st.dictionaries(
        st.sampled_from(["o200k_base", "cl100k_base"]), st.integers(0, 10**6), max_size=2
    ).map(json.dumps),
    st.just("raw"),
    st.just(0),
    st.just(b""),
    st.one_of(
        st.integers(min_value=MIN_US, max_value=MAX_US),
        st.integers(min_value=0, max_value=2**53),
        st.sampled_from([0, -1, 1, US_PER_DAY - 1, MIN_US, MAX_US, 951_782_400_000_000]),
    ),
    st.one_of(st.none(), st.binary(max_size=16)),
)


def reference(rows: Sequence[Any], texts: Sequence[str]) -> list[StoredMessage]:
    return [sql._message_of_row(row, text) for row, text in zip(rows, texts, strict=True)]


def assert_same(got: Sequence[StoredMessage], want: Sequence[StoredMessage]) -> None:
    assert len(got) == len(want)
    for a, b in zip(got, want, strict=True):
        assert type(a) is StoredMessage
        for slot in MESSAGE_SLOTS:  # dedup_signature is not part of ==
            x, y = getattr(a, slot), getattr(b, slot)
            assert type(x) is type(y), slot
            assert x == y, slot
        assert a.created_at.tzinfo is timezone.utc
        assert a.role is b.role


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(rows, st.text(max_size=40)), max_size=30))
def test_decoder_equals_reference(cases: list[tuple[tuple[Any, ...], str]]) -> None:
    batch = [row for row, _ in cases]
    texts = [text for _, text in cases]
    assert_same(sql._ROW_DECODER.decode(batch, texts), reference(batch, texts))
    # A driver's record type takes the same path after a tuple() of it.
    records = [Record(row) for row in batch]
    assert_same(sql._ROW_DECODER.decode(records, texts), reference(batch, texts))


def row(**changes: Any) -> tuple[Any, ...]:
    base: dict[str, Any] = dict.fromkeys(sql._MESSAGE_COLUMNS.replace(" ", "").split(","))
    base.update(
        session_id="s",
        seq=1,
        role="user",
        metadata="{}",
        token_counts='{"o200k_base": 3}',
        codec="raw",
        content_size=0,
        content=b"",
        created_at_us=0,
    )
    base.update(changes)
    return tuple(base.values())


def test_common_rows_are_made_in_cpp_and_others_by_the_fallback() -> None:
    calls: list[Any] = []

    def fallback(r: Any, text: str) -> StoredMessage:
        calls.append(r[1])
        return sql._message_of_row(r, text)

    decoder = MessageRowDecoder(
        StoredMessage, roles=sql._ROLE_BY_VALUE, tz=timezone.utc, fallback=fallback
    )
    batch = [
        row(seq=1),
        row(seq=2, tool_calls=tool_calls_json(1), role="assistant"),
        row(seq=3, metadata='{"pinned": true}'),
        row(seq=4, created_at_us=MAX_US + 1),  # out of datetime's range
        row(seq=5, dedup_signature=memoryview(b"abcd")),  # not bytes as the drivers give
        row(seq=6)[:-1],  # a column short
        row(seq=7, name="bob", tool_call_id="call_1", dedup_signature=b"\x00" * 4),
    ]
    texts = ["a", "b", "c", "d", "e", "f", "g"]
    with pytest.raises(OverflowError):
        decoder.decode(batch[3:4], texts[3:4])
    assert calls == [4]
    calls.clear()
    del batch[3], texts[3]
    with pytest.raises(IndexError):
        decoder.decode(batch[4:5], texts[4:5])
    calls.clear()
    del batch[4], texts[4]
    got = decoder.decode(batch, texts)
    assert calls == [2, 3, 5]
    assert_same(got, reference(batch, texts))
    assert got[0].token_counts is not got[1].token_counts  # each message has its own dict


def test_counts_are_copied_per_message() -> None:
    batch = [row(seq=1), row(seq=2)]
    first, second = sql._ROW_DECODER.decode(batch, ["x", "y"])
    assert first.token_counts == second.token_counts == {"o200k_base": 3}
    assert first.token_counts is not second.token_counts
    assert first.metadata is not second.metadata


def test_bad_rows_raise_as_the_reference_does() -> None:
    with pytest.raises(KeyError):
        sql._ROW_DECODER.decode([row(role="robot")], ["x"])
    with pytest.raises(json.JSONDecodeError):
        sql._ROW_DECODER.decode([row(token_counts="{")], ["x"])
    with pytest.raises(ValueError, match="2 texts for 1 rows"):
        sql._ROW_DECODER.decode([row()], ["x", "y"])


def test_decoder_checks_its_message_type() -> None:
    class Plain:
        pass

    with pytest.raises(KeyError):
        MessageRowDecoder(Plain, roles={}, tz=timezone.utc, fallback=lambda r, t: Plain())
    with pytest.raises(InputTypeError):
        MessageRowDecoder("StoredMessage", roles={}, tz=timezone.utc, fallback=print)  # type: ignore[arg-type]
    with pytest.raises(InputTypeError):
        MessageRowDecoder(StoredMessage, roles={}, tz=timezone.utc, fallback=None)  # type: ignore[arg-type]
