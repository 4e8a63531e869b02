"""ContextRelay's JSON push envelope parsed as it streams in (``handoff/envelope.py``): the
same answers as ``json.loads`` for any split of the body, malformed bodies refused, and a large
``data`` pushed in bounded memory."""

from __future__ import annotations

import json
import random
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from handoff_support import open_relay
from relay_context.errors import InvalidArgumentError, PayloadTooLargeError
from relay_context.handoff.envelope import EnvelopeParser


async def _pieces(body: bytes, split: int) -> AsyncIterator[bytes]:
    for start in range(0, len(body), split):
        yield body[start : start + split]


async def _parse(
    body: bytes, split: int, *, piece_bytes: int = 1024, field_limit: int = 200
) -> tuple[bytes, dict[str, Any]]:
    parser = EnvelopeParser(field_limit=field_limit, piece_bytes=piece_bytes)
    data = b"".join([piece async for piece in parser.data(_pieces(body, split))])
    return data, parser.fields


# Characters that stress the cut points: quotes and backslashes (escaped), multi-byte UTF-8,
# astral characters (surrogate pairs when ASCII-escaped), control characters (escaped).
ALPHABET = ["a", '"', "\\", "\n", "é", "😀", "\u2028", "\x01", "/", "中", "\ud7ff", " "]


async def test_any_split_gives_what_json_loads_gives() -> None:
    rng = random.Random(12)
    for _ in range(1500):
        text = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 300)))
        doc: dict[str, Any] = {
            "channel": "c",
            "data": text,
            "metadata": {"k": [1, 2.5, "x", None, True]},
            "ttl": 12345,
        }
        keys = list(doc)
        rng.shuffle(keys)
        body = json.dumps({k: doc[k] for k in keys}, ensure_ascii=rng.random() < 0.5).encode()
        data, fields = await _parse(body, rng.randint(1, 40), piece_bytes=rng.randint(1, 64))
        assert data == text.encode()
        assert fields == {k: v for k, v in doc.items() if k != "data"}


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"", "ended"),
        (b"{", "not valid JSON"),
        (b"[1]", "an object expected"),
        (b'{"data": 1}', 'string "data"'),
        (b'{"a": 1}', 'string "data"'),
        (b'{"data":"x', "ended inside"),
        (b'{"data":"x\\', "ended inside"),
        (b'{"data":"x"', "ended where"),
        (b'{"data":"x"} x', "extra data"),
        (b'{"data":"a","data":"b"}', "twice"),
        (b'{"data":"a",}', "not valid JSON"),
        (b'{"data":"\\x"}', "not valid JSON"),
        (b'{"data":"\x01"}', "not valid JSON"),
        (b'{"data":"\xff"}', "not UTF-8"),
        (b'{"data":"\\ud800"}', "lone surrogate"),
        (b'{"data":"\\udc00\\ud800"}', "lone surrogate"),
        (b'{1: "x", "data": "y"}', "not valid JSON"),
    ],
)
async def test_malformed_bodies_are_refused(body: bytes, why: str) -> None:
    for split in (1, 3, 1000):
        with pytest.raises(InvalidArgumentError, match=why):
            await _parse(body, split)


async def test_a_member_other_than_data_is_bounded() -> None:
    body = b'{"metadata": {"x": "' + b"y" * 500 + b'"}, "data": "a"}'
    with pytest.raises(PayloadTooLargeError, match="other than data"):
        await _parse(body, 64, field_limit=200)


async def test_a_large_json_push_is_stored_in_bounded_memory(tmp_path: Path, clock: Any) -> None:
    """20 MB of text in the envelope: ``json.loads`` of the body would hold it at least twice
    (the body and the decoded string: 40+ MB); parsed as it streams, a few chunks."""
    line = 'an "escaped" line of text, ünïcode and a tab\t\n'
    text = line * (20 * 1024 * 1024 // len(line))
    body = json.dumps({"metadata": {"run": 7}, "data": text, "channel": "big"}).encode()
    chunk = 256 * 1024
    config = {"backend": "sqlite", "path": str(tmp_path / "relay.db")}
    async with open_relay(config, tmp_path, clock, chunk_bytes=chunk) as relay:

        async def body_pieces() -> AsyncIterator[bytes]:
            # The body as a server receives it (64 KiB pieces), never whole in this process's
            # traced memory: each piece is a fresh copy of a slice.
            view = memoryview(body)
            for start in range(0, len(view), 65536):
                yield bytes(view[start : start + 65536])

        tracemalloc.start()
        try:
            info, event = await relay.push_envelope(body_pieces())
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert info.size == len(text.encode())
        assert info.metadata == {"run": 7}
        assert event is not None
        assert event.channel == "big"
        assert peak < 8 * chunk, f"peak {peak / 2**20:.1f} MiB for a 20 MiB payload"
        _, stored = await relay.read_all(info.id)
        assert stored == text.encode()


@pytest.mark.parametrize(
    "body",
    [
        b'{"data": "x", "ttl": NaN}',
        b'{"data": "x", "ttl": 1e999999}',
        b'{"data": "x", "ttl": ' + b"9" * 5000 + b"}",
        b'{"data": "x", "metadata": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b'{"data": "x", "metadata": {"k": "\\ud800"}}',
        b'{"data": "x", "metadata": {"\\udc00": 1}}',
    ],
)
async def test_the_other_members_are_strict_json(body: bytes) -> None:
    # As strict as checks.parse_json: no NaN, no out-of-range numbers, bounded nesting, text.
    for split in (7, 100_000):
        with pytest.raises(InvalidArgumentError):
            await _parse(body, split, field_limit=100_000)
