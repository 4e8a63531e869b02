"""The fuzzy cache's candidates shared by replicas through Redis.

:class:`~relay_context.gateway.cache.fuzzy_index.FuzzyIndex` is per process. When the exact
cache's entries live in Redis (shared by every replica), each fuzzy candidate — the entry's key,
its :class:`FuzzyContext` and its last user message — is also appended to a Redis stream of its
scope, ``<prefix>gw:fz:<sha256(scope)>``. Before a fuzzy lookup a replica reads the entries of
the caller's scope it has not seen yet (one non-blocking ``XREAD`` from the last id it read) into
its local index; the lookup itself, and the guard, stay local. So a replica fuzzy-hits entries
another replica stored, and a scope's candidates are only ever loaded for a caller of that scope
(the context, scope included, must still be equal to match).

Bounded: a scope's stream keeps about ``max_entries`` candidates (``MAXLEN ~``) and expires
with the cache's TTL after its last addition; a replica remembers its read position for at most
:data:`MAX_SCOPES` scopes (least recently used dropped: its next lookup reads that stream from the
start again). A candidate whose entry has expired is dropped on the miss it causes, as a local
one is. Texts are prompts: with the cache's encryption keys set they are sealed like the entries
(the candidate's key as associated data). Every call is bounded by the store's deadline; a
failure leaves the lookup to the local index.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections import OrderedDict
from typing import Any

from redis.exceptions import RedisError

from relay_context.gateway.cache.fuzzy_guard import FuzzyContext
from relay_context.gateway.cache.fuzzy_index import FuzzyIndex
from relay_context.gateway.cache.redis_store import RedisStore

log = logging.getLogger(__name__)

#: Scopes whose read position a replica keeps.
MAX_SCOPES = 10_000
#: Candidates read in one lookup at most (the rest on the next ones).
READ_BATCH = 5_000
#: Format of a candidate's value (an unknown one is skipped).
CANDIDATE_VERSION = 1

_ERRORS = (RedisError, OSError, asyncio.TimeoutError)


def _associated(entry_key: str) -> str:
    """The sealing id of a candidate: never an entry's own id, so neither opens as the other."""
    return "fuzzy:" + entry_key


class SharedFuzzyCandidates:
    def __init__(self, index: FuzzyIndex, *, key_prefix: str) -> None:
        self.index = index
        self.key_prefix = key_prefix + "gw:fz:"
        #: Per scope stream: the id of the last candidate read into the index.
        self._read: OrderedDict[str, bytes] = OrderedDict()

    def _stream(self, scope: str) -> str:
        return self.key_prefix + hashlib.sha256(scope.encode()).hexdigest()

    async def publish(
        self,
        store: RedisStore,
        entry_key: str,
        context: FuzzyContext,
        text: str,
        *,
        ttl_seconds: float,
    ) -> bool:
        """Appends a stored entry's candidate to its scope's stream; ``False`` on failure."""
        value = json.dumps(
            {
                "v": CANDIDATE_VERSION,
                "c": [
                    context.scope,
                    context.family,
                    context.model,
                    context.tools,
                    context.system,
                    context.rest,
                ],
                "t": text,
            },
            ensure_ascii=False,
        ).encode("utf-8", "surrogatepass")
        if store.sealer is not None:
            value = store.sealer.seal(_associated(entry_key), value)
        stream = self._stream(context.scope)
        try:
            pipe = store.client.pipeline(transaction=False)
            pipe.xadd(stream, {"k": entry_key, "v": value}, maxlen=self.index.max_entries)
            pipe.pexpire(stream, max(1, int(ttl_seconds * 1000)))
            await asyncio.wait_for(pipe.execute(), store.deadline)
        except _ERRORS as exc:
            log.warning("fuzzy cache: candidate not shared (%s)", type(exc).__name__)
            return False
        return True

    async def load(self, store: RedisStore, scope: str) -> int:
        """Reads the scope's candidates this replica has not seen into the local index; how
        many (0 on failure)."""
        stream = self._stream(scope)
        last = self._read.get(stream, b"0-0")
        try:
            found: Any = await asyncio.wait_for(
                store.client.xread({stream: last}, count=READ_BATCH), store.deadline
            )
        except _ERRORS as exc:
            log.warning("fuzzy cache: shared candidates unread (%s)", type(exc).__name__)
            return 0
        self._read[stream] = last
        self._read.move_to_end(stream)
        while len(self._read) > MAX_SCOPES:
            self._read.popitem(last=False)
        loaded = 0
        for _, entries in found or []:
            for entry_id, fields in entries:
                self._read[stream] = entry_id
                candidate = self._decode(store, fields, scope)
                if candidate is not None:
                    self.index.add(*candidate)
                    loaded += 1
        return loaded

    @staticmethod
    def _decode(
        store: RedisStore, fields: dict[bytes, bytes], scope: str
    ) -> tuple[str, FuzzyContext, str] | None:
        try:
            entry_key = fields[b"k"].decode()
            value: bytes | None = fields[b"v"]
            if store.sealer is not None:
                assert value is not None
                value = store.sealer.open(_associated(entry_key), value)
            if value is None:
                return None  # sealed with a key this replica does not have
            data = json.loads(value)
            if not isinstance(data, dict) or data.get("v") != CANDIDATE_VERSION:
                return None
            context = FuzzyContext(*(str(x) for x in data["c"]))
            text = data["t"]
        except (KeyError, TypeError, ValueError, UnicodeDecodeError):
            return None
        if context.scope != scope or not isinstance(text, str):
            return None  # never another scope's, whatever the stream holds
        return entry_key, context, text


__all__ = ["SharedFuzzyCandidates"]
