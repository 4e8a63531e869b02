"""Counting tokens and keeping text inside a budget.

Run: ``python examples/count_and_budget.py``

Relay's ``TokenCounter`` gives the same token ids as OpenAI's ``tiktoken``; the rank files ship
inside the package, so this runs offline.
"""

from __future__ import annotations

import asyncio

from relay_context import TokenCounter, TokenManager

# Two models on two different encodings: the same text costs a different number of tokens.
MODELS = ("gpt-4o", "gpt-4")

TEXT = "Relay keeps every conversation inside the model's window. Ünïcödé and emoji 🚀 count too."

CHAT = [
    {"role": "system", "content": "You are a concise assistant."},
    {"role": "user", "content": "Summarise the plot of Hamlet in one sentence."},
    {"role": "assistant", "content": "A prince avenges his father and everyone dies."},
    {"role": "user", "content": "Now in five words.", "name": "alice"},
]


def count_text_and_chat() -> None:
    for model in MODELS:
        # for_model maps a model name to its encoding (gpt-4o -> o200k_base, gpt-4 -> cl100k_base).
        tc = TokenCounter.for_model(model)
        ids = tc.encode(TEXT)
        # A chat request costs more than its contents: framing per message, 1 per name and
        # 3 tokens priming the reply. count_messages applies OpenAI's billing rule.
        contents = sum(tc.count(m["content"]) for m in CHAT)
        billed = tc.count_messages(CHAT)
        print(f"{model:<7} {tc.name:<12} text: {len(ids)} tokens, first ids {ids[:4]}")
        print(f"{'':<20} chat: {contents} content tokens, {billed} billed")
        # decode(encode(x)) gives the text back exactly.
        assert tc.decode(ids) == TEXT


def truncate_to_a_budget() -> None:
    tc = TokenCounter("o200k_base")
    long_text = " ".join(
        f"Paragraph {i}: the quick brown fox jumps over the lazy dog." for i in range(200)
    )
    budget = 50
    cut = tc.truncate_to_budget(long_text, budget)
    # The cut lands on a token boundary, never inside a character, and fits the budget.
    print(f"truncate: {tc.count(long_text)} tokens -> {tc.count(cut)} (budget {budget})")
    print(f"          ends with {cut[-30:]!r}")
    assert tc.count(cut) <= budget
    assert long_text.startswith(cut)


def count_in_batches() -> None:
    tc = TokenCounter("cl100k_base")
    documents = [
        f"Document {i} " + "lorem ipsum dolor sit amet " * (i % 7 + 1) for i in range(1000)
    ]
    # count_batch spreads the list over all cores with the GIL released: one call for many texts
    # is much cheaper than a Python loop of count().
    counts = tc.count_batch(documents)
    assert counts == [tc.count(d) for d in documents]
    print(f"batch: {len(documents)} documents, {sum(counts)} tokens, largest {max(counts)}")


async def the_async_manager() -> None:
    # TokenManager is the awaitable spelling used by async services (same counts).
    manager = TokenManager("gpt-4")
    n = await manager.count_tokens("Hello world")
    short = await manager.truncate_to_budget(TEXT, max_tokens=5)
    print(f"manager ({manager.encoding_name}): 'Hello world' = {n} tokens; 5 tokens = {short!r}")


def main() -> None:
    count_text_and_chat()
    truncate_to_a_budget()
    count_in_batches()
    asyncio.run(the_async_manager())


if __name__ == "__main__":
    main()
