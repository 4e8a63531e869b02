"""``TokenManager``: the token counter under the name the product's documentation uses.

>>> manager = TokenManager("gpt-4")
>>> await manager.count_tokens("Hello world")
2
>>> await manager.truncate_to_budget(long_text, max_tokens=1000)

It wraps a :class:`~relay_context.core.tokenizer.TokenCounter` (``manager.counter``) and adds
awaitable ``count_tokens`` and ``truncate_to_budget``; everything else is the counter's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from relay_context.core.encodings import SHIPPED_ENCODINGS
from relay_context.core.tokenizer import TokenCounter


class TokenManager:
    """Token budgeting for one model (or encoding)."""

    __slots__ = ("counter",)

    def __init__(self, model: str = "gpt-4o", *, fallback_encoding: str | None = None) -> None:
        """``model`` is a model name (``"gpt-4"``) or an encoding name (``"o200k_base"``)."""
        if isinstance(model, str) and model in SHIPPED_ENCODINGS:
            self.counter = TokenCounter(model)
        else:
            self.counter = TokenCounter.for_model(model, fallback_encoding=fallback_encoding)

    @property
    def encoding_name(self) -> str:
        return self.counter.name

    @property
    def model(self) -> str | None:
        return self.counter.model

    async def count_tokens(self, text: str) -> int:
        """Number of tokens of ``text``."""
        return await self.counter.count_tokens(text)

    async def truncate_to_budget(self, text: str, max_tokens: int) -> str:
        """The longest prefix of ``text`` within ``max_tokens`` (token boundary, whole chars)."""
        return await self.counter.truncate_to_budget_async(text, max_tokens)

    def count(self, text: str) -> int:
        return self.counter.count(text)

    def count_messages(self, messages: Sequence[Mapping[str, Any]]) -> int:
        return self.counter.count_messages(messages)

    def __repr__(self) -> str:
        return f"TokenManager({self.counter.model or self.counter.name!r})"
