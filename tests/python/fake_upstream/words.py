"""The fake's reply text and token estimates (deterministic, cheap)."""

from __future__ import annotations

WORDS = ("Hello", "from", "the", "fake", "upstream", "model", "with", "some", "more", "words")


def reply_words(count: int, text: str | None) -> list[str]:
    if text is not None:
        return [text]
    return [(" " if i else "") + WORDS[i % len(WORDS)] for i in range(max(0, count))]


def estimate_tokens(body: bytes) -> int:
    """A prompt-token figure for usage: about one token per four bytes of the body."""
    return max(1, len(body) // 4)
