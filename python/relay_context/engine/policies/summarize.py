"""``summarize``: the tail of the conversation, and the turns that do not fit folded into one
summary message placed right after the system prompt.

The summary gets at most ``summary_max_tokens`` (1024) and at most a quarter of what the budget
leaves after the pinned messages; the newest turns fill the rest, as in ``recent``. The
summariser is pluggable (:class:`~relay_context.engine.policies.base.Summarizer`); the built-in
:class:`ExtractiveSummarizer` needs no model: it keeps the most *central* sentences of the
dropped turns, those whose TF-IDF vector is closest to that of all of them together, as many as
fit its token budget, in their original order. Whatever a summariser returns is cut to its token
budget, so the window's budget holds.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from relay_context.core.drift import relevance_scores
from relay_context.core.message_tokens import TOKENS_PER_MESSAGE
from relay_context.core.tokenizer import TokenCounter
from relay_context.engine.models import MessageRole, StoredMessage
from relay_context.engine.policies.base import (
    Candidate,
    PolicyContext,
    PolicyResult,
    UnitColumns,
    check_required,
    computed_once,
    fill_columns_from_newest,
    prepared_for,
    units,
    window_message_maker,
)
from relay_context.engine.policies.recent import truncate_content
from relay_context.engine.window import WindowMessage

SUMMARY_HEADER = "Summary of {count} earlier messages:\n"
#: Below this many tokens a summary says too little to be worth its framing.
MIN_SUMMARY_TOKENS = 16
#: Sentences considered by the extractive summariser (the newest ones, if there are more).
MAX_SENTENCES = 4000
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if len(s.strip()) >= 3]


class ExtractiveSummarizer:
    """The built-in summariser: the most central sentences, within the token budget."""

    def __init__(self, counter: TokenCounter | None = None) -> None:
        self.counter = counter or TokenCounter("o200k_base")

    async def summarize(self, messages: Sequence[StoredMessage], max_tokens: int) -> str:
        lines = [
            f"{m.role.value}: {sentence}"
            for m in messages
            if m.role is not MessageRole.SYSTEM
            for sentence in split_sentences(m.content)
        ][-MAX_SENTENCES:]
        if not lines or max_tokens <= 0:
            return ""
        scores = relevance_scores(" ".join(lines), lines)
        costs = self.counter.count_batch(lines, num_threads=1)
        order = sorted(range(len(lines)), key=lambda i: (-scores[i], i))
        chosen: list[int] = []
        used = 0
        for i in order:
            cost = costs[i] + 1  # the newline joining it to the next line
            if used + cost <= max_tokens:
                chosen.append(i)
                used += cost
        if not chosen:  # even the best sentence is too long: its start
            return self.counter.truncate_to_budget(lines[order[0]], max_tokens)
        return "\n".join(lines[i] for i in sorted(chosen))


class SummarizePolicy:
    name = "summarize"

    async def select(self, candidates: Sequence[Candidate], ctx: PolicyContext) -> PolicyResult:
        prepared = prepared_for(ctx, candidates)
        columns = computed_once(prepared, "units", lambda: UnitColumns.of(units(candidates)))
        total = computed_once(prepared, "total", lambda: sum(c.tokens for c in candidates))
        make = window_message_maker(prepared)
        required = check_required(columns.required, ctx.budget, self.name)
        if total <= ctx.budget:
            return PolicyResult(messages=[make(c) for c in candidates])
        counter = ctx.counter
        reserve = min(ctx.settings.summary_max_tokens, (ctx.budget - required) // 4)
        if reserve < MIN_SUMMARY_TOKENS:
            reserve = 0
        keep = fill_columns_from_newest(columns, ctx.budget - reserve)
        all_units = columns.units
        kept = {c.seq for i in keep for c in all_units[i]}
        dropped = [c for c in candidates if c.seq not in kept]
        messages = [make(c) for c in candidates if c.seq in kept]
        saved = 0
        if reserve and dropped:
            header = SUMMARY_HEADER.format(count=len(dropped))
            framing = TOKENS_PER_MESSAGE + counter.count(MessageRole.SYSTEM.value)
            content_budget = reserve - framing
            text_budget = content_budget - counter.count(header) - 1
            if text_budget <= 0:
                text = ""
            elif ctx.summarizer is None and prepared is not None:
                # The built-in summary depends only on the dropped messages and the budget:
                # made once per session plan (a custom summariser may vary: asked every time).
                key = (tuple(c.seq for c in dropped), text_budget)
                found = prepared.summaries.get(key)
                if found is None:
                    found = await ExtractiveSummarizer(counter).summarize(
                        [c.message for c in dropped], text_budget
                    )
                    prepared.remember_summary(key, found)
                text = found
            else:
                summarizer = ctx.summarizer or ExtractiveSummarizer(counter)
                text = await summarizer.summarize([c.message for c in dropped], text_budget)
            if text.strip():
                content = header + text
                if counter.count(content) > content_budget:
                    content = truncate_content(counter, content, content_budget)
                tokens = framing + counter.count(content)
                summary = WindowMessage(
                    role=MessageRole.SYSTEM,
                    content=content,
                    tokens=tokens,
                    summarizes=tuple(c.seq for c in dropped),
                )
                after_prompt = bool(messages) and messages[0].role is MessageRole.SYSTEM
                messages.insert(1 if after_prompt else 0, summary)
                saved = max(0, sum(c.tokens for c in dropped) - tokens)
        return PolicyResult(
            messages=messages,
            dropped_seqs=[c.seq for c in dropped],
            compression_tokens_saved=saved,
        )


__all__ = ["SUMMARY_HEADER", "ExtractiveSummarizer", "SummarizePolicy", "split_sentences"]
