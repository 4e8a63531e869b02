"""The shipped model table: context window, max output and prices (USD per million tokens) of
current OpenAI and Anthropic models, matched by longest name prefix; YAML ``gateway.models``
entries override it."""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class ModelInfo:
    context_window: int
    max_output_tokens: int
    input_price: float
    output_price: float
    cached_input_price: float | None = None
    cache_write_price: float | None = None


#: Longest matching prefix wins (``gpt-4o-mini`` before ``gpt-4o``).
MODEL_TABLE = MappingProxyType(
    {
        "gpt-5": ModelInfo(400_000, 128_000, 1.25, 10.0, 0.125),
        "gpt-5-mini": ModelInfo(400_000, 128_000, 0.25, 2.0, 0.025),
        "gpt-5-nano": ModelInfo(400_000, 128_000, 0.05, 0.4, 0.005),
        "gpt-4.1": ModelInfo(1_047_576, 32_768, 2.0, 8.0, 0.5),
        "gpt-4.1-mini": ModelInfo(1_047_576, 32_768, 0.4, 1.6, 0.1),
        "gpt-4.1-nano": ModelInfo(1_047_576, 32_768, 0.1, 0.4, 0.025),
        "gpt-4o": ModelInfo(128_000, 16_384, 2.5, 10.0, 1.25),
        "gpt-4o-mini": ModelInfo(128_000, 16_384, 0.15, 0.6, 0.075),
        "chatgpt-4o": ModelInfo(128_000, 16_384, 5.0, 15.0),
        "gpt-4-turbo": ModelInfo(128_000, 4_096, 10.0, 30.0),
        "gpt-4": ModelInfo(8_192, 8_192, 30.0, 60.0),
        "gpt-3.5-turbo": ModelInfo(16_385, 4_096, 0.5, 1.5),
        "o1": ModelInfo(200_000, 100_000, 15.0, 60.0, 7.5),
        "o3": ModelInfo(200_000, 100_000, 2.0, 8.0, 0.5),
        "o3-mini": ModelInfo(200_000, 100_000, 1.1, 4.4, 0.55),
        "o4-mini": ModelInfo(200_000, 100_000, 1.1, 4.4, 0.275),
        "text-embedding-3-small": ModelInfo(8_191, 0, 0.02, 0.0),
        "text-embedding-3-large": ModelInfo(8_191, 0, 0.13, 0.0),
        "text-embedding-ada-002": ModelInfo(8_191, 0, 0.1, 0.0),
        "claude-opus-4": ModelInfo(200_000, 32_000, 15.0, 75.0, 1.5, 18.75),
        "claude-opus-4-5": ModelInfo(200_000, 64_000, 5.0, 25.0, 0.5, 6.25),
        "claude-sonnet-4": ModelInfo(200_000, 64_000, 3.0, 15.0, 0.3, 3.75),
        "claude-haiku-4-5": ModelInfo(200_000, 64_000, 1.0, 5.0, 0.1, 1.25),
        "claude-3-7-sonnet": ModelInfo(200_000, 64_000, 3.0, 15.0, 0.3, 3.75),
        "claude-3-5-sonnet": ModelInfo(200_000, 8_192, 3.0, 15.0, 0.3, 3.75),
        "claude-3-5-haiku": ModelInfo(200_000, 8_192, 0.8, 4.0, 0.08, 1.0),
        "claude-3-opus": ModelInfo(200_000, 4_096, 15.0, 75.0, 1.5, 18.75),
        "claude-3-haiku": ModelInfo(200_000, 4_096, 0.25, 1.25, 0.03, 0.3),
    }
)
_LONGEST_FIRST = sorted(MODEL_TABLE, key=len, reverse=True)


def model_info(model: str) -> ModelInfo | None:
    """The shipped row of ``model`` (``openai/gpt-4o`` counts as ``gpt-4o``), or ``None``."""
    name = model.rsplit("/", 1)[-1]
    for prefix in _LONGEST_FIRST:
        if name.startswith(prefix):
            return MODEL_TABLE[prefix]
    return None


__all__ = ["MODEL_TABLE", "ModelInfo", "model_info"]
