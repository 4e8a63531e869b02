"""Where and how an Anthropic upstream is called. Base URLs exclude ``/v1``, as
``ANTHROPIC_BASE_URL`` does for the official SDK."""

from __future__ import annotations

from collections.abc import Mapping

MESSAGES_PATH = "/v1/messages"
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"
DEFAULT_VERSION = "2023-06-01"
#: Client headers passed on to an Anthropic upstream (they select API features).
FORWARDED_HEADERS = ("anthropic-version", "anthropic-beta")


def auth_headers(
    api_key: str | None, client_headers: Mapping[str, str] | None = None
) -> dict[str, str]:
    headers = {
        "content-type": "application/json",
        "accept": "application/json",
        "anthropic-version": DEFAULT_VERSION,
    }
    if client_headers is not None:
        for name in FORWARDED_HEADERS:
            value = client_headers.get(name)
            if value:
                headers[name] = value
    if api_key:
        headers["x-api-key"] = api_key
    return headers


__all__ = ["COUNT_TOKENS_PATH", "DEFAULT_VERSION", "MESSAGES_PATH", "auth_headers"]
