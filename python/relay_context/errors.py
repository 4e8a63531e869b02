"""Relay's typed errors.

Every error Relay raises on purpose is a :class:`RelayError`. Each class also derives from the
built-in exception a Python user would expect (``ValueError`` for bad values, ``TypeError`` for
wrong types), so ``except ValueError`` keeps working. Errors raised by the C++ core are mapped to
these classes in one place (``cpp/common/translate_errors.cpp``); the HTTP mapping of the service
is likewise done once, from these classes.
"""

from __future__ import annotations


class RelayError(Exception):
    """Base class of every error Relay raises on purpose."""


class InvalidArgumentError(RelayError, ValueError):
    """A value outside what the operation accepts (a negative budget, an unknown option, ...)."""


class InputTypeError(RelayError, TypeError):
    """An argument of the wrong type (for example bytes where text is expected)."""


class TokenizerError(RelayError):
    """Base class of the token counter's errors."""


class UnknownEncodingError(TokenizerError, ValueError):
    """An encoding name Relay does not know."""


class UnknownModelError(TokenizerError, ValueError):
    """A model name with no known encoding and no fallback encoding set."""


class RankFileError(TokenizerError, ValueError):
    """A ``.tiktoken`` rank file that cannot be read or parsed."""


class ChecksumMismatchError(RankFileError):
    """A rank file whose sha256 differs from the expected one."""


class DisallowedSpecialTokenError(TokenizerError, ValueError):
    """Text contains a special token that the caller did not allow."""


class UnknownTokenIdError(TokenizerError, ValueError):
    """A token id that is not in the encoding's vocabulary."""


class InfeasibleBudgetError(InvalidArgumentError):
    """What must be kept (pinned atoms and their groups, the system prompt) exceeds the budget."""


class CompressionError(RelayError):
    """Base class of the compressor's errors."""


class CorruptFrameError(CompressionError, ValueError):
    """A compressed frame that is corrupt, truncated, of unknown format, or lacks its dictionary."""


class SizeLimitExceededError(CompressionError, ValueError):
    """Decompressing would exceed the configured size cap (a decompression bomb)."""


class BackendUnavailableError(RelayError, ConnectionError):
    """A backing service (Redis, PostgreSQL) cannot be reached and the policy says to fail."""


__all__ = [
    "BackendUnavailableError",
    "ChecksumMismatchError",
    "CompressionError",
    "CorruptFrameError",
    "DisallowedSpecialTokenError",
    "InfeasibleBudgetError",
    "InputTypeError",
    "InvalidArgumentError",
    "RankFileError",
    "RelayError",
    "SizeLimitExceededError",
    "TokenizerError",
    "UnknownEncodingError",
    "UnknownModelError",
    "UnknownTokenIdError",
]
