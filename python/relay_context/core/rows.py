"""``MessageRowDecoder``: a store's message rows into message objects, in one C++ pass.

A session's first window in a process reads every row of the session; made one by one in
Python, each row costs a dozen calls (role lookup, datetime arithmetic, a dict copy, a setter per
slot), which was the largest single cost of that window. The decoder restores the contents
stored raw or with the store's :class:`~relay_context.core.compression.CompressionEngine` (all
frames in one pass), makes the rows of the common form (no tool calls, empty metadata) in C++,
and hands every other row to ``fallback``, the store's own Python decoding of one row, so both
paths give equal objects.

A row is the store's column list, in this order::

    session_id, seq, role, name, tool_call_id, tool_calls, metadata, token_counts, codec,
    content_size, content, created_at_us, dedup_signature

(``content`` is UTF-8 of ``content_size`` bytes when ``codec`` is the raw tag, else a frame of
the codec tagged ``codec_tag``; any other content goes to the fallback.) The message class must
be slotted; its slots are written in the order ``session_id, seq, role, content, created_at,
name, tool_call_id, tool_calls, metadata, token_counts, dedup_signature``, bypassing
``__init__`` and a frozen class's ``__setattr__`` (stored rows were validated when they were
written).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import tzinfo
from typing import Any, Generic, TypeVar

from relay_context import _core
from relay_context.core.compression import CompressionEngine
from relay_context.errors import InputTypeError

T = TypeVar("T")

#: The slots written, in order.
MESSAGE_SLOTS = (
    "session_id",
    "seq",
    "role",
    "content",
    "created_at",
    "name",
    "tool_call_id",
    "tool_calls",
    "metadata",
    "token_counts",
    "dedup_signature",
)


class MessageRowDecoder(Generic[T]):
    """Makes ``message_type`` objects from rows.

    ``roles`` maps a stored role value to the role object; ``tz`` is the ``created_at`` zone
    (``created_at_us`` is microseconds since the Unix epoch); ``fallback(row, text)`` makes the
    message of any row the decoder does not make itself, and raises for a bad one: ``text`` is
    the content when the decoder restored it, else ``None`` (the fallback restores it, or says
    why it cannot). ``raw_tag`` tags contents stored as UTF-8; ``codec_tag`` those written by
    ``codec``, which the decoder restores itself when it is a ``CompressionEngine``."""

    def __init__(
        self,
        message_type: type[T],
        *,
        roles: Mapping[str, Any],
        tz: tzinfo,
        fallback: Callable[[Any, str | None], T],
        raw_tag: str = "raw",
        codec_tag: str = "",
        codec: object = None,
    ) -> None:
        if not isinstance(message_type, type):
            raise InputTypeError(f"message_type must be a class, got {type(message_type).__name__}")
        if not callable(fallback):
            raise InputTypeError("fallback must be callable")
        self.message_type = message_type
        native = codec.native_decompressor if isinstance(codec, CompressionEngine) else None
        self._core = _core.rows.MessageRowDecoder(
            message_type,
            MESSAGE_SLOTS,
            dict(roles),
            json.loads,
            tz,
            fallback,
            raw_tag,
            codec_tag,
            native,
        )

    def decode(self, rows: Sequence[Any]) -> list[T]:
        """The message of each row."""
        decoded: list[T] = self._core.decode(rows if type(rows) is list else list(rows))
        return decoded


class SlottedMaker(Generic[T]):
    """Makes ``cls`` objects from columns in one C++ pass: ``make([a, b, ...])`` gives, per row
    ``i``, an object whose slots ``slot_names`` are ``a[i], b[i], ...``, made as
    ``object.__new__(cls)`` and written past ``__init__`` and a frozen class's ``__setattr__``
    (for the positional makers of many objects whose values are already checked)."""

    def __init__(self, cls: type[T], slot_names: Sequence[str]) -> None:
        if not isinstance(cls, type):
            raise InputTypeError(f"cls must be a class, got {type(cls).__name__}")
        self.cls = cls
        self.slot_names = tuple(slot_names)
        self._core = _core.rows.SlottedMaker(cls, self.slot_names)

    def make(self, columns: Sequence[list[Any]]) -> list[T]:
        """One object per row of ``columns`` (lists of equal length, one per slot)."""
        made: list[T] = self._core.make(columns)
        return made


__all__ = ["MESSAGE_SLOTS", "MessageRowDecoder", "SlottedMaker"]
