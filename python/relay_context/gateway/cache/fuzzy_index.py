"""The fuzzy cache's index: cached answers found by their last user message.

A request splits (:func:`split_request`) into its context — digests of the scope, API family,
model, tools, system prompt and everything else that changes the answer — and the text of its
last user message. :class:`FuzzyIndex` keeps, per cached entry, that context and text; a lookup
finds stored texts near the incoming one with the C++ :class:`NearDuplicateIndex` (MinHash-LSH
over character 3-shingles of the normalised text, verified exactly), keeps those whose context
is equal, and returns the most similar one the guard (:mod:`.fuzzy_guard`) accepts.

Bounded: at most ``max_entries`` texts, the oldest evicted first.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from relay_context.core.fuzzy import NearDuplicateIndex
from relay_context.gateway.cache import fuzzy_guard as guard
from relay_context.gateway.cache.fuzzy_guard import FuzzyContext, FuzzyThresholds, Verdict

#: Body fields that never change an answer (as the exact cache's key ignores them).
IGNORED_FIELDS = frozenset(
    {"user", "metadata", "stream", "stream_options", "store", "service_tier", "model"}
)
#: Shingle Jaccard a stored text needs to be looked at (the guard decides; this only prunes).
CANDIDATE_JACCARD = 0.45
#: 64 bands of 2 rows: a text of Jaccard 0.45 is a candidate with probability > 0.9999.
NUM_PERM = 128
BANDS = 64


def _digest(value: Any) -> str:
    data = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(data.encode("utf-8", "surrogatepass")).hexdigest()


def _user_text(message: Any) -> str | None:
    """The text of a user message made of text only (anything else is never fuzzy-matched)."""
    if not isinstance(message, dict) or message.get("role") != "user":
        return None
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content:
        texts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                return None
            texts.append(str(part.get("text", "")))
        return "\n".join(texts)
    return None


def split_request(
    family: str, body: dict[str, Any], *, upstream_model: str, scope: str
) -> tuple[FuzzyContext, str] | None:
    """The context and last user text of an OpenAI or Anthropic chat request; ``None`` when it
    cannot be fuzzy-matched (no text-only last user message, or another API)."""
    if family not in ("openai", "anthropic"):
        return None
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    text = _user_text(messages[-1])
    if text is None:
        return None
    earlier = messages[:-1]
    if family == "openai":
        system: Any = [
            m for m in earlier if isinstance(m, dict) and m.get("role") in ("system", "developer")
        ]
        earlier = [m for m in earlier if m not in system]
    else:
        system = body.get("system")
        if isinstance(system, str):
            system = [{"type": "text", "text": system}] if system else []
    rest = {
        k: v
        for k, v in body.items()
        if k not in IGNORED_FIELDS and k not in ("messages", "system", "tools")
    }
    rest["messages"] = earlier
    context = FuzzyContext(
        scope=scope,
        family=family,
        model=upstream_model,
        tools=_digest(body.get("tools") or []),
        system=_digest(system or []),
        rest=_digest(rest),
    )
    return context, text


@dataclass(frozen=True, slots=True)
class FuzzyMatch:
    entry_key: str
    verdict: Verdict


@dataclass
class FuzzyLookup:
    """A lookup's outcome: the match, if any, and why the near candidates were refused."""

    match: FuzzyMatch | None = None
    refused: list[str] = field(default_factory=list)


class FuzzyIndex:
    def __init__(self, *, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._near = NearDuplicateIndex(num_perm=NUM_PERM, bands=BANDS)
        self._entries: OrderedDict[str, tuple[FuzzyContext, str]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, entry_key: str, context: FuzzyContext, text: str) -> None:
        """Stores (or replaces) the entry ``entry_key`` answering ``text`` in ``context``."""
        with self._lock:
            self._entries.pop(entry_key, None)
            self._entries[entry_key] = (context, text)
            self._near.add(entry_key, guard.normalise(text))
            while len(self._entries) > self.max_entries:
                old, _ = self._entries.popitem(last=False)
                self._near.remove(old)

    def remove(self, entry_key: str) -> None:
        with self._lock:
            if self._entries.pop(entry_key, None) is not None:
                self._near.remove(entry_key)

    def lookup(self, context: FuzzyContext, text: str, thresholds: FuzzyThresholds) -> FuzzyLookup:
        """The stored entry of equal context whose text the guard accepts for ``text``, most
        similar first."""
        out = FuzzyLookup()
        normalised = guard.normalise(text)
        if len(normalised) < thresholds.min_chars:
            return out
        hits = self._near.query(normalised, CANDIDATE_JACCARD)
        for hit in hits:
            with self._lock:
                stored = self._entries.get(hit.key)
            if stored is None:
                continue
            verdict = guard.judge_request(stored, (context, text), thresholds)
            if verdict.ok:
                if out.match is None or verdict.similarity > out.match.verdict.similarity:
                    out.match = FuzzyMatch(hit.key, verdict)
            elif verdict.reason != "context":
                out.refused.append(verdict.reason)
        return out


__all__ = ["FuzzyIndex", "FuzzyLookup", "FuzzyMatch", "split_request"]
