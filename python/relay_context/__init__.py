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
from relay_context.core.models import encoding_name_for_model
from relay_context.core.token_manager import TokenManager
from relay_context.core.tokenizer import MemoStats, TokenCounter
from relay_context.errors import (
    ChecksumMismatchError,
    CompressionError,
    CorruptFrameError,
    DisallowedSpecialTokenError,
    InputTypeError,
    InvalidArgumentError,
    RankFileError,
    RelayError,
    SizeLimitExceededError,
    TokenizerError,
    UnknownEncodingError,
    UnknownModelError,
    UnknownTokenIdError,
)

__all__ = [
    "ChecksumMismatchError",
    "CompressionDictionary",
    "CompressionEngine",
    "CompressionError",
    "CompressionStats",
    "CorruptFrameError",
    "DisallowedSpecialTokenError",
    "InputTypeError",
    "InvalidArgumentError",
    "MemoStats",
    "PatternFamily",
    "RankFileError",
    "RelayError",
    "SizeLimitExceededError",
    "TokenCounter",
    "TokenManager",
    "TokenizerError",
    "UnknownEncodingError",
    "UnknownModelError",
    "UnknownTokenIdError",
    "__version__",
    "encoding_name_for_model",
    "train_dictionary",
]
