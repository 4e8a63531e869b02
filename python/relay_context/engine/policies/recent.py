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
from dataclasses import replace

from relay_context.core.tokenizer import TokenCounter
from relay_context.engine.policies.base import (
    Candidate,
    PolicyContext,
    PolicyResult,
    check_feasible,
    fill_from_newest,
    units,
)

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


class RecentPolicy:
    name = "recent"

    async def select(self, candidates: Sequence[Candidate], ctx: PolicyContext) -> PolicyResult:
        settings = ctx.settings
        capped: list[Candidate] = []
        truncated: set[int] = set()
        for c in candidates:
            new, cut = cap_candidate(ctx.counter, c, settings.max_message_tokens)
            if cut:
                truncated.add(c.seq)
            capped.append(new)
        all_units = units(capped)
        check_feasible(all_units, ctx.budget, self.name)
        total = sum(c.tokens for c in capped)
        limit = settings.recent_keep_messages if total > settings.recent_threshold_tokens else None
        keep = fill_from_newest(all_units, ctx.budget, max_unpinned=limit)
        kept_seqs = {c.seq for i in keep for c in all_units[i]}
        messages = []
        for c in capped:
            if c.seq in kept_seqs:
                wm = c.window_message()
                if c.seq in truncated:
                    wm = replace(wm, truncated=True)
                messages.append(wm)
        saved_in_window = sum(
            orig.tokens - new.tokens
            for orig, new in zip(candidates, capped, strict=True)
            if new.seq in kept_seqs and new.seq in truncated
        )
        return PolicyResult(
            messages=messages,
            dropped_seqs=[c.seq for c in capped if c.seq not in kept_seqs],
            compression_tokens_saved=saved_in_window,
        )


__all__ = ["TRUNCATION_MARKER", "RecentPolicy", "cap_candidate", "truncate_content"]
