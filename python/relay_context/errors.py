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


class InvalidScoreCutoffError(InvalidArgumentError, TypeError):
    """A fuzzy ``score_cutoff`` outside its scale where rapidfuzz rejects one (``extract``, the
    normalised similarities): a ``TypeError`` as rapidfuzz raises, and an
    :class:`InvalidArgumentError` as Relay raises."""


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


class UnknownModelKeyError(UnknownModelError, KeyError):
    """``relay_context.tiktoken.encoding_for_model`` of an unknown model: a ``KeyError`` as
    tiktoken raises, and an :class:`UnknownModelError` as Relay raises."""


class UnknownTokenKeyError(UnknownTokenIdError, KeyError):
    """``relay_context.tiktoken`` decoding an id the encoding lacks: a ``KeyError`` as tiktoken
    raises, and an :class:`UnknownTokenIdError` as Relay raises."""


class NotATokenError(TokenizerError, KeyError):
    """``relay_context.tiktoken`` ``encode_single_token`` of bytes that are no single token (a
    ``KeyError`` as tiktoken raises)."""


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


class InvalidSessionIdError(InvalidArgumentError):
    """A session id that is empty, too long, or has characters outside ``[A-Za-z0-9._:-]``."""


class InvalidUnicodeError(InvalidArgumentError):
    """A string that is not a sequence of Unicode scalar values (it holds a lone surrogate such as
    ``"\\ud800"``): it has no UTF-8 form, so it can be neither stored nor counted."""


class InvalidJsonError(InvalidArgumentError):
    """A body or header that is not strict JSON (RFC 8259): not UTF-8, a syntax error, ``NaN`` or
    ``Infinity``, a number no float or bounded integer holds, or nesting deeper than the limit."""


class UnknownRoleError(InvalidArgumentError):
    """A message role other than ``system``, ``user``, ``assistant`` or ``tool``."""


class EmptyContentError(InvalidArgumentError):
    """A message whose content is empty (and that carries no tool calls)."""


class MessageTooLargeError(InvalidArgumentError):
    """Message content larger, in UTF-8 bytes, than ``Settings.max_message_bytes``."""


class UnknownPolicyError(InvalidArgumentError):
    """A context policy name other than ``knapsack``, ``recent`` or ``summarize``."""


class SessionNotFoundError(RelayError, LookupError):
    """No live session has this id (it never existed, was deleted, or its TTL ran out)."""


class SessionExistsError(RelayError, ValueError):
    """``create_session`` was given the id of a session that is still live."""


class StoreError(RelayError):
    """The session store's data is not what Relay wrote (a newer schema, a corrupt row)."""


class IdempotencyKeyReusedError(InvalidArgumentError):
    """An idempotency key sent again with a different request than the one it first came with."""


class AuthenticationError(RelayError):
    """Missing, malformed, expired or invalid credentials (a JWT or an API key)."""


class PermissionDeniedError(RelayError):
    """The principal is authenticated but its role does not allow the operation."""


class SessionLimitExceededError(RelayError):
    """A USER principal already owns ``Settings.max_sessions_per_user`` live sessions."""


class RateLimitExceededError(RelayError):
    """The principal sent more requests than its sliding window allows."""

    def __init__(self, message: str, *, limit: int, retry_after: float, reset_at: float) -> None:
        super().__init__(message)
        self.limit = limit
        self.retry_after = retry_after
        self.reset_at = reset_at


class ApiKeyNotFoundError(RelayError, LookupError):
    """No API key has this id."""


class RequestTooLargeError(RelayError, ValueError):
    """A request body larger than ``Settings.max_request_bytes``."""


class PayloadNotFoundError(RelayError, LookupError):
    """No live handoff payload has this id (it never existed, was deleted, or expired)."""


class PayloadTooLargeError(RelayError, ValueError):
    """A handoff payload (or its JSON envelope, or its metadata) larger than its limit."""

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class PayloadIdTakenError(RelayError, ValueError):
    """A push proposed a payload id (``X-Relay-Payload-Id``) that is already in use."""


class QuotaExceededError(RelayError):
    """A push past the monthly pushes or the bytes stored that the caller's plan allows
    (pulls are never refused). ``details`` says which quota, its limit and the usage."""

    def __init__(self, message: str, *, details: dict[str, object]) -> None:
        super().__init__(message)
        self.details = details


class InvalidChannelError(InvalidArgumentError):
    """A channel name that is empty, too long, or has characters outside ``[A-Za-z0-9._:-]``."""


class SlowConsumerError(RelayError):
    """A channel subscriber fell further behind than its queue allows and was cut off."""


class DecryptionError(RelayError, ValueError):
    """An end-to-end encrypted payload that the given key cannot open (wrong, missing or
    malformed key, or a ciphertext that was altered)."""


__all__ = [
    "ApiKeyNotFoundError",
    "AuthenticationError",
    "BackendUnavailableError",
    "ChecksumMismatchError",
    "CompressionError",
    "CorruptFrameError",
    "DecryptionError",
    "DisallowedSpecialTokenError",
    "EmptyContentError",
    "InfeasibleBudgetError",
    "InputTypeError",
    "InvalidArgumentError",
    "InvalidChannelError",
    "InvalidScoreCutoffError",
    "InvalidSessionIdError",
    "InvalidUnicodeError",
    "MessageTooLargeError",
    "NotATokenError",
    "PayloadIdTakenError",
    "PayloadNotFoundError",
    "PayloadTooLargeError",
    "PermissionDeniedError",
    "QuotaExceededError",
    "RankFileError",
    "RateLimitExceededError",
    "RelayError",
    "RequestTooLargeError",
    "SessionExistsError",
    "SessionLimitExceededError",
    "SessionNotFoundError",
    "SizeLimitExceededError",
    "SlowConsumerError",
    "StoreError",
    "TokenizerError",
    "UnknownEncodingError",
    "UnknownModelError",
    "UnknownModelKeyError",
    "UnknownPolicyError",
    "UnknownRoleError",
    "UnknownTokenIdError",
    "UnknownTokenKeyError",
]
