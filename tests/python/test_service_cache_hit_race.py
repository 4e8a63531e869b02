"""Whether a window came from the cache is this request's answer, not a guess from global
counters: concurrent requests must not read each other's hits and misses.

The service once diffed the cache's process-wide hit/miss counters around its own call; with
requests in flight together, a hit next to a concurrent miss was reported as a miss (and its
savings counted again). Each request's ``relay.cache_hit`` span attribute, and the Prometheus
counters, must agree exactly with what the cache itself did. The window cache is Redis here: a
lookup then waits on the network, which is when other requests' lookups land in between.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr

from context_service_support import CONTEXT, bearer, metric_samples, post_message
from relay_context.config.settings import Environment, Settings
from relay_context.service.app import create_app
from service_support import TEST_SECRET, serve_in_thread

ADMIN = bearer("root", "admin")
REQUESTS = 96
CONCURRENCY = 24
BUDGETS = (900, 1000, 1100, 1200, 1300, 1400)


async def _fetch_concurrently(url: str) -> list[int]:
    limit = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, timeout=60) as client:

        async def one(i: int) -> int:
            async with limit:
                response = await client.get(
                    f"{CONTEXT}/race",
                    headers=ADMIN,
                    params={"budget": BUDGETS[i % len(BUDGETS)]},
                )
                return response.status_code

        return await asyncio.gather(*(one(i) for i in range(REQUESTS)))


def test_cache_hits_are_reported_per_request(
    tmp_path: Path, redis_server: str, redis_prefix: str
) -> None:
    exporter = InMemorySpanExporter()
    settings = Settings(
        environment=Environment.TESTING,
        secret_key=SecretStr(TEST_SECRET),
        data_dir=tmp_path,
        redis_url=redis_server,
        redis_key_prefix=redis_prefix,
        rate_limit_requests=10_000,
        log_level="WARNING",
    )
    app = create_app(settings, span_exporter=exporter)
    state = app.state.relay
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as c:
        post_message(c, ADMIN, "race", "You answer briefly.", role="system")
        for i in range(120):
            text = f"Question {i}: what do we know about subject {i % 17} and its history?"
            assert post_message(c, ADMIN, "race", text).status_code == 201
        before = state.engine.cache.stats
        hits_before, misses_before = before.hits, before.misses
        statuses = asyncio.run(_fetch_concurrently(url))
        assert statuses == [200] * REQUESTS
        after = state.engine.cache.stats
        hits, misses = after.hits - hits_before, after.misses - misses_before
        samples = metric_samples(c.get("/metrics").text)
    assert hits + misses == REQUESTS
    assert hits > 0
    assert misses >= len(BUDGETS)  # each budget's first window is built
    reported = [
        span.attributes["relay.cache_hit"]  # type: ignore[index]
        for span in exporter.get_finished_spans()
        if span.name == "context.select"
    ]
    assert len(reported) == REQUESTS
    assert (reported.count(True), reported.count(False)) == (hits, misses)
    assert samples["relay_context_cache_hits_total"] == hits
    assert samples["relay_context_cache_misses_total"] == misses
