"""``recent``: the system prompt and the tail of the conversation.

* While the session's messages take at most ``recent_threshold_tokens`` (180,000), all are
  candidates; past it, only the pinned ones (the system prompt, the latest user turn,
  ``metadata["pinned"]``) and the last ``recent_keep_messages`` (7) messages.
* A message longer than ``max_message_tokens`` (20,000) is cut on a token boundary
  (``TokenCounter.truncate_to_budget``) and ends with ``[...content truncated]``.
* Then, if the result is still over the budget, the oldest unpinned messages go first (a tool
  call and its results go together).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from relay_context.core.tokenizer import TokenCounter
from relay_context.engine.policies.base import (
    Candidate,
    PolicyContext,
    PolicyResult,
    PreparedCandidates,
    UnitColumns,
    check_required,
    computed_once,
    fill_columns_from_newest,
    prepared_for,
    units,
    window_message_maker,
)
from relay_context.engine.window import WindowMessage

TRUNCATION_MARKER = "\n[...content truncated]"


def truncate_content(counter: TokenCounter, content: str, max_tokens: int) -> str:
    """``content`` cut on a token boundary so that it, with the marker, has at most
    ``max_tokens`` tokens."""
    room = max(0, max_tokens - counter.count(TRUNCATION_MARKER))
    cut = counter.truncate_to_budget(content, room)
    text = cut + TRUNCATION_MARKER
    # Tokens do not add up across a join in general; shrink until the joined text fits.
    while counter.count(text) > max_tokens and cut:
        room -= max(1, counter.count(text) - max_tokens)
        cut = counter.truncate_to_budget(content, max(0, room))
        text = cut + TRUNCATION_MARKER
    return text


def cap_candidate(counter: TokenCounter, c: Candidate, max_tokens: int) -> tuple[Candidate, bool]:
    """``c`` with its content cut to ``max_tokens`` tokens, and whether it was cut."""
    if c.content_tokens <= max_tokens:
        return c, False
    content = truncate_content(counter, c.message.content, max_tokens)
    content_tokens = counter.count(content)
    message = replace(c.message, content=content)
    tokens = c.tokens - c.content_tokens + content_tokens
    return replace(c, message=message, tokens=tokens, content_tokens=content_tokens), True


@dataclass(frozen=True, slots=True)
class _Capped:
    """The candidates cut to the per-message cap, as units (budget-independent)."""

    capped: list[Candidate]
    truncated: set[int]
    #: Tokens each truncated message saves, by seq.
    savings: dict[int, int]
    columns: UnitColumns
    total: int


def _cap_all(counter: TokenCounter, candidates: Sequence[Candidate], max_tokens: int) -> _Capped:
    capped: list[Candidate] = []
    truncated: set[int] = set()
    savings: dict[int, int] = {}
    for c in candidates:
        new, cut = cap_candidate(counter, c, max_tokens)
        if cut:
            truncated.add(c.seq)
            savings[c.seq] = c.tokens - new.tokens
        capped.append(new)
    return _Capped(
        capped=capped,
        truncated=truncated,
        savings=savings,
        columns=UnitColumns.of(units(capped)),
        total=sum(c.tokens for c in capped),
    )


class RecentPolicy:
    name = "recent"

    async def select(self, candidates: Sequence[Candidate], ctx: PolicyContext) -> PolicyResult:
        settings = ctx.settings
        max_tokens = settings.max_message_tokens
        prepared = prepared_for(ctx, candidates)
        plan = computed_once(
            prepared, ("recent", max_tokens), lambda: _cap_all(ctx.counter, candidates, max_tokens)
        )
        columns = plan.columns
        check_required(columns.required, ctx.budget, self.name)
        limit = (
            settings.recent_keep_messages if plan.total > settings.recent_threshold_tokens else None
        )
        keep = fill_columns_from_newest(columns, ctx.budget, max_unpinned=limit)
        all_units = columns.units
        kept_seqs = {c.seq for i in keep for c in all_units[i]}
        truncated = plan.truncated
        messages = [
            _window_message(c, prepared, c.seq in truncated)
            for c in plan.capped
            if c.seq in kept_seqs
        ]
        saved_in_window = sum(n for seq, n in plan.savings.items() if seq in kept_seqs)
        return PolicyResult(
            messages=messages,
            dropped_seqs=[c.seq for c in plan.capped if c.seq not in kept_seqs],
            compression_tokens_saved=saved_in_window,
        )


def _window_message(
    c: Candidate, prepared: PreparedCandidates | None, truncated: bool
) -> WindowMessage:
    if truncated:
        return replace(c.window_message(), truncated=True)
    return window_message_maker(prepared)(c)


__all__ = ["TRUNCATION_MARKER", "RecentPolicy", "cap_candidate", "truncate_content"]
