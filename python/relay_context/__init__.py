"""Relay: sits between applications and LLM APIs and makes every token count.

The public API is re-exported here; the C++ kernels live in the private ``relay_context._core``.
"""

from relay_context._version import __version__
from relay_context.core.compression import (
    CompressionDictionary,
    CompressionEngine,
    CompressionStats,
    train_dictionary,
)
from relay_context.core.encodings import PatternFamily
from relay_context.core.knapsack import Atom, KnapsackSelector, Selection, SelectionMethod
from relay_context.core.models import encoding_name_for_model
from relay_context.core.token_manager import TokenManager
from relay_context.core.tokenizer import MemoStats, TokenCounter
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
    StoreError,
    SizeLimitExceededError,
    TokenizerError,
    UnknownEncodingError,
    UnknownModelError,
    UnknownRoleError,
    UnknownTokenIdError,
)
from relay_context.security.rate_limiter import (
    BatchDecisions,
    RateLimiter,
    RateLimitInfo,
    SlidingWindowRateLimiter,
    TokenBucketRateLimiter,
)
from relay_context.fuzzy import NearDuplicate, NearDuplicateIndex

__all__ = [
    "Atom",
    "BackendUnavailableError",
    "BatchDecisions",
    "ChecksumMismatchError",
    "CompressionDictionary",
    "CompressionEngine",
    "CompressionError",
    "CompressionStats",
    "CorruptFrameError",
    "DisallowedSpecialTokenError",
    "EmptyContentError",
    "InfeasibleBudgetError",
    "InputTypeError",
    "InvalidArgumentError",
    "InvalidSessionIdError",
    "KnapsackSelector",
    "MemoStats",
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
    "SizeLimitExceededError",
    "SlidingWindowRateLimiter",
    "StoreError",
    "TokenBucketRateLimiter",
    "TokenCounter",
    "TokenManager",
    "TokenizerError",
    "UnknownEncodingError",
    "UnknownModelError",
    "UnknownRoleError",
    "UnknownTokenIdError",
    "__version__",
    "encoding_name_for_model",
    "train_dictionary",
]
