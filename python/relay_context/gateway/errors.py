"""The gateway's typed errors. Each carries its HTTP status and a neutral kind; the client sees
it in the shape of the API it called (:mod:`relay_context.gateway.error_shapes`, the only place
that renders them)."""

from __future__ import annotations

from typing import Literal

from relay_context.errors import AuthenticationError, InvalidArgumentError, RelayError

#: Neutral error kinds; each provider's shape names them its own way.
ErrorKind = Literal[
    "invalid_request",
    "authentication",
    "permission",
    "not_found",
    "request_too_large",
    "rate_limit",
    "api_error",
    "overloaded",
    "timeout",
]


class GatewayError(RelayError):
    """An error answered to a gateway client (``status`` and ``kind`` say how)."""

    status: int = 500
    kind: ErrorKind = "api_error"
    code: str | None = None
    param: str | None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.retry_after = retry_after
        self.headers = dict(headers or {})


class InvalidRequestError(GatewayError, InvalidArgumentError):
    """The request body is not valid for the API it was sent to (400)."""

    status: int = 400
    kind: ErrorKind = "invalid_request"


class ContextLengthExceededError(InvalidRequestError):
    """The prompt and the requested output do not fit the model's window (policy ``reject``)."""

    code = "context_length_exceeded"


class GatewayAuthenticationError(GatewayError, AuthenticationError):
    status: int = 401
    kind: ErrorKind = "authentication"
    code = "invalid_api_key"


class ModelNotAllowedError(GatewayError):
    status: int = 403
    kind: ErrorKind = "permission"
    code = "model_not_allowed"


class RoleNotAllowedError(GatewayError):
    """A VIEWER credential asked for a call that reaches an upstream (and spends): 403."""

    status: int = 403
    kind: ErrorKind = "permission"
    code = "permission_denied"


class ModelNotFoundError(GatewayError, LookupError):
    """No route serves this model name (404 ``model_not_found``)."""

    status: int = 404
    kind: ErrorKind = "not_found"
    code = "model_not_found"


class RequestBodyTooLargeError(GatewayError):
    status: int = 413
    kind: ErrorKind = "request_too_large"
    code = "request_too_large"


class GatewayRateLimitError(GatewayError):
    """The key's requests or tokens per minute are spent (429 with ``retry-after``)."""

    status: int = 429
    kind: ErrorKind = "rate_limit"
    code = "rate_limit_exceeded"


class BudgetExceededError(GatewayError):
    status: int = 429
    kind: ErrorKind = "rate_limit"
    code = "budget_exceeded"


class UpstreamError(GatewayError):
    """The upstream answered an error; the client gets its status and message."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        provider: str,
        retry_after: float | None = None,
        upstream_type: str | None = None,
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status = status
        self.provider = provider
        self.upstream_type = upstream_type
        self.kind = _kind_for_status(status)

    @property
    def retryable(self) -> bool:
        return self.status in RETRYABLE_STATUSES


class UpstreamUnavailableError(GatewayError):
    """The upstream could not be reached, timed out, or cut the connection (502 / 504)."""

    status: int = 502
    kind: ErrorKind = "api_error"

    def __init__(self, message: str, *, provider: str, timeout: bool = False) -> None:
        super().__init__(message)
        self.provider = provider
        if timeout:
            self.status = 504
            self.kind = "timeout"


class AllRoutesOpenError(GatewayError):
    """Every deployment of the model has its circuit open: 503 with ``retry-after``, and no
    upstream call."""

    status: int = 503
    kind: ErrorKind = "overloaded"
    code = "circuit_open"


#: Upstream statuses worth another attempt (while nothing was sent to the client).
RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 520, 522, 524, 529})


def _kind_for_status(status: int) -> ErrorKind:
    if status == 401:
        return "authentication"
    if status == 403:
        return "permission"
    if status == 404:
        return "not_found"
    if status == 413:
        return "request_too_large"
    if status == 429:
        return "rate_limit"
    if status in (503, 529):
        return "overloaded"
    if 400 <= status < 500:
        return "invalid_request"
    return "api_error"


__all__ = [
    "RETRYABLE_STATUSES",
    "AllRoutesOpenError",
    "BudgetExceededError",
    "ContextLengthExceededError",
    "ErrorKind",
    "GatewayAuthenticationError",
    "GatewayError",
    "GatewayRateLimitError",
    "InvalidRequestError",
    "ModelNotAllowedError",
    "ModelNotFoundError",
    "RequestBodyTooLargeError",
    "RoleNotAllowedError",
    "UpstreamError",
    "UpstreamUnavailableError",
]
