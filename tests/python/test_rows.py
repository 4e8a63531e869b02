"""MessageRowDecoder (C++) against the store's one-row Python decoding, the reference it
falls back to: equal messages for every row form and codec (raw, zstd, LZ4, damaged frames),
the fallback for the uncommon ones, errors from bad rows."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay_context.core.compression import CompressionEngine
from relay_context.core.rows import MESSAGE_SLOTS, MessageRowDecoder, SlottedMaker
from relay_context.engine.codec import IdentityCodec
from relay_context.engine.models import MessageRole, StoredMessage
from relay_context.engine.store import sql
from relay_context.errors import CorruptFrameError, InputTypeError

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
    st.just("raw"),  # codec, content_size and content: made from the text (see stored_rows)
    st.just(0),
    st.just(b""),
    st.one_of(
        st.integers(min_value=MIN_US, max_value=MAX_US),
        st.integers(min_value=0, max_value=2**53),
        st.sampled_from([0, -1, 1, US_PER_DAY - 1, MIN_US, MAX_US, 951_782_400_000_000]),
    ),
    st.one_of(st.none(), st.binary(max_size=16)),
)


ZSTD = CompressionEngine(algorithm="zstd")
LZ4 = CompressionEngine(algorithm="lz4")
CODECS = {"raw": IdentityCodec(), "zstd": ZSTD, "lz4": LZ4}


def text_of(row: Sequence[Any]) -> str:
    """The reference content of a row: its codec's decompress, checked against the size."""
    data = CODECS[row[8]].decompress(bytes(row[10]))
    if len(data) != row[9]:
        raise CorruptFrameError(f"{len(data)} bytes where {row[9]} were stored")
    return data.decode("utf-8")


def fallback(row: Any, text: str | None) -> StoredMessage:
    return sql._message_of_row(row, text_of(row) if text is None else text)


def decoder(native: str = "zstd", on_row: Any = fallback) -> MessageRowDecoder[StoredMessage]:
    return MessageRowDecoder(
        StoredMessage,
        roles=sql._ROLE_BY_VALUE,
        tz=timezone.utc,
        fallback=on_row,
        codec_tag=native,
        codec=CODECS[native],
    )


def stored_rows(rows: Sequence[tuple[Any, ...]], texts: Sequence[str], codecs: Sequence[str]):  # type: ignore[no-untyped-def]
    out = []
    for row, text, codec in zip(rows, texts, codecs, strict=True):
        data = text.encode("utf-8", "surrogatepass")
        out.append((*row[:8], codec, len(data), CODECS[codec].compress(data), *row[11:]))
    return out


def reference(rows: Sequence[Any]) -> list[StoredMessage]:
    return [sql._message_of_row(row, text_of(row)) for row in rows]


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
@given(
    st.lists(
        st.tuples(rows, st.text(max_size=300), st.sampled_from(["raw", "zstd", "lz4"])),
        max_size=30,
    ),
    st.sampled_from(["zstd", "lz4"]),
)
def test_decoder_equals_reference(cases: list[tuple[Any, str, str]], native: str) -> None:
    texts = [text for _, text, _ in cases]
    if any("\ud800" <= c <= "\udfff" for t in texts for c in t):
        return  # not UTF-8: tested below
    batch = stored_rows([r for r, _, _ in cases], texts, [c for _, _, c in cases])
    want = reference(batch)
    assert_same(decoder(native).decode(batch), want)
    # A driver's record type takes the same path after a tuple() of it.
    assert_same(decoder(native).decode([Record(row) for row in batch]), want)


def row(**changes: Any) -> tuple[Any, ...]:
    base: dict[str, Any] = dict.fromkeys(sql._MESSAGE_COLUMNS.replace(" ", "").split(","))
    base.update(
        session_id="s",
        seq=1,
        role="user",
        metadata="{}",
        token_counts='{"o200k_base": 3}',
        codec="raw",
        content_size=1,
        content=b"x",
        created_at_us=0,
    )
    base.update(changes)
    return tuple(base.values())


def test_common_rows_are_made_in_cpp_and_others_by_the_fallback() -> None:
    calls: list[tuple[int, str | None]] = []

    def counting(r: Any, text: str | None) -> StoredMessage:
        calls.append((r[1], text))
        return fallback(r, text)

    rows = decoder(on_row=counting)
    frame = ZSTD.compress(b"hello")
    batch = [
        row(seq=1),
        row(seq=2, tool_calls=tool_calls_json(1), role="assistant"),
        row(seq=3, metadata='{"pinned": true}'),
        row(seq=4, dedup_signature=memoryview(b"abcd")),  # not bytes as the drivers give
        row(seq=5, codec="zstd", content_size=5, content=frame),
        row(seq=6, codec="lz4", content_size=5, content=LZ4.compress(b"hello")),  # not native
        row(seq=7, name="bob", tool_call_id="call_1", dedup_signature=b"\x00" * 4),
        row(seq=8, content=memoryview(b"x")),
    ]
    got = rows.decode(batch)
    assert calls == [(2, "x"), (3, "x"), (4, "x"), (6, None), (8, None)]
    assert_same(got, reference(batch))
    assert got[4].content == "hello"
    assert got[0].token_counts is not got[6].token_counts  # each message has its own dict
    assert got[0].metadata is not got[6].metadata


def test_rows_that_cannot_be_made_raise_from_the_fallback() -> None:
    rows = decoder()
    frame = ZSTD.compress(b"hello")
    with pytest.raises(OverflowError):
        rows.decode([row(created_at_us=MAX_US + 1)])  # out of datetime's range
    with pytest.raises(IndexError):
        rows.decode([row()[:-1]])  # a column short
    with pytest.raises(KeyError):
        rows.decode([row(role="robot")])
    with pytest.raises(json.JSONDecodeError):
        rows.decode([row(token_counts="{")])
    with pytest.raises(UnicodeDecodeError):
        rows.decode([row(content=b"\xff")])
    with pytest.raises(CorruptFrameError):
        rows.decode([row(codec="zstd", content_size=5, content=frame[:-1])])  # cut short
    with pytest.raises(CorruptFrameError):
        rows.decode([row(codec="zstd", content_size=4, content=frame)])  # another size
    with pytest.raises(CorruptFrameError):
        rows.decode([row(content_size=2)])  # raw, another size


def test_decoder_checks_its_message_type() -> None:
    class Plain:
        pass

    with pytest.raises(KeyError):
        MessageRowDecoder(Plain, roles={}, tz=timezone.utc, fallback=lambda r, t: Plain())
    with pytest.raises(InputTypeError):
        MessageRowDecoder("StoredMessage", roles={}, tz=timezone.utc, fallback=print)  # type: ignore[arg-type]
    with pytest.raises(InputTypeError):
        MessageRowDecoder(StoredMessage, roles={}, tz=timezone.utc, fallback=None)  # type: ignore[arg-type]


def test_common_form_messages_are_not_tracked_by_the_cycle_collector() -> None:
    """A session's kept messages are not walked by every collection of the older
    generations: those the decoder makes hold nothing that can refer back to them. Messages
    with tool calls or metadata (containers from JSON) are made by the fallback, tracked."""
    got = decoder().decode(
        [row(seq=1), row(seq=2, metadata='{"pinned": true}'), row(seq=3, name="n")]
    )
    assert [gc.is_tracked(m) for m in got] == [False, True, False]


@dataclass(frozen=True, slots=True)
class Point:
    x: int
    y: str
    z: tuple[int, ...] = ()


def test_slotted_maker_makes_what_the_constructor_makes() -> None:
    maker = SlottedMaker(Point, ("x", "y", "z"))
    made = maker.make([[1, 2, 3], ["a", "b", "c"], [(), (1,), (2, 3)]])
    assert made == [Point(1, "a"), Point(2, "b", (1,)), Point(3, "c", (2, 3))]
    assert all(type(p) is Point for p in made)
    assert maker.make([[], [], []]) == []


def test_slotted_maker_errors() -> None:
    maker = SlottedMaker(Point, ("x", "y", "z"))
    with pytest.raises(ValueError, match="2 columns for 3 slots"):
        maker.make([[1], ["a"]])
    with pytest.raises(ValueError, match="differ in length"):
        maker.make([[1, 2], ["a"], [()]])
    with pytest.raises(TypeError, match="must be lists"):
        maker.make([(1,), ["a"], [()]])
    with pytest.raises(TypeError, match="is not a slot"):
        SlottedMaker(Point, ("x", "__init__"))
    with pytest.raises(KeyError):
        SlottedMaker(Point, ("w",))
    with pytest.raises(InputTypeError):
        SlottedMaker("Point", ("x",))  # type: ignore[arg-type]


def test_make_candidates_equals_make_candidate() -> None:
    from relay_context.engine.policies.base import make_candidate, make_candidates

    got = decoder().decode([row(seq=i) for i in range(1, 6)])
    tokens, content, pins, groups = (
        [9, 8, 7, 6, 5],
        [4, 3, 2, 1, 0],
        [True, False] * 2 + [True],
        [
            None,
            2,
            2,
            None,
            5,
        ],
    )
    made = make_candidates(got, tokens, content, pins, groups)
    want = [make_candidate(*args) for args in zip(got, tokens, content, pins, groups, strict=True)]
    assert made == want
    assert [c.seq for c in made] == [1, 2, 3, 4, 5]
