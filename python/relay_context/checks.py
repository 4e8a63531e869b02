"""Argument checks shared by every layer (kernel facades, engine, stores, limiters).

One place decides what "an int of at least N" means, so that every public function refuses
``True`` for a count, names the argument, and raises the same typed error
(:class:`~relay_context.errors.InputTypeError` for the wrong type,
:class:`~relay_context.errors.InvalidArgumentError` for a value out of range).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from numbers import Integral
from typing import Any

from relay_context.errors import (
    InputTypeError,
    InvalidArgumentError,
    InvalidJsonError,
    InvalidUnicodeError,
)


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
    return check_text(what, value)


def check_text(what: str, value: str) -> str:
    """``value`` if it has a UTF-8 form, else :class:`InvalidUnicodeError` naming ``what``.

    JSON's ``"\\ud800"`` escapes and Python strings may hold lone surrogates; they cannot be
    encoded (the store, the tokenizer and every JSON client need UTF-8), so they are refused
    here, with the field's name, rather than deep inside a database driver."""
    if value.isascii():  # the common case, without building the encoded copy
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidUnicodeError(
            f"{what} is not valid Unicode: lone surrogate U+{ord(value[exc.start]):04X} at "
            f"character {exc.start}"
        ) from None
    return value


#: A path into a JSON-like value: object keys and list indices.
JsonPath = tuple[str | int, ...]


def _is_valid_text(value: str) -> bool:
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def find_invalid_text(value: object) -> tuple[JsonPath, str, bool] | None:
    """The path of the first string of a JSON-like value (object keys included) that is not
    valid Unicode, that string, and whether it is an object key (then the path ends with it);
    ``None`` when every string is valid. Iterative, so that a deeply nested value cannot
    exhaust the stack."""
    stack: list[tuple[JsonPath, object]] = [((), value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if not _is_valid_text(item):
                return path, item, False
        elif isinstance(item, Mapping):
            children: list[tuple[JsonPath, object]] = []
            for key, child in item.items():
                if isinstance(key, str) and not _is_valid_text(key):
                    return (*path, key), key, True
                children.append(((*path, key), child))
            stack.extend(reversed(children))
        elif isinstance(item, (list, tuple)):
            stack.extend(reversed([((*path, i), child) for i, child in enumerate(item)]))
    return None


def check_json_text(what: str, value: object) -> None:
    """:func:`check_text` on every string of a JSON-like value (object keys included); the error
    names the path of the first bad one, e.g. ``message metadata['a'][0]``."""
    found = find_invalid_text(value)
    if found is None:
        return
    path, text, is_key = found
    where = what + "".join(f"[{p!r}]" for p in path)
    check_text(f"the key {where}" if is_key else where, text)


#: Longest integer literal :func:`parse_json` accepts, in digits (Python refuses past 4,300).
JSON_MAX_INT_DIGITS = 1_000
#: A \\uD800-\\uDFFF escape: the only way a lone surrogate gets into parsed JSON.
JSON_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"the number {preview(text)} is out of range")
    return value


def _bounded_int(text: str) -> int:
    if len(text) > JSON_MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text)} digits is out of range")
    return int(text)


#: Strict JSON (RFC 8259): no ``NaN`` / ``Infinity``, no number a float or a bounded integer
#: cannot hold. One decoder for every caller (it keeps no state between calls).
STRICT_JSON_DECODER = json.JSONDecoder(
    parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_bounded_int
)


def parse_json(raw: bytes | str, what: str = "the request body") -> Any:
    """``raw`` parsed as strict JSON, or :class:`~relay_context.errors.InvalidJsonError` saying
    why not; a string holding a lone surrogate is an
    :class:`~relay_context.errors.InvalidUnicodeError` naming where it is."""
    data = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidJsonError(f"{what} is not valid UTF-8 (byte {exc.start})") from None
    try:
        value = STRICT_JSON_DECODER.decode(text)
    except RecursionError:  # the C scanner stops at the interpreter's recursion limit (~1,000)
        raise InvalidJsonError(f"{what} nests too deeply") from None
    except ValueError as exc:  # json.JSONDecodeError, and the number checks above
        raise InvalidJsonError(f"{what} is not valid JSON: {exc}") from None
    if JSON_SURROGATE_ESCAPE.search(data):
        check_json_text(what, value)
    return value


__all__ = [
    "JSON_MAX_INT_DIGITS",
    "JSON_SURROGATE_ESCAPE",
    "NAME_MAX_LENGTH",
    "STRICT_JSON_DECODER",
    "check_int",
    "check_json_text",
    "check_text",
    "find_invalid_text",
    "parse_json",
    "preview",
    "validate_name",
]
