"""The opt-in fuzzy cache through the HTTP API with the official SDKs and the fake upstream: a
near-identical last user message is answered from the cache (``x-relay-cache: fuzzy-hit``, no
upstream call, cost 0) only when the guard agrees; one digit, one negation, one identifier,
another system prompt, model or key is a miss; off unless the operator turns it on."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from gateway_support import GatewayRig, jwt_for, running_gateway
from relay_context.security.auth import UserRole

CACHE = {"enabled": True}
FUZZY = {"enabled": True}


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayRig]:
    with running_gateway(tmp_path_factory.mktemp("gw-fuzzy"), cache=CACHE, fuzzy_cache=FUZZY) as r:
        yield r


def metric(rig: GatewayRig, series: str) -> float:
    """The value of one exact series (name and labels) on ``/metrics``."""
    for line in httpx.get(rig.url + "/metrics").text.splitlines():
        if line.startswith(series + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def unique() -> str:
    return uuid.uuid4().hex[:8]


def ask(
    rig: GatewayRig, text: str, *, system: str = "You are terse.", key: str | None = None, **kw: Any
) -> tuple[str, dict[str, str]]:
    """One chat completion through the OpenAI SDK: the answer and Relay's headers."""
    client = openai.OpenAI(base_url=rig.v1, api_key=key or rig.key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model=kw.pop("model", "gpt-4o"),
        messages=[{"role": "system", "content": system}, {"role": "user", "content": text}],
        **kw,
    )
    reply = raw.parse()
    return str(reply.choices[0].message.content), dict(raw.headers)


def stored(rig: GatewayRig, text: str, **kw: Any) -> str:
    """Sends ``text`` and waits until its answer is in the cache (written just after)."""
    answer, headers = ask(rig, text, **kw)
    assert headers["x-relay-cache"] == "miss"
    for _ in range(100):
        _, again = ask(rig, text, **kw)
        if again["x-relay-cache"] == "hit":
            return answer
        time.sleep(0.02)
    raise AssertionError("the answer was never stored")


def test_a_typo_is_a_fuzzy_hit_without_an_upstream_call(rig: GatewayRig) -> None:
    topic = unique()
    base = f"How do I reverse a linked list in project {topic}?"
    first = stored(rig, base)
    calls = len(rig.upstream.requests)
    answer, headers = ask(rig, f"how do i reverese a linked list in project {topic}")
    assert headers["x-relay-cache"] == "fuzzy-hit"
    assert float(headers["x-relay-fuzzy-similarity"]) >= 0.9
    assert headers["x-relay-cost-usd"] == "0.00000000"
    assert len(rig.upstream.requests) == calls  # answered by Relay alone
    assert answer == first
    assert metric(rig, 'relay_cache_hits_total{kind="fuzzy"}') >= 1


@pytest.mark.parametrize(
    ("variant", "reason"),
    [
        ("How do I reverse a linked list of 4 nodes in project {t}?", "numbers"),
        ("How do I not reverse a linked list of 3 nodes in project {t}?", "negations"),
        ("How do I reverse a linked_list of 3 nodes in project {t}?", "identifiers"),
    ],
)
def test_the_guard_refuses_meaning_changes(rig: GatewayRig, variant: str, reason: str) -> None:
    topic = unique()
    stored(rig, f"How do I reverse a linked list of 3 nodes in project {topic}?")
    calls = len(rig.upstream.requests)
    _, headers = ask(rig, variant.format(t=topic))
    assert headers["x-relay-cache"] == "miss"
    assert len(rig.upstream.requests) == calls + 1
    assert metric(rig, f'relay_fuzzy_cache_refusals_total{{reason="{reason}"}}') >= 1


def test_the_context_must_be_equal(rig: GatewayRig) -> None:
    topic = unique()
    base = f"Explain the retry policy of service {topic} briefly."
    typo = f"Explain the retry polcy of service {topic} briefly."
    stored(rig, base)
    admin = {"authorization": f"Bearer {jwt_for('root', UserRole.ADMIN)}"}
    other_key = httpx.post(
        rig.url + "/api/v1/keys", json={"role": "user", "owner": "other-" + topic}, headers=admin
    ).json()["key"]
    for kw in (
        {"system": "You are verbose."},
        {"model": "gpt-4o-mini"},
        {"temperature": 0.1},
        {"key": other_key},
    ):
        _, headers = ask(rig, typo, **kw)
        assert headers["x-relay-cache"] == "miss", kw
    _, headers = ask(rig, typo)
    assert headers["x-relay-cache"] == "fuzzy-hit"


def test_a_streamed_anthropic_request_is_answered_as_a_stream(rig: GatewayRig) -> None:
    topic = unique()
    client = anthropic.Anthropic(base_url=rig.url, api_key=rig.key, max_retries=0)
    body: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 50}
    base = f"Summarise the changelog of release {topic} for users."
    for _ in range(100):
        raw = client.messages.with_raw_response.create(
            messages=[{"role": "user", "content": base}], **body
        )
        if raw.headers["x-relay-cache"] == "hit":
            first = "".join(b.text for b in raw.parse().content if b.type == "text")
            break
        time.sleep(0.02)
    else:
        raise AssertionError("never stored")
    calls = len(rig.upstream.requests)
    with client.messages.stream(
        messages=[
            {
                "role": "user",
                "content": f"Please summarise the changelog of release {topic} for users",
            }
        ],
        **body,
    ) as stream:
        text = "".join(stream.text_stream)
        assert stream.response.headers["x-relay-cache"] == "fuzzy-hit"
    assert text == first
    assert len(rig.upstream.requests) == calls


def test_off_by_default(tmp_path: Path) -> None:
    with running_gateway(tmp_path, cache=CACHE) as plain:
        topic = unique()
        stored(plain, f"How do I reverse a linked list in project {topic}?")
        _, headers = ask(plain, f"how do i reverese a linked list in project {topic}")
        assert headers["x-relay-cache"] == "miss"
        # A request cannot turn it on or loosen it: only the settings can.
        _, headers = ask(
            plain,
            f"How do I reverse a linked lsit in project {topic}?",
            extra_headers={"x-relay-fuzzy": "on", "x-relay-fuzzy-threshold": "0.1"},
        )
        assert headers["x-relay-cache"] == "miss"
