"""``knapsack`` (the default policy): the most valuable messages that fit, chosen by the C++
:class:`~relay_context.core.knapsack.KnapsackSelector`.

A message's value is the product of

* **recency**: ``0.5 ** (age / recency_half_life_messages)``, age counted in messages from the
  newest (0), floored at 0.05 so that an old but relevant message can still win;
* **role weight**: user 1.0, assistant 0.8, tool 0.6, system 1.0 (system messages are pinned);
* **relevance** to the query (or the latest user turn): ``0.25 + tfidf`` where ``tfidf`` is the
  TF-IDF cosine from :func:`relay_context.core.drift.relevance_scores`, raised to at least
  ``token_set_ratio / 100`` of the fuzzy kernel for short messages (under 200 characters), whose
  few words make TF-IDF noisy;
* **importance**: ``metadata["importance"]`` (a number >= 0, default 1).

Pinned messages (system, latest user turn, ``metadata["pinned"]``) are always kept and a tool
call stays with its results (one group), as :mod:`.base` describes. The knapsack maximises the
total value within the budget, so it trades one long message for several short ones when they
are worth more together.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import math
import operator
from collections import OrderedDict
from collections.abc import Callable, Sequence

from relay_context.core import fuzzy
from relay_context.core.drift import relevance_scores
from relay_context.core.knapsack import ASYNC_OFFLOAD_ATOMS, KnapsackSelector
from relay_context.engine.models import MessageRole
from relay_context.engine.policies.base import (
    Candidate,
    PolicyContext,
    PolicyResult,
    PreparedCandidates,
    check_required,
    computed_once,
    prepared_for,
    window_message_maker,
)

ROLE_WEIGHTS = {
    MessageRole.SYSTEM: 1.0,
    MessageRole.USER: 1.0,
    MessageRole.ASSISTANT: 0.8,
    MessageRole.TOOL: 0.6,
}
RECENCY_FLOOR = 0.05
RELEVANCE_BASE = 0.25
FUZZY_MAX_CHARS = 200
#: Queries whose rows each session plan keeps (the plan lives until the session changes).
QUERIES_REMEMBERED = 8


def importance(c: Candidate) -> float:
    metadata = c.message.metadata
    if not metadata:  # most messages: no metadata at all
        return 1.0
    raw = metadata.get("importance", 1.0)
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not math.isfinite(raw):
        return 1.0
    return max(0.0, float(raw))


def message_values(candidates: Sequence[Candidate], ctx: PolicyContext) -> list[float]:
    """The value of each candidate (see the module docstring)."""
    prepared = prepared_for(ctx, candidates)
    return _values(_static(prepared, candidates, ctx), _relevance(prepared, candidates), ctx.query)


def _relevance(
    prepared: PreparedCandidates | None, candidates: Sequence[Candidate]
) -> Callable[[str], list[float]]:
    """TF-IDF relevance of every candidate to a query: on the session plan's word index when
    there is one, else over the texts."""
    if prepared is not None:
        return prepared.relevance
    texts = [c.message.content for c in candidates]
    return lambda query: list(relevance_scores(query, texts))


_RECENCY: dict[float, list[float]] = {}


def _recency(n: int, half_life: float) -> list[float]:
    """The recency factor of the newest ``n`` messages by age (0 = newest), made once per
    half-life and extended as sessions grow (the same floats as computing each anew)."""
    table = _RECENCY.get(half_life, [])
    if len(table) < n:
        # A longer table replaces the old one whole (engines in other threads may be reading).
        grown = [max(RECENCY_FLOOR, 0.5 ** (age / half_life)) for age in range(len(table), n)]
        table = table + grown
        if half_life not in _RECENCY and len(_RECENCY) >= 8:  # settings rarely change
            _RECENCY.clear()
        _RECENCY[half_life] = table
    return table[:n]


class _Static:
    """The query-independent factors of the values, per candidate (made once per session)."""

    def __init__(self, candidates: Sequence[Candidate], half_life: float) -> None:
        n = len(candidates)
        texts = [c.message.content for c in candidates]
        self.short = [i for i, text in enumerate(texts) if text and len(text) < FUZZY_MAX_CHARS]
        self.short_texts = [texts[i] for i in self.short]
        #: Their word sets, made once: each query then costs only its own split.
        self.short_scorer = fuzzy.TokenSetChoices(self.short_texts)
        #: role weight * recency (then times relevance and importance, in _values).
        weight_of = ROLE_WEIGHTS
        self.weights = list(
            map(
                operator.mul,
                [weight_of[c.message.role] for c in candidates],
                reversed(_recency(n, half_life)),
            )
        )
        self.importances = [importance(c) if c.message.metadata else 1.0 for c in candidates]
        self.tokens = [c.tokens for c in candidates]
        self.pinned = [c.pinned for c in candidates]
        self.groups = [c.group for c in candidates]
        self.ids = [c.seq for c in candidates]
        #: Tokens of the pinned units (``UnitColumns.required``, without making the units):
        #: ungrouped pinned messages, and every member of a group that has a pinned one.
        held = list(itertools.compress(range(n), self.pinned))  # a few: system, latest turn
        groups, tokens = self.groups, self.tokens
        held_groups = {groups[i] for i in held} - {None}
        self.required = sum(tokens[i] for i in held if groups[i] is None)
        if held_groups:
            self.required += sum(t for t, g in zip(tokens, groups, strict=True) if g in held_groups)
        #: The knapsack rows of the last few queries: a session read again at the same point
        #: (the same latest turn, or the same explicit query) scores nothing again.
        self.rows_by_query: OrderedDict[
            str | None, list[tuple[int, int, float, bool, int | None]]
        ] = OrderedDict()

    def rows(
        self, relevance: Callable[[str], list[float]], query: str | None
    ) -> list[tuple[int, int, float, bool, int | None]]:
        """``(id, tokens, value, pinned, group)`` per candidate for ``query``, remembered for
        the last :data:`QUERIES_REMEMBERED` queries."""
        rows = self.rows_by_query.get(query)
        if rows is not None:
            self.rows_by_query.move_to_end(query)
            return rows
        values = _values(self, relevance, query)
        # Plain data, read and checked in C++ in one pass (no per-column Python checks).
        rows = list(zip(self.ids, self.tokens, values, self.pinned, self.groups, strict=True))
        self.rows_by_query[query] = rows
        if len(self.rows_by_query) > QUERIES_REMEMBERED:
            self.rows_by_query.popitem(last=False)
        return rows


def _static(
    prepared: PreparedCandidates | None, candidates: Sequence[Candidate], ctx: PolicyContext
) -> _Static:
    half_life = ctx.settings.recency_half_life_messages
    return computed_once(prepared, ("knapsack", half_life), lambda: _Static(candidates, half_life))


def _values(
    static: _Static, relevance: Callable[[str], list[float]], query: str | None
) -> list[float]:
    """The values from the query-independent factors: the TF-IDF relevance of every message
    (one call), raised to the fuzzy token-set score for the short ones (one more call)."""
    tfidf = relevance(query) if query else [0.0] * len(static.weights)
    if query and static.short:
        # One call into the C++ scorer for all short messages (the query is preprocessed once).
        fuzzy_scores = static.short_scorer.scores(query)
        for i, score in zip(static.short, fuzzy_scores, strict=True):
            tfidf[i] = max(tfidf[i], score / 100.0)
    return [
        w * (RELEVANCE_BASE + t) * imp
        for w, t, imp in zip(static.weights, tfidf, static.importances, strict=True)
    ]


class KnapsackPolicy:
    name = "knapsack"

    def __init__(self, selector: KnapsackSelector | None = None) -> None:
        self.selector = selector or KnapsackSelector()

    async def select(self, candidates: Sequence[Candidate], ctx: PolicyContext) -> PolicyResult:
        prepared = prepared_for(ctx, candidates)
        static = _static(prepared, candidates, ctx)
        check_required(static.required, ctx.budget, self.name)
        ids = static.ids
        rows = static.rows(_relevance(prepared, candidates), ctx.query)
        solve = functools.partial(self.selector.select, rows, ctx.budget)
        # Long sessions are solved in a worker thread (the C++ search runs without the GIL).
        selection = await asyncio.to_thread(solve) if len(ids) >= ASYNC_OFFLOAD_ATOMS else solve()
        kept = set(selection.ids)
        make = window_message_maker(prepared)
        return PolicyResult(
            messages=[make(c) for c, i in zip(candidates, ids, strict=True) if i in kept],
            dropped_seqs=[i for i in ids if i not in kept],
        )


__all__ = ["ROLE_WEIGHTS", "KnapsackPolicy", "message_values"]
