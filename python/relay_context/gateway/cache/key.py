"""The exact cache's key: SHA-256 over a canonical, length-prefixed form of a chat request.

Two requests get the same key exactly when a provider would give them the same answer: the
canonical form holds the API family, the resolved upstream model, every body field that changes
the answer (messages, tools, tool_choice, response_format, seed, stop, n, temperature, top_p,
the output cap, reasoning or thinking settings, and any field Relay does not know, to be safe),
with the API's defaults filled in and keys sorted, and none of the fields that do not change it
(``user``, ``metadata``, ``stream``, ``stream_options``, ``store``...).

The key also carries a **scope** that the server derives from the authenticated caller
(:func:`cache_scope`): per API key by default, per team (the key's owner) or global by setting.
Nothing the client sends chooses it, so one key's entry is never served to another key
(LiteLLM shared entries across teams, #29955).

The hashed bytes are a sequence of fields, each an 8-byte big-endian length and its UTF-8
bytes, starting with :data:`SCHEMA_VERSION`: no field can run into the next, and changing the
canonical form means bumping the version, which orphans every old entry instead of misreading it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Literal

from relay_context.security.auth import Principal

#: Bump when the canonical form changes: old entries then never match.
SCHEMA_VERSION = "relay-cache-key/1"

ApiFamily = Literal["openai", "anthropic", "gemini"]
ScopeMode = Literal["key", "team", "global"]
SCOPE_MODES: tuple[ScopeMode, ...] = ("key", "team", "global")

#: Body fields that never change the answer, per API family.
IGNORED_FIELDS: dict[ApiFamily, frozenset[str]] = {
    "openai": frozenset(
        {
            "user",
            "metadata",
            "stream",
            "stream_options",
            "store",
            "service_tier",
            "safety_identifier",
        }
    ),
    "anthropic": frozenset({"metadata", "stream", "service_tier"}),
    "gemini": frozenset(),
}

#: Defaults an absent (or ``null``) field takes, per API family: written out, so that leaving a
#: field out and sending its default give one key.
_OPENAI_DEFAULTS: dict[str, Any] = {
    "temperature": 1.0,
    "top_p": 1.0,
    "n": 1,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "logprobs": False,
    "parallel_tool_calls": True,
    "response_format": {"type": "text"},
    "stop": [],
    "tools": [],
    "seed": None,
    "max_tokens": None,
    "reasoning_effort": None,
}
_ANTHROPIC_DEFAULTS: dict[str, Any] = {
    "temperature": 1.0,
    "top_p": None,
    "top_k": None,
    "stop_sequences": [],
    "tools": [],
    "system": [],
    "thinking": {"type": "disabled"},
}
#: Numeric fields written as floats, so ``1`` and ``1.0`` give one key.
_FLOAT_FIELDS = frozenset({"temperature", "top_p", "presence_penalty", "frequency_penalty"})


@dataclass(frozen=True, slots=True)
class CacheKey:
    """An entry's identity: the hex SHA-256 ``digest`` of the canonical request and its
    ``scope``. The digest covers the scope, so it alone identifies the entry."""

    digest: str
    scope: str

    def __str__(self) -> str:
        return self.digest


def cache_scope(principal: Principal, mode: ScopeMode) -> str:
    """The scope of the caller's entries, from the authenticated principal only.

    ``key``: the API key (a JWT, passthrough or open caller is known by its principal id);
    ``team``: the key's owner, which every key of one team shares; ``global``: everyone."""
    if mode == "global":
        return "global"
    if mode == "team":
        return f"team:{principal.id}"
    if principal.key_id is not None:
        return f"key:{principal.key_id}"
    return f"principal:{principal.id}"


def request_cache_key(
    family: ApiFamily, body: dict[str, Any], *, upstream_model: str, scope: str
) -> CacheKey:
    """The key of a chat request: ``body`` is the client's JSON body in ``family``'s format,
    ``upstream_model`` the model it resolves to (as the route names it, not as the client did),
    ``scope`` from :func:`cache_scope`."""
    canonical = canonical_body(family, body)
    encoded = json.dumps(
        canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    digest = hashlib.sha256()
    for part in (SCHEMA_VERSION, family, upstream_model, scope, encoded):
        data = part.encode()
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return CacheKey(digest.hexdigest(), scope)


def canonical_body(family: ApiFamily, body: dict[str, Any]) -> dict[str, Any]:
    """``body`` without the fields that do not change the answer and with defaults filled.

    The model is left out: the key names the resolved upstream model instead, so two aliases of
    one model share entries."""
    ignored = IGNORED_FIELDS[family]
    out = {
        k: _normalise_numbers(v)
        for k, v in body.items()
        if k not in ignored and k != "model" and v is not None
    }
    if family == "openai":
        return _canonical_openai(out)
    if family == "anthropic":
        return _canonical_anthropic(out)
    return out


def _canonical_openai(out: dict[str, Any]) -> dict[str, Any]:
    # ``max_completion_tokens`` replaced ``max_tokens``: one cap, one name.
    cap = out.pop("max_completion_tokens", None)
    if cap is not None:
        out["max_tokens"] = cap
    stop = out.get("stop")
    if isinstance(stop, str):
        out["stop"] = [stop]
    _fill(out, _OPENAI_DEFAULTS)
    if "tool_choice" not in out:
        out["tool_choice"] = "auto" if out["tools"] else "none"
    if not out["logprobs"]:
        out.pop("top_logprobs", None)
    messages = out.get("messages")
    if isinstance(messages, list):
        out["messages"] = [_openai_message(m) for m in messages]
    return out


def _openai_message(message: Any) -> Any:
    """A message whose content is one string and one whose content is that one text part are
    the same message."""
    if not isinstance(message, dict):
        return message
    content = message.get("content")
    if isinstance(content, str):
        return {**message, "content": [{"type": "text", "text": content}]}
    return message


def _canonical_anthropic(out: dict[str, Any]) -> dict[str, Any]:
    system = out.get("system")
    if isinstance(system, str):
        out["system"] = [{"type": "text", "text": system}] if system else []
    _fill(out, _ANTHROPIC_DEFAULTS)
    if "tool_choice" not in out and out["tools"]:
        out["tool_choice"] = {"type": "auto"}
    messages = out.get("messages")
    if isinstance(messages, list):
        out["messages"] = [_anthropic_message(m) for m in messages]
    return out


def _anthropic_message(message: Any) -> Any:
    if not isinstance(message, dict):
        return message
    content = message.get("content")
    if isinstance(content, str):
        return {**message, "content": [{"type": "text", "text": content}]}
    return message


def _fill(out: dict[str, Any], defaults: dict[str, Any]) -> None:
    for name, default in defaults.items():
        if name not in out:
            out[name] = default
        elif name in _FLOAT_FIELDS and isinstance(out[name], int | float):
            out[name] = float(out[name])


def _normalise_numbers(value: Any) -> Any:
    """Non-finite floats cannot be written as JSON: they are spelled out, not refused (the
    upstream refuses them; the key only has to be stable)."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"float:{value}"
    if isinstance(value, dict):
        return {k: _normalise_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise_numbers(v) for v in value]
    return value


__all__ = [
    "IGNORED_FIELDS",
    "SCHEMA_VERSION",
    "SCOPE_MODES",
    "ApiFamily",
    "CacheKey",
    "ScopeMode",
    "cache_scope",
    "canonical_body",
    "request_cache_key",
]
