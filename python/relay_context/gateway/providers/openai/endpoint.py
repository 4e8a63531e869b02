"""Where and how an OpenAI(-compatible) upstream is called. Base URLs include ``/v1``, as
``OPENAI_BASE_URL`` does for the official SDK."""

from __future__ import annotations

CHAT_PATH = "/chat/completions"
EMBEDDINGS_PATH = "/embeddings"
RESPONSES_PATH = "/responses"


def auth_headers(api_key: str | None) -> dict[str, str]:
    headers = {"content-type": "application/json", "accept": "application/json"}
    if api_key:
        headers["authorization"] = f"Bearer {api_key}"
    return headers


__all__ = ["CHAT_PATH", "EMBEDDINGS_PATH", "RESPONSES_PATH", "auth_headers"]
