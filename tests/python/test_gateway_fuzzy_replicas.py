"""The fuzzy cache across two ``relay serve`` processes on one Redis: a near-identical request
to the replica that did not see the original is a fuzzy hit on the entry the other stored (its
candidates are shared through Redis, sealed like the entries); the guard still refuses a changed
number there, and another caller's scope never sees the candidates."""

from __future__ import annotations

import base64
import os
import time
import uuid
from pathlib import Path
from typing import Any

import openai
import redis

from fake_upstream import FakeUpstream, serve_in_thread
from gateway_support import UPSTREAM_KEY, jwt_for
from service_support import Server, real_backends, run_server, service_env


def ask(server: Server, token: str, text: str) -> tuple[str, dict[str, str]]:
    client = openai.OpenAI(base_url=server.url + "/v1", api_key=token, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o",
        messages=[
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": text},
        ],
    )
    return str(raw.parse().choices[0].message.content), dict(raw.headers)


def stored(server: Server, token: str, text: str) -> tuple[str, str]:
    """Sends ``text`` and waits until its answer is in the cache: (answer, entry key)."""
    answer, headers = ask(server, token, text)
    assert headers["x-relay-cache"] == "miss"
    for _ in range(100):
        _, again = ask(server, token, text)
        if again["x-relay-cache"] == "hit":
            return answer, headers["x-relay-cache-key"]
        time.sleep(0.02)
    raise AssertionError("the answer was never stored")


def test_a_replica_fuzzy_hits_what_another_stored(
    tmp_path: Path, pg_dsn: str, redis_server: str
) -> None:
    upstream = FakeUpstream(required_key=UPSTREAM_KEY)
    key = base64.b64encode(os.urandom(32)).decode()
    with (
        serve_in_thread(upstream) as url,
        real_backends(pg_dsn, redis_server, "gwfz") as backends,
    ):
        env = service_env(
            tmp_path / "data",
            **backends,
            OPENAI_BASE_URL=url + "/v1",
            OPENAI_API_KEY=UPSTREAM_KEY,
            GATEWAY_CACHE={"enabled": True, "encryption_keys": [key]},
            GATEWAY_FUZZY_CACHE={"enabled": True},
        )
        with run_server(env, tmp_path / "a") as a, run_server(env, tmp_path / "b") as b:
            token = jwt_for("fuzzy-alice")
            topic = uuid.uuid4().hex[:8]
            answer, entry = stored(a, token, f"How do I reverse a linked list in project {topic}?")
            calls = len(upstream.requests)

            # B never saw it: it reads the scope's shared candidates, then the entry.
            near, headers = ask(b, token, f"how do i reverese a linked list in project {topic}")
            assert headers["x-relay-cache"] == "fuzzy-hit"
            assert headers["x-relay-cache-key"] == entry
            assert headers["x-relay-cost-usd"] == "0.00000000"
            assert near == answer
            assert len(upstream.requests) == calls

            # The guard still decides on B: a number changed is a miss.
            stored(a, token, f"What are the 3 largest files in project {topic}?")
            calls = len(upstream.requests)
            _, headers = ask(b, token, f"What are the 4 largest files in project {topic}?")
            assert headers["x-relay-cache"] == "miss"
            assert len(upstream.requests) == calls + 1

            # Another caller's scope: its lookups never read alice's candidates.
            _, headers = ask(
                b, jwt_for("fuzzy-bob"), f"how do i reverse a linked list in project {topic}"
            )
            assert headers["x-relay-cache"] == "miss"

            # What Redis holds of the candidates is sealed: no prompt text in it.
            client: Any = redis.Redis.from_url(redis_server)
            try:
                streams = list(client.scan_iter(backends["redis_key_prefix"] + "gw:fz:*"))
                assert streams  # one per scope that stored a candidate
                values = [
                    value
                    for stream in streams
                    for _, fields in client.xrange(stream)
                    for value in fields.values()
                ]
                assert values
                assert not any(topic.encode() in v or b"linked" in v for v in values)
            finally:
                client.close()
