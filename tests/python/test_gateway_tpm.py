"""Tokens per minute: the exact prompt is charged before the call and the output after it; a
sliding window over one-minute buckets, in process or shared through Redis."""

from __future__ import annotations

from pathlib import Path

from redis.asyncio import Redis

from gateway_support import running_gateway
from relay_context.core.tokenizer import TokenCounter
from relay_context.gateway.token_rate import TokensPerMinute


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_040.0  # 20 s into a minute (60 x 16,667 = 1,000,020)

    def __call__(self) -> float:
        return self.now


async def test_sliding_window_in_process() -> None:
    clock = Clock()
    tpm = TokensPerMinute(100, clock=clock)
    assert (await tpm.check("k", 60))[0]
    allowed, retry_after, used = await tpm.check("k", 50)
    assert not allowed
    assert used == 60
    assert retry_after >= 1
    assert (await tpm.check("other", 90))[0]  # per key
    clock.now += 60  # next minute: the previous bucket weighs 2/3 (40 s of it still in view)
    allowed, _, used = await tpm.check("k", 65)
    assert not allowed
    assert used == 40
    assert (await tpm.check("k", 55))[0]
    clock.now += 120
    assert (await tpm.check("k", 100))[0]


async def test_shared_through_redis(redis_server: str, redis_prefix: str) -> None:
    client = Redis.from_url(redis_server)
    try:
        clock = Clock()
        one = TokensPerMinute(100, client, redis_prefix, clock)
        two = TokensPerMinute(100, client, redis_prefix, clock)
        assert (await one.check("k", 70))[0]
        assert not (await two.check("k", 40))[0]
        await two.add("k", 10)
        assert (await one.check("k", 20))[2] == 100
    finally:
        await client.aclose()


def test_tpm_through_the_gateway(tmp_path: Path) -> None:
    with running_gateway(tmp_path, tpm=60) as rig:
        messages = [{"role": "user", "content": "one two three four five " * 6}]
        prompt = TokenCounter.for_model("gpt-4o").count_messages(messages)
        assert 30 < prompt < 60
        first = rig.post("/v1/chat/completions", {"model": "gpt-4o", "messages": messages})
        assert first.status_code == 200
        second = rig.post("/v1/chat/completions", {"model": "gpt-4o", "messages": messages})
        assert second.status_code == 429
        assert second.headers["x-ratelimit-limit-tokens"] == "60"
        assert int(second.headers["retry-after"]) >= 1
        assert "tokens per minute" in second.json()["error"]["message"]
