"""Where and how a Gemini upstream is called (``https://generativelanguage.googleapis.com``)."""

from __future__ import annotations

from urllib.parse import quote


def generate_path(model: str, *, stream: bool) -> str:
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return f"/v1beta/models/{quote(model, safe='')}:{method}"


def count_tokens_path(model: str) -> str:
    return f"/v1beta/models/{quote(model, safe='')}:countTokens"


def auth_headers(api_key: str | None) -> dict[str, str]:
    headers = {"content-type": "application/json", "accept": "application/json"}
    if api_key:
        headers["x-goog-api-key"] = api_key
    return headers


__all__ = ["auth_headers", "count_tokens_path", "generate_path"]
