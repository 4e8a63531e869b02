"""The fuzzy cache's guard and index on the labelled near-miss pairs
(``tests/python/data/fuzzy_near_misses.json``): no false hit on the must-not pairs (one digit,
one negation, one identifier, one name or one meaning word changed), few false misses on the
must-match ones (typos, case, punctuation, contractions, fillers); contexts must be equal."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from relay_context.config.gateway import FuzzyCacheConfig, GatewaySettings
from relay_context.gateway.cache import fuzzy_guard as guard
from relay_context.gateway.cache.fuzzy_guard import FuzzyThresholds
from relay_context.gateway.cache.fuzzy_index import FuzzyIndex, split_request

DATA = Path(__file__).parent / "data" / "fuzzy_near_misses.json"


def pairs() -> list[tuple[str, str, bool, str]]:
    """(base, variant, must match, kind)."""
    out: list[tuple[str, str, bool, str]] = []
    for item in json.loads(DATA.read_text())["items"]:
        out += [(item["base"], v, True, "match") for v in item["match"]]
        out += [(item["base"], v, False, k) for k, v in item["distinct"].items()]
    return out


def openai_body(last: str, **extra: Any) -> dict[str, Any]:
    return {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "hello there"},
            {"role": "assistant", "content": "Hi."},
            {"role": "user", "content": last},
        ],
        **extra,
    }


def test_the_labelled_set_is_large_enough() -> None:
    all_pairs = pairs()
    assert len(all_pairs) >= 200
    assert sum(1 for p in all_pairs if p[2]) >= 100
    kinds = Counter(p[3].rstrip("0123456789_word").split("_")[0] for p in all_pairs if not p[2])
    assert {"digit", "negation", "identifier"} <= set(kinds)


def test_no_false_hits_and_few_false_misses() -> None:
    thresholds = FuzzyThresholds()
    false_hits = [
        (a, b, k) for a, b, must, k in pairs() if not must and guard.judge(a, b, thresholds).ok
    ]
    assert false_hits == []
    matches = [(a, b) for a, b, must, _ in pairs() if must]
    misses = [(a, b, guard.judge(a, b, thresholds).reason) for a, b in matches]
    misses = [m for m in misses if m[2] != "match"]
    assert len(misses) / len(matches) <= 0.1, misses


def test_each_check_refuses_for_its_reason() -> None:
    t = FuzzyThresholds()
    base = "Set the timeout of fetch_user() to 30 seconds in Berlin"
    assert guard.judge(base, base.lower(), t).ok
    assert guard.judge(base, base.replace("30", "31"), t).reason == "numbers"
    assert (
        guard.judge(base.replace("Set", "Do set"), base.replace("Set", "Do not set"), t).reason
        == "negations"
    )
    assert guard.judge(base, base.replace("fetch_user", "fetch_users"), t).reason == "identifiers"
    assert guard.judge(base, base.replace("Berlin", "Bern"), t).reason in ("names", "distance")
    assert guard.judge("what is the capital of Iran", "what is the capital of Iraq", t).reason in (
        "names",
        "too_short",
    )
    assert guard.judge(base, base.replace("seconds", "minutes"), t).reason in ("distance", "words")
    assert guard.judge("hi there", "hi there!", t).reason == "too_short"


def test_only_the_operator_loosens_the_thresholds() -> None:
    a = "Summarise the quarterly report for the board meeting"
    b = "Summarize the quartrly reprot for the bord meeting"
    assert not guard.judge(a, b, FuzzyThresholds()).ok
    loose = GatewaySettings(
        fuzzy_cache={"enabled": True, "min_similarity": 0.85, "max_edits": 8}
    ).fuzzy_cache
    assert guard.judge(
        a, b, FuzzyThresholds(loose.min_similarity, loose.max_edits, loose.min_chars)
    ).reason in ("match", "words")
    assert GatewaySettings().fuzzy_cache.enabled is False  # off by default
    with pytest.raises(ValueError, match="min_similarity"):
        FuzzyCacheConfig(min_similarity=0.2)  # never loosened into a semantic cache


def test_index_finds_near_entries_of_the_same_context_only() -> None:
    index = FuzzyIndex()
    t = FuzzyThresholds()
    stored = split_request(
        "openai",
        openai_body("How do I reverse a list in Python?"),
        upstream_model="gpt-4o",
        scope="key:1",
    )
    assert stored is not None
    index.add("entry-1", *stored)
    near = split_request(
        "openai",
        openai_body("how do i reverese a list in python", stream=True, user="u"),
        upstream_model="gpt-4o",
        scope="key:1",
    )
    assert near is not None
    found = index.lookup(*near, t)
    assert found.match is not None
    assert found.match.entry_key == "entry-1"
    # Another scope, model, system prompt, tool set, earlier turn or temperature: no match.
    variants = [
        dict(scope="key:2"),
        dict(upstream_model="gpt-4o-mini"),
    ]
    for v in variants:
        other = split_request(
            "openai",
            openai_body("how do i reverese a list in python"),
            **{"upstream_model": "gpt-4o", "scope": "key:1", **v},  # type: ignore[arg-type]
        )
        assert other is not None
        assert index.lookup(*other, t).match is None
    for body in (
        {**openai_body("how do i reverese a list in python"), "temperature": 0.2},
        {**openai_body("how do i reverese a list in python"), "tools": [{"type": "function"}]},
        {
            **openai_body("how do i reverese a list in python"),
            "messages": [
                {"role": "system", "content": "You are verbose."},
                *openai_body("")["messages"][1:3],
                {"role": "user", "content": "how do i reverese a list in python"},
            ],
        },
    ):
        other = split_request("openai", body, upstream_model="gpt-4o", scope="key:1")
        assert other is not None
        assert index.lookup(*other, t).match is None
    refused = split_request(
        "openai",
        openai_body("How do I reverse a list in Python 3?"),
        upstream_model="gpt-4o",
        scope="key:1",
    )
    assert refused is not None
    outcome = index.lookup(*refused, t)
    assert outcome.match is None
    assert outcome.refused == ["numbers"]


def test_index_is_bounded_and_forgets_removed_entries() -> None:
    index = FuzzyIndex(max_entries=3)
    for i in range(5):
        found = split_request(
            "anthropic",
            {
                "model": "m",
                "messages": [{"role": "user", "content": f"question number {i} about sorting"}],
            },
            upstream_model="m",
            scope="s",
        )
        assert found is not None
        index.add(f"e{i}", *found)
    assert len(index) == 3
    index.remove("e4")
    assert len(index) == 2


def test_only_text_last_user_messages_are_fuzzy() -> None:
    image = {
        "model": "gpt-4o",
        "messages": [
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": "http://x/y.png"}}],
            }
        ],
    }
    assert split_request("openai", image, upstream_model="gpt-4o", scope="s") is None
    tool_turn = {
        "model": "gpt-4o",
        "messages": [{"role": "tool", "tool_call_id": "c", "content": "42"}],
    }
    assert split_request("openai", tool_turn, upstream_model="gpt-4o", scope="s") is None
    assert split_request("gemini", {"contents": []}, upstream_model="g", scope="s") is None
