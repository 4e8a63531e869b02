"""Small checks of a client's JSON body, each raising a 400 that names the field."""

from __future__ import annotations

from typing import Any

from relay_context.checks import parse_json
from relay_context.errors import InvalidArgumentError
from relay_context.gateway.errors import InvalidRequestError


def parse_json_object(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object; 400 for anything else (as the providers answer it): not
    strict JSON (``NaN``, out-of-range numbers, deep nesting, invalid UTF-8) or a lone
    surrogate in a string, which no upstream could be sent."""
    try:
        body = parse_json(raw)
    except InvalidArgumentError as exc:
        message = f"We could not parse the JSON body of your request: {exc}"
        raise InvalidRequestError(message) from None
    if not isinstance(body, dict):
        raise InvalidRequestError("the request body must be a JSON object")
    return body


def _is_token_list(value: object) -> bool:
    return isinstance(value, list) and all(
        isinstance(t, int) and not isinstance(t, bool) for t in value
    )


def check_embeddings_input(body: dict[str, Any]) -> None:
    """``input`` of ``/v1/embeddings``: a string, or a non-empty array of strings, of token ids,
    or of arrays of token ids (OpenAI's accepted forms)."""
    value = body.get("input")
    ok = isinstance(value, str) or (
        isinstance(value, list)
        and bool(value)
        and (
            all(isinstance(v, str) for v in value)
            or _is_token_list(value)
            or all(_is_token_list(v) for v in value)
        )
    )
    if not ok:
        raise InvalidRequestError(
            "'input' is required and must be a string, an array of strings, an array of token "
            "ids or an array of arrays of token ids",
            param="input",
        )


def check_responses_input(body: dict[str, Any]) -> None:
    """``input`` of ``/v1/responses``, when given: a string or an array of input items."""
    value = body.get("input")
    if value is not None and not isinstance(value, str | list):
        raise InvalidRequestError("'input' must be a string or an array", param="input")


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
    "check_embeddings_input",
    "check_responses_input",
    "need_dict",
    "need_list",
    "need_str",
    "opt_bool",
    "opt_float",
    "opt_int",
    "opt_str",
    "parse_json_object",
]
