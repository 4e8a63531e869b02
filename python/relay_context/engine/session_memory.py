"""``SessionMemory``: what the engine keeps of sessions in memory, bounded by bytes (LRU).

The engine keeps a session's messages between windows (to read only what changed), and its
planner keeps the session's plan (token costs, word index) and near-duplicate index. All of it
grows with the session's length, so a bound on the number of sessions is no bound at all: 64
sessions of 10,000 messages hold gigabytes. ``SessionMemory`` holds each session's entry with
its estimated size in bytes (:func:`message_footprint` per message) and evicts the least
recently used sessions while the total is over ``max_bytes``, telling ``on_evict`` so that the
planner drops the session too. An evicted session is read from the store again on next use
(the window is the same; only the time to build it differs).

The entry used last is always kept, even alone over the bound: the request using it holds it in
memory anyway, and dropping it would make every window of a session that large a full re-read.
So the memory held is at most ``max(max_bytes, the largest session in use)``.
"""

from __future__ import annotations

import operator
import sys
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from relay_context.checks import check_int
from relay_context.engine.models import StoredMessage
from relay_context.errors import InvalidArgumentError

V = TypeVar("V")

#: Bytes a kept message costs besides its content: the ``StoredMessage`` with its dicts, its
#: ``Candidate`` and token-cost entries in the plan, its entries in the C++ word and MinHash
#: indexes (about two thirds of it). Measured: RSS per message of an engine holding 50 sessions
#: of 100 messages with windows built (history, plans and near-duplicate indexes warm) is ~5.3
#: KB at 205 characters of content and ~9.4 KB at 2,058, i.e. ~4.8 KB + ~2.2 bytes/character.
MESSAGE_OVERHEAD_BYTES = 4096
#: Times a message's content size (``sys.getsizeof`` of the string) is counted: the message
#: itself, the plan's word index, the near-duplicate shingles; rounded up from the measured 2.2.
CONTENT_COPIES = 3


def message_footprint(message: StoredMessage) -> int:
    """Estimated bytes a session's message costs while the engine keeps the session."""
    return CONTENT_COPIES * sys.getsizeof(message.content) + MESSAGE_OVERHEAD_BYTES


_CONTENT = operator.attrgetter("content")


def messages_footprint(messages: Iterable[StoredMessage]) -> int:
    """``sum(map(message_footprint, messages))``, in C-level calls only (a session's first
    window counts all of its messages)."""
    listed = messages if isinstance(messages, list) else list(messages)
    content_bytes = sum(map(sys.getsizeof, map(_CONTENT, listed)))
    return CONTENT_COPIES * content_bytes + MESSAGE_OVERHEAD_BYTES * len(listed)


class SessionMemory(Generic[V]):
    """An LRU of per-session entries whose total size (bytes, as given) stays at most
    ``max_bytes``, except for the entry used last (see the module docs). ``max_bytes=0`` keeps
    only that one. ``on_evict(session_id)`` is called for each entry evicted by the bound (not
    for :meth:`forget`)."""

    def __init__(self, max_bytes: int, *, on_evict: Callable[[str], None] | None = None) -> None:
        self.max_bytes = check_int(max_bytes, "max_bytes", minimum=0)
        self._on_evict = on_evict
        # session id -> (entry, its size in bytes); least recently used first.
        self._entries: OrderedDict[str, tuple[V, int]] = OrderedDict()
        self.total_bytes = 0
        #: Entries evicted by the bound since this was made.
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def get(self, session_id: str) -> V | None:
        """The entry (marked as used now), else ``None``."""
        found = self._entries.get(session_id)
        if found is None:
            return None
        self._entries.move_to_end(session_id)
        return found[0]

    def __getitem__(self, session_id: str) -> V:
        found = self.get(session_id)
        if found is None:
            raise KeyError(session_id)
        return found

    def size_of(self, session_id: str) -> int:
        """The bytes the entry is counted for (0 if there is none)."""
        found = self._entries.get(session_id)
        return 0 if found is None else found[1]

    def put(self, session_id: str, entry: V, nbytes: int) -> None:
        """Keep ``entry`` of ``nbytes`` as the session's (replacing any), as used now; then
        evict the least recently used others while the total is over the bound."""
        if nbytes < 0:
            raise InvalidArgumentError(f"nbytes must be >= 0, got {nbytes}")
        old = self._entries.pop(session_id, None)
        if old is not None:
            self.total_bytes -= old[1]
        self._entries[session_id] = (entry, nbytes)
        self.total_bytes += nbytes
        while self.total_bytes > self.max_bytes and len(self._entries) > 1:
            victim, (_, size) = self._entries.popitem(last=False)
            self.total_bytes -= size
            self.evictions += 1
            if self._on_evict is not None:
                self._on_evict(victim)

    def forget(self, session_id: str) -> None:
        """Drop the session's entry, if any (no ``on_evict``)."""
        old = self._entries.pop(session_id, None)
        if old is not None:
            self.total_bytes -= old[1]


__all__ = [
    "CONTENT_COPIES",
    "MESSAGE_OVERHEAD_BYTES",
    "SessionMemory",
    "message_footprint",
    "messages_footprint",
]
