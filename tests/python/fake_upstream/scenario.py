"""What the fake upstream does for one request: a :class:`Scenario`.

A scenario comes from (first match wins) the fake's script (``POST /_fake/script`` or
``FakeUpstream.script.append(...)``: consumed one per request, in order), else from directives
written anywhere in the request body, such as a user message saying
``"fake:tools=2 fake:latency_ms=30"``. Directives: ``status=429``, ``retry_after=1``,
``latency_ms=20``, ``chunk_delay_ms=5``, ``words=12``, ``text=Hello`` (one word), ``tools=2``
(parallel tool calls), ``thinking``, ``cached=100`` (else the fake's prompt cache says),
``cut_after=3`` (close the connection after that many SSE events), ``hang`` (never answer),
``stop=max_tokens``, ``no_usage``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from typing import Any

_DIRECTIVE = re.compile(rb"fake:([a-z_]+)(?:=([A-Za-z0-9_.\-]+))?")


@dataclass(frozen=True)
class Scenario:
    status: int = 200
    retry_after: float | None = None
    latency_ms: float = 0.0
    chunk_delay_ms: float = 0.0
    words: int = 8
    text: str | None = None
    tools: int = 0
    thinking: bool = False
    cached: int = 0
    #: Anthropic ``cache_creation_input_tokens`` (set by the fake's prompt cache).
    cache_write: int = 0
    cut_after: int | None = None
    hang: bool = False
    stop: str | None = None
    no_usage: bool = False
    error_message: str = "fake upstream error"

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> Scenario:
        names = {f.name: f for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            if key not in names:
                raise ValueError(f"unknown scenario field {key!r}")
            kwargs[key] = value
        return cls(**kwargs)

    @classmethod
    def from_body(cls, body: bytes) -> Scenario:
        found = _DIRECTIVE.findall(body)
        if not found:
            return DEFAULT
        kwargs: dict[str, Any] = {}
        types = {f.name: f.type for f in fields(cls)}
        for raw_key, raw_value in found:
            key = raw_key.decode()
            if key not in types:
                continue
            value = raw_value.decode()
            kind = str(types[key])
            if "bool" in kind:
                kwargs[key] = value not in ("0", "false", "no")
            elif "int" in kind and "float" not in kind:
                kwargs[key] = int(value)
            elif "float" in kind:
                kwargs[key] = float(value)
            else:
                kwargs[key] = value
        return replace(DEFAULT, **kwargs)


DEFAULT = Scenario()
