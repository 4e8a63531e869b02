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
from relay_context.core.model_encodings import encoding_name_for_model
from relay_context.core.token_manager import TokenManager
from relay_context.core.tokenizer import MemoStats, TokenCounter
from relay_context.engine.context_engine import ContextEngine, SessionStats
from relay_context.engine.models import MessageRole
from relay_context.engine.window import ContextWindow
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
from relay_context.fuzzy import NearDuplicate, NearDuplicateIndex
from relay_context.security.rate_limiter import (
    BatchDecisions,
    RateLimiter,
    RateLimitInfo,
    SlidingWindowRateLimiter,
    TokenBucketRateLimiter,
)

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
