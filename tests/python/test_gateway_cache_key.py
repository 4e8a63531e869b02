"""The exact cache's key: which fields change it, which do not, and scopes that never mix."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from relay_context.gateway.cache.key import (
    SCHEMA_VERSION,
    CacheKey,
    cache_scope,
    request_cache_key,
)
from relay_context.security.auth import Principal, UserRole

OPENAI: dict[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Say hi"}],
}
ANTHROPIC: dict[str, Any] = {
    "model": "claude-3-5-haiku-latest",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "Say hi"}],
}


def key_of(body: dict[str, Any], family: Any = "openai", **kw: Any) -> CacheKey:
    return request_cache_key(
        family,
        body,
        upstream_model=kw.get("upstream_model", "gpt-4o-mini"),
        scope=kw.get("scope", "key:k1"),
    )


def test_key_is_sha256_hex_with_its_scope() -> None:
    key = key_of(OPENAI)
    assert len(key.digest) == 64
    int(key.digest, 16)
    assert key.scope == "key:k1"
    assert str(key) == key.digest
    assert key_of(dict(OPENAI)) == key


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("messages", [{"role": "user", "content": "Say bye"}]),
        ("temperature", 0.2),
        ("top_p", 0.5),
        ("n", 2),
        ("seed", 7),
        ("stop", ["\n"]),
        ("max_tokens", 10),
        ("max_completion_tokens", 10),
        ("response_format", {"type": "json_object"}),
        ("reasoning_effort", "high"),
        ("tools", [{"type": "function", "function": {"name": "f", "parameters": {}}}]),
        ("tool_choice", "required"),
        ("presence_penalty", 0.5),
        ("logit_bias", {"50256": -100}),
        ("some_future_field", 1),
    ],
)
def test_openai_fields_that_change_the_answer_change_the_key(field: str, value: Any) -> None:
    assert key_of({**OPENAI, field: value}) != key_of(OPENAI)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("user", "alice"),
        ("metadata", {"trace": "x"}),
        ("stream", True),
        ("stream_options", {"include_usage": True}),
        ("store", True),
        ("model", "my-alias"),
    ],
)
def test_openai_fields_that_do_not_change_the_answer_keep_the_key(field: str, value: Any) -> None:
    assert key_of({**OPENAI, field: value}) == key_of(OPENAI)


@pytest.mark.parametrize(
    "extra",
    [
        {"temperature": 1},
        {"temperature": 1.0, "top_p": 1, "n": 1},
        {"stop": None, "seed": None},
        {"response_format": {"type": "text"}},
        {"tools": [], "tool_choice": "none"},
        {"parallel_tool_calls": True, "logprobs": False},
        {"presence_penalty": 0, "frequency_penalty": 0.0},
    ],
)
def test_openai_defaults_are_filled(extra: dict[str, Any]) -> None:
    assert key_of({**OPENAI, **extra}) == key_of(OPENAI)


def test_openai_equivalent_spellings() -> None:
    assert key_of({**OPENAI, "stop": "x"}) == key_of({**OPENAI, "stop": ["x"]})
    assert key_of({**OPENAI, "max_tokens": 5}) == key_of({**OPENAI, "max_completion_tokens": 5})
    parts = {
        **OPENAI,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hi"}]}],
    }
    assert key_of(parts) == key_of(OPENAI)
    # Key order never matters.
    assert key_of(dict(reversed(list({**OPENAI, "seed": 1}.items())))) == key_of(
        {**OPENAI, "seed": 1}
    )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("system", "be terse"),
        ("max_tokens", 65),
        ("temperature", 0.0),
        ("top_k", 5),
        ("stop_sequences", ["END"]),
        ("thinking", {"type": "enabled", "budget_tokens": 1024}),
        ("tools", [{"name": "f", "input_schema": {"type": "object"}}]),
        ("tool_choice", {"type": "any"}),
    ],
)
def test_anthropic_fields_that_change_the_answer(field: str, value: Any) -> None:
    assert key_of({**ANTHROPIC, field: value}, "anthropic") != key_of(ANTHROPIC, "anthropic")


def test_anthropic_fields_that_do_not_and_defaults() -> None:
    base = key_of(ANTHROPIC, "anthropic")
    assert key_of({**ANTHROPIC, "metadata": {"user_id": "u"}}, "anthropic") == base
    assert key_of({**ANTHROPIC, "stream": True}, "anthropic") == base
    assert key_of({**ANTHROPIC, "temperature": 1, "system": ""}, "anthropic") == base
    assert key_of({**ANTHROPIC, "thinking": {"type": "disabled"}}, "anthropic") == base
    assert key_of({**ANTHROPIC, "system": "s"}, "anthropic") == key_of(
        {**ANTHROPIC, "system": [{"type": "text", "text": "s"}]}, "anthropic"
    )


def test_family_model_and_scope_separate_keys() -> None:
    base = key_of(OPENAI)
    assert key_of(OPENAI, "anthropic") != base
    assert key_of(OPENAI, upstream_model="gpt-4o") != base
    other = key_of(OPENAI, scope="key:k2")
    assert other != base
    assert other.digest != base.digest


def test_scope_comes_from_the_principal_only() -> None:
    alice_1 = Principal("team-a", UserRole.USER, "api_key", key_id="k1")
    alice_2 = Principal("team-a", UserRole.USER, "api_key", key_id="k2")
    bob = Principal("team-b", UserRole.USER, "api_key", key_id="k3")
    assert cache_scope(alice_1, "key") != cache_scope(alice_2, "key")
    assert cache_scope(alice_1, "team") == cache_scope(alice_2, "team")
    assert cache_scope(alice_1, "team") != cache_scope(bob, "team")
    assert cache_scope(alice_1, "global") == cache_scope(bob, "global")
    jwt = Principal("key:k1", UserRole.USER, "jwt")
    assert cache_scope(jwt, "key") != cache_scope(alice_1, "key")
    # A body that names a scope is just another field: it cannot join another scope.
    spoof = key_of({**OPENAI, "scope": "key:k2"}, scope="key:k1")
    assert spoof != key_of(OPENAI, scope="key:k2")


def test_fields_are_length_prefixed() -> None:
    """Moving bytes from one field to the next gives another key (no concatenation clash)."""
    a = request_cache_key("openai", OPENAI, upstream_model="ab", scope="c")
    b = request_cache_key("openai", OPENAI, upstream_model="a", scope="bc")
    assert a != b
    digest = hashlib.sha256()
    canonical = json.dumps(
        {
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hi"}]}],
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
            "tool_choice": "none",
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    for part in (SCHEMA_VERSION, "openai", "ab", "c", canonical):
        digest.update(len(part.encode()).to_bytes(8, "big") + part.encode())
    assert a.digest == digest.hexdigest()
