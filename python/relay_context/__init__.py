"""Relay: sits between applications and LLM APIs and makes every token count.

The public API is re-exported here; the C++ kernels live in the private ``relay_context._core``.
Importing the package is light: the errors load at once, every other name on first use (PEP 562
``__getattr__``), so ``from relay_context import TokenCounter`` loads the tokenizer and the C++
core, not the engine, its database drivers or the service's web stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from relay_context._version import __version__
from relay_context.errors import (
    BackendUnavailableError,
    ChecksumMismatchError,
    CompressionError,
    CorruptFrameError,
    DisallowedSpecialTokenError,
    EmptyContentError,
    InfeasibleBudgetError,
    InputTypeError,
    InvalidArgumentError,
    InvalidSessionIdError,
    MessageTooLargeError,
    RankFileError,
    RelayError,
    SessionExistsError,
    SessionNotFoundError,
    SizeLimitExceededError,
    StoreError,
    TokenizerError,
    UnknownEncodingError,
    UnknownModelError,
    UnknownPolicyError,
    UnknownRoleError,
    UnknownTokenIdError,
)

if TYPE_CHECKING:
    from relay_context.core.compression import (
        CompressionDictionary,
        CompressionEngine,
        CompressionStats,
        train_dictionary,
    )
    from relay_context.core.encodings import PatternFamily
    from relay_context.core.fuzzy import NearDuplicate, NearDuplicateIndex
    from relay_context.core.knapsack import Atom, KnapsackSelector, Selection, SelectionMethod
    from relay_context.core.model_encodings import encoding_name_for_model
    from relay_context.core.ratelimit import (
        BatchDecisions,
        RateLimiter,
        RateLimitInfo,
        SlidingWindowRateLimiter,
        TokenBucketRateLimiter,
    )
    from relay_context.core.token_manager import TokenManager
    from relay_context.core.tokenizer import MemoStats, TokenCounter
    from relay_context.engine.context_engine import ContextEngine
    from relay_context.engine.models import MessageRole
    from relay_context.engine.stats import SessionStats
    from relay_context.engine.window import ContextWindow

#: Where each lazily loaded public name lives.
_LAZY: dict[str, str] = {
    "Atom": "relay_context.core.knapsack",
    "BatchDecisions": "relay_context.core.ratelimit",
    "CompressionDictionary": "relay_context.core.compression",
    "CompressionEngine": "relay_context.core.compression",
    "CompressionStats": "relay_context.core.compression",
    "ContextEngine": "relay_context.engine.context_engine",
    "ContextWindow": "relay_context.engine.window",
    "KnapsackSelector": "relay_context.core.knapsack",
    "MemoStats": "relay_context.core.tokenizer",
    "MessageRole": "relay_context.engine.models",
    "NearDuplicate": "relay_context.core.fuzzy",
    "NearDuplicateIndex": "relay_context.core.fuzzy",
    "PatternFamily": "relay_context.core.encodings",
    "RateLimitInfo": "relay_context.core.ratelimit",
    "RateLimiter": "relay_context.core.ratelimit",
    "Selection": "relay_context.core.knapsack",
    "SelectionMethod": "relay_context.core.knapsack",
    "SessionStats": "relay_context.engine.stats",
    "SlidingWindowRateLimiter": "relay_context.core.ratelimit",
    "TokenBucketRateLimiter": "relay_context.core.ratelimit",
    "TokenCounter": "relay_context.core.tokenizer",
    "TokenManager": "relay_context.core.token_manager",
    "encoding_name_for_model": "relay_context.core.model_encodings",
    "train_dictionary": "relay_context.core.compression",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "Atom",
    "BackendUnavailableError",
    "BatchDecisions",
    "ChecksumMismatchError",
    "CompressionDictionary",
    "CompressionEngine",
    "CompressionError",
    "CompressionStats",
    "ContextEngine",
    "ContextWindow",
    "CorruptFrameError",
    "DisallowedSpecialTokenError",
    "EmptyContentError",
    "InfeasibleBudgetError",
    "InputTypeError",
    "InvalidArgumentError",
    "InvalidSessionIdError",
    "KnapsackSelector",
    "MemoStats",
    "MessageRole",
    "MessageTooLargeError",
    "NearDuplicate",
    "NearDuplicateIndex",
    "PatternFamily",
    "RankFileError",
    "RateLimitInfo",
    "RateLimiter",
    "RelayError",
    "Selection",
    "SelectionMethod",
    "SessionExistsError",
    "SessionNotFoundError",
    "SessionStats",
    "SizeLimitExceededError",
    "SlidingWindowRateLimiter",
    "StoreError",
    "TokenBucketRateLimiter",
    "TokenCounter",
    "TokenManager",
    "TokenizerError",
    "UnknownEncodingError",
    "UnknownModelError",
    "UnknownPolicyError",
    "UnknownRoleError",
    "UnknownTokenIdError",
    "__version__",
    "encoding_name_for_model",
    "train_dictionary",
]
