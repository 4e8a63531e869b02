"""Small checks of a client's JSON body, each raising a 400 that names the field."""

from __future__ import annotations

import json
from typing import Any

from relay_context.gateway.errors import InvalidRequestError


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object; 400 for anything else (as the providers answer it)."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequestError(
            f"We could not parse the JSON body of your request: {exc}"
        ) from exc
    if not isinstance(body, dict):
        raise InvalidRequestError("the request body must be a JSON object")
    return body


def need_str(body: dict[str, Any], key: str, where: str = "") -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidRequestError(
            f"{where}{key!r} is required and must be a non-empty string", param=where + key
        )
    return value


def opt_str(body: dict[str, Any], key: str, where: str = "") -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise InvalidRequestError(f"{where}{key!r} must be a string", param=where + key)
    return value


def opt_int(body: dict[str, Any], key: str, *, minimum: int = 0) -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidRequestError(f"{key!r} must be an integer >= {minimum}", param=key)
    return value


def opt_float(body: dict[str, Any], key: str) -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequestError(f"{key!r} must be a number", param=key)
    return float(value)


def opt_bool(body: dict[str, Any], key: str) -> bool:
    value = body.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise InvalidRequestError(f"{key!r} must be a boolean", param=key)
    return value


def need_list(body: dict[str, Any], key: str, *, allow_empty: bool = False) -> list[Any]:
    value = body.get(key)
    if not isinstance(value, list) or (not value and not allow_empty):
        raise InvalidRequestError(f"{key!r} is required and must be a non-empty array", param=key)
    return value


def need_dict(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequestError(f"{where} must be an object", param=where)
    return value


__all__ = [
    "need_dict",
    "need_list",
    "need_str",
    "opt_bool",
    "opt_float",
    "opt_int",
    "opt_str",
    "parse_json_object",
]
