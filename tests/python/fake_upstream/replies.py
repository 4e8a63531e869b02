"""What a fake endpoint answers: a whole body or a stream of SSE events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Full:
    body: dict[str, Any]
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Stream:
    #: Each item is one complete SSE event (``event: ...\ndata: ...\n\n``).
    events: Iterator[bytes]


def sse(data: dict[str, Any] | str, event: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def tool_names(body: dict[str, Any]) -> list[str]:
    """Names of the tools the request offers (OpenAI or Anthropic shape)."""
    names: list[str] = []
    for tool in body.get("tools") or []:
        if isinstance(tool, dict):
            fn = tool.get("function")
            name = fn.get("name") if isinstance(fn, dict) else tool.get("name")
            if isinstance(name, str):
                names.append(name)
    return names or ["get_weather"]


def tool_arguments(i: int) -> str:
    return json.dumps({"city": ["Paris", "Tokyo", "Lima"][i % 3], "unit": "celsius"})
