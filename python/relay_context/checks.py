"""Argument checks shared by every layer (kernel facades, engine, stores, limiters).

One place decides what "an int of at least N" means, so that every public function refuses
``True`` for a count, names the argument, and raises the same typed error
(:class:`~relay_context.errors.InputTypeError` for the wrong type,
:class:`~relay_context.errors.InvalidArgumentError` for a value out of range).
"""

from __future__ import annotations

from numbers import Integral

from relay_context.errors import InputTypeError, InvalidArgumentError


def check_int(
    value: object,
    what: str,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
) -> int:
    """``value`` as an ``int`` if it is a whole number (not a ``bool``) in
    ``[minimum, maximum]`` (either bound may be left open)."""
    # bool is an int subclass: ``budget=True`` is a bug at the call site, not a budget of 1.
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise InputTypeError(f"{what} must be an int, not {type(value).__name__}")
    number = int(value)
    if minimum is not None and number < minimum:
        raise InvalidArgumentError(f"{what} must be >= {minimum}, got {number}")
    if maximum is not None and number > maximum:
        raise InvalidArgumentError(f"{what} must be at most {maximum:,}, got {number:,}")
    return number


#: Longest owner, tool or key name accepted.
NAME_MAX_LENGTH = 256


def preview(value: str, limit: int = 40) -> str:
    """``value`` quoted for an error message, cut after ``limit`` characters."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


def validate_name(what: str, value: object) -> str:
    """A non-empty string of at most ``NAME_MAX_LENGTH`` characters (owner, tool name, ...)."""
    if not isinstance(value, str):
        raise InputTypeError(f"{what} must be a str, got {type(value).__name__}")
    if not value:
        raise InvalidArgumentError(f"{what} is empty")
    if len(value) > NAME_MAX_LENGTH:
        raise InvalidArgumentError(
            f"{what} {preview(value)} has {len(value)} characters; at most {NAME_MAX_LENGTH}"
        )
    return value


__all__ = ["NAME_MAX_LENGTH", "check_int", "preview", "validate_name"]
