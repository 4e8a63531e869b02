"""The summarize policy: dropped turns fold into one summary after the system prompt."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from conversation_support import conversation, stored
from relay_context import TokenCounter
from relay_context.config.settings import Settings
from relay_context.core.context_engine import ContextEngine
from relay_context.engine.models import StoredMessage
from relay_context.engine.policies import ExtractiveSummarizer, Summarizer
from test_policies import check_window


async def test_dropped_turns_become_one_summary_after_the_system_prompt() -> None:
    engine = ContextEngine(Settings(dedup_threshold=1.01, summary_max_tokens=300))
    messages = stored(conversation(80, seed=5, tool_rate=0.1))
    window = await engine.build_window(
        "conv-test", messages, budget=2500, model="gpt-4o", policy="summarize"
    )
    check_window(window, messages, 2500)
    summaries = [m for m in window.messages if m.seq is None]
    assert len(summaries) == 1
    summary = summaries[0]
    assert window.messages[0].seq == 1
    assert window.messages[1] is summary
    assert summary.role.value == "system"
    assert summary.summarizes == window.dropped_seqs
    assert summary.content.startswith(f"Summary of {len(window.dropped_seqs)} earlier messages:")
    assert summary.tokens <= 300
    assert window.compression_tokens_saved > 0
    # Every summary line is a sentence of a dropped message.
    dropped = {m.seq: m for m in messages if m.seq in window.dropped_seqs}
    for line in summary.content.splitlines()[1:]:
        role, _, sentence = line.partition(": ")
        assert any(sentence in m.content and m.role.value == role for m in dropped.values())


async def test_extractive_summary_prefers_central_sentences() -> None:
    rng_free = [
        StoredMessage(
            session_id="s",
            seq=i + 1,
            role="user",
            content=text,
            created_at=__import__("datetime").datetime.now(__import__("datetime").timezone.utc),
        )
        for i, text in enumerate(
            [
                "Postgres vacuum keeps table bloat low. Vacuum runs on big tables.",
                "My cat likes fish.",
                "Autovacuum thresholds control when vacuum runs on tables.",
                "Tables bloat when vacuum falls behind.",
            ]
        )
    ]
    counter = TokenCounter("o200k_base")
    text = await ExtractiveSummarizer(counter).summarize(rng_free, max_tokens=30)
    assert "vacuum" in text.lower()
    assert "cat" not in text
    assert counter.count(text) <= 30


class EchoSummarizer:
    """A stand-in for an LLM summariser: returns too much, to check the engine's cut."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[int], int]] = []

    async def summarize(self, messages: Sequence[StoredMessage], max_tokens: int) -> str:
        self.calls.append(([m.seq for m in messages], max_tokens))
        return " ".join(m.content for m in messages)


async def test_pluggable_summarizer_is_called_and_bounded() -> None:
    summarizer = EchoSummarizer()
    assert isinstance(summarizer, Summarizer)
    engine = ContextEngine(
        Settings(dedup_threshold=1.01, summary_max_tokens=100), summarizer=summarizer
    )
    messages = stored(conversation(50, seed=6))
    window = await engine.build_window(
        "conv-test", messages, budget=1500, model="gpt-4", policy="summarize"
    )
    check_window(window, messages, 1500)
    ((seqs, max_tokens),) = summarizer.calls
    assert tuple(seqs) == window.dropped_seqs
    assert max_tokens < 100
    summary = window.messages[1]
    assert summary.seq is None
    assert summary.tokens <= 100


@pytest.mark.parametrize("budget", [200, 400, 900])
async def test_summary_never_breaks_the_budget(budget: int) -> None:
    engine = ContextEngine(Settings())
    messages = stored(conversation(60, seed=budget))
    window = await engine.build_window(
        "conv-test", messages, budget=budget, model="gpt-4o", policy="summarize"
    )
    check_window(window, messages, budget)
