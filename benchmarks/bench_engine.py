"""Context engine throughput and latency on a 1,000-message session, per back-end.

    python benchmarks/bench_engine.py [--quick] [--first-window]

For SQLite (a temporary file) and PostgreSQL (127.0.0.1:5432, database `test`, a temporary
schema), each with the in-process window cache and with Redis (127.0.0.1:6379):

* ``add_message``: one message per call (validate, count tokens in two encodings, compress,
  ordered append, notify), messages/s and p50/p99 latency;
* ``get_context`` cold: a window of 8,000 tokens built from the store (read 1,000 messages,
  collapse near-duplicates, knapsack selection, drift), a different query each call so the cache
  never answers; and warm: the same call again, served from the cache.

Then the window computation alone, in memory, against the naive baseline people write: keep the
newest messages that fit, each counted with tiktoken (no pinning, no groups, no dedup, no
relevance). Ratios > 1 mean Relay is faster.

Times are CPU time of the process (``time.process_time``: the database driver's threads count,
other jobs on the machine do not), the median of the calls with the p99; wall-clock medians are
printed alongside. ``get_context`` first: the first window of the session in a new engine
(process), which reads and indexes every message; printed with how many of those calls ran a
full (generation 2) collection of Python's garbage collector, which costs as much as the
window itself on this machine and makes the p99.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import functools
import gc
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "python"))
os.environ.setdefault("TIKTOKEN_CACHE_DIR", "/work/shared/data/bpe/tiktoken-cache")

import tiktoken  # noqa: E402

from conversation_support import conversation, stored  # noqa: E402
from engine_support import drop_pg_schema, find_pg_dsn  # noqa: E402
from relay_context.config.settings import Settings  # noqa: E402
from relay_context.engine.context_engine import ContextEngine  # noqa: E402

MESSAGES = 1000
BUDGET = 8000
REDIS_URL = "redis://127.0.0.1:6379/0"


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class Samples:
    cpu: list[float]
    wall: list[float]


async def timed_calls(fn: Callable[[int], Awaitable[object]], calls: int) -> Samples:
    out = Samples([], [])
    for i in range(calls):
        cpu, wall = time.process_time(), time.perf_counter()
        await fn(i)
        out.cpu.append(time.process_time() - cpu)
        out.wall.append(time.perf_counter() - wall)
    return out


def report(label: str, samples: Samples) -> float:
    """Prints the figures; returns calls per CPU second (from the median)."""
    p50 = percentile(samples.cpu, 0.5)
    print(
        f"  {label:<34} {1 / p50:>9.1f} /s  CPU p50 {p50 * 1e3:>7.2f} ms"
        f"  p99 {percentile(samples.cpu, 0.99) * 1e3:>7.2f} ms"
        f"   (wall p50 {percentile(samples.wall, 0.5) * 1e3:>7.2f} ms)"
    )
    return 1 / p50


async def bench_engine(
    label: str,
    settings: Settings,
    turns: list[dict[str, Any]],
    reads: int,
    naive_rate: float,
    first_only: bool = False,
) -> None:
    print(label)
    async with ContextEngine(settings) as engine:
        session = f"bench-{secrets.token_hex(4)}"

        async def add(i: int) -> None:
            await engine.add_message(session, **turns[i])

        report("add_message", await timed_calls(add, len(turns)))
        if first_only:
            reads *= 2  # the one case measured: twice the calls for a steadier p50

        async def cold(i: int) -> None:
            await engine.get_context(session, budget=BUDGET, query=f"question {i} about tables")

        async def warm(i: int) -> None:
            await engine.get_context(session, budget=BUDGET, query="question 0 about tables")

        if not first_only:
            rate = report(f"get_context cold ({BUDGET} tokens)", await timed_calls(cold, reads))
            print(f"  {'':<34} ratio vs naive in memory {rate / naive_rate:.2f}x")
            rate = report("get_context warm (cached)", await timed_calls(warm, reads * 5))
            print(f"  {'':<34} ratio vs naive in memory {rate / naive_rate:.2f}x")

    first = Samples([], [])
    full_collections = 0

    def count_full(phase: str, info: dict[str, Any]) -> None:
        nonlocal full_collections
        if phase == "start" and info["generation"] == 2:
            full_collections += 1

    gc.callbacks.append(count_full)
    calls_with_full = 0
    for i in range(reads):
        # A new engine (as a new process would be): no messages or indexes in memory. Only the
        # call is timed, not opening the engine.
        async with ContextEngine(settings) as fresh:
            query = f"first question {i}"  # never cached (the Redis cache outlives engines)
            before = full_collections
            once = await timed_calls(
                lambda _, q=query: fresh.get_context(session, budget=BUDGET, query=q), 1
            )
            calls_with_full += full_collections > before
        first.cpu += once.cpu
        first.wall += once.wall
    gc.callbacks.remove(count_full)
    report("get_context first (new engine)", first)
    print(f"  {'':<34} {calls_with_full} of {reads} calls ran a full garbage collection")
    async with ContextEngine(settings) as engine:
        await engine.clear(session)


def naive_window(
    encoding: tiktoken.Encoding, messages: list[dict[str, Any]], budget: int
) -> list[dict[str, Any]]:
    """The baseline: newest messages that fit, 3 tokens of framing each, counted by tiktoken."""
    used = 3
    kept: list[dict[str, Any]] = []
    for m in reversed(messages):
        cost = 3 + len(encoding.encode(m["role"])) + len(encoding.encode(m["content"] or ""))
        if used + cost > budget:
            break
        kept.append(m)
        used += cost
    kept.reverse()
    return kept


async def bench_in_memory(turns: list[dict[str, Any]], reads: int) -> float:
    print("window computation alone, 1,000 messages in memory (gpt-4o, o200k_base)")
    engine = ContextEngine(Settings())
    messages = stored(turns)
    openai = [m.to_openai() for m in messages]
    encoding = tiktoken.get_encoding("o200k_base")

    async def naive(i: int) -> None:
        naive_window(encoding, openai, BUDGET)

    async def relay(policy: str) -> Callable[[int], Awaitable[object]]:
        async def run(i: int) -> None:
            await engine.build_window(
                "bench", messages, budget=BUDGET, model="gpt-4o", policy=policy
            )

        return run

    base = report("naive tail + tiktoken", await timed_calls(naive, reads))
    for policy in ("recent", "knapsack", "summarize"):
        rate = report(f"Relay {policy}", await timed_calls(await relay(policy), reads))
        print(f"  {'':<34} ratio vs naive {rate / base:.2f}x")
    # With counts stored at add_message (what get_context sees from the store).
    counted = [
        dataclasses.replace(m, token_counts={"o200k_base": len(encoding.encode(m.content))})
        for m in messages
    ]

    async def relay_counted(i: int) -> None:
        await engine.build_window(
            "bench", counted, budget=BUDGET, model="gpt-4o", policy="knapsack"
        )

    rate = report("Relay knapsack, counts stored", await timed_calls(relay_counted, reads))
    print(f"  {'':<34} ratio vs naive {rate / base:.2f}x")

    # A query never seen before on every call (each read scores every message again; the rows
    # of the last few queries are remembered per session, which the lines above measure).
    async def relay_new_query(i: int) -> None:
        await engine.build_window(
            "bench",
            counted,
            budget=BUDGET,
            model="gpt-4o",
            policy="knapsack",
            query=f"{turns[i % len(turns)]['content'][:80]} #{i}",
        )

    rate = report("Relay knapsack, a new query each", await timed_calls(relay_new_query, reads))
    print(f"  {'':<34} ratio vs naive {rate / base:.2f}x")
    return base


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="200 messages, fewer reads")
    ap.add_argument(
        "--first-window",
        action="store_true",
        help="only the first get_context of the session in a new engine, per back-end",
    )
    args = ap.parse_args()
    count, reads = (200, 10) if args.quick else (MESSAGES, 30)
    turns = conversation(count, seed=42, tool_rate=0.1)
    chars = sum(len(t["content"]) for t in turns) // len(turns)
    print(f"{count} messages of ~{chars} characters (system, user, assistant, tool calls)\n")
    first = args.first_window
    naive = float("nan") if first else await bench_in_memory(turns, reads)
    bench = functools.partial(bench_engine, reads=reads, naive_rate=naive, first_only=first)

    with tempfile.TemporaryDirectory() as tmp:
        base = {"database_url": f"sqlite:///{tmp}/relay.db"}
        await bench("SQLite, in-process cache", Settings(**base), turns)
        prefix = f"relay-bench-{secrets.token_hex(4)}:"
        await bench(
            "SQLite + Redis cache",
            Settings(**base, redis_url=REDIS_URL, redis_key_prefix=prefix),
            turns,
        )

    dsn, problem = await asyncio.to_thread(
        find_pg_dsn, "127.0.0.1:5432", "test", ("postgres", "root")
    )
    if dsn is None:
        print(f"PostgreSQL not reachable, skipped: {problem}")
        return
    schema = f"relay_bench_{os.getpid()}_{secrets.token_hex(4)}"
    try:
        pg = {"database_url": dsn, "database_schema": schema, "database_pool_size": 4}
        await bench("PostgreSQL, in-process cache", Settings(**pg), turns)
        await bench(
            "PostgreSQL + Redis cache",
            Settings(**pg, redis_url=REDIS_URL, redis_key_prefix=f"relay-bench-{schema}:"),
            turns,
        )
    finally:
        await asyncio.to_thread(drop_pg_schema, dsn, schema)


if __name__ == "__main__":
    asyncio.run(main())
