"""Soak: ``relay serve`` under mixed traffic at a fixed rate, its memory sampled as it goes.

    python benchmarks/soak.py [--requests N | --duration S] [--rate R] [--sample-seconds S]
                              [--json PATH]

Starts the project's fake upstream and ``relay serve`` (embedded defaults: SQLite in a temporary
``DATA_DIR``) as processes of their own, then sends requests open-loop at ``--rate`` per second
(a request that cannot start because ``--max-in-flight`` are already out counts as ``late``):

* gateway, OpenAI format: non-streamed and streamed chat completions with text of their own;
* gateway, Anthropic format (``/v1/messages``), streamed and not;
* gateway, repeated: identical requests from a small pool (what a response cache answers);
* gateway, coalesced: bursts of identical streamed requests sent at the same instant (what
  in-flight coalescing joins);
* the context API: appends to 50 sessions and windows read back. A session ends after
  ``--session-messages`` appends (as conversations do) and its slot goes on with a new one, so
  that the cost of a window stays that of a conversation, not of one grown for an hour; the
  ended ones stay in the store.

The engine's in-memory sessions (``CONTEXT_MEMORY_MAX_BYTES``) and the response cache are given
small bounds (``--context-memory-bytes``, ``--cache-bytes``) so that both are full early in the
run: what is measured is that full caches stay flat.

The server's resident memory (``VmRSS`` of its process) is read every ``--sample-seconds``; the
report gives each kind's p50/p99 and errors, and the RSS slope after the warm-up (``--warmup``,
the first quarter of the samples by default) by least squares, in MiB per minute and per 100k
requests. The peers' proxies grow without bound under such traffic (litellm #12685, #15128,
#27954); Relay's slope must be flat. ``tests/python/test_soak.py`` runs a two-minute
version and asserts it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
RELAY = Path(sys.executable).parent / "relay"
UPSTREAM_KEY = "sk-soak-upstream"
WORDS = [
    "context",
    "window",
    "token",
    "budget",
    "session",
    "message",
    "relay",
    "gateway",
    "stream",
    "cache",
    "prefix",
    "model",
    "answer",
    "question",
    "code",
    "review",
    "diff",
    "test",
    "failure",
    "retry",
    "latency",
    "memory",
]

#: Traffic mix: kind -> weight (requests of that kind per 100).
MIX = {
    "chat": 25,
    "chat_stream": 15,
    "messages": 10,
    "messages_stream": 5,
    "repeated": 15,
    "coalesced": 10,  # each one is a burst of BURST identical streams
    "context_append": 12,
    "context_get": 8,
}
BURST = 4
SESSIONS = 50


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, path: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            raise SystemExit(f"{process.args!r} exited with {process.returncode}:\n{tail}")
        try:
            httpx.get(url + path, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


@contextmanager
def started(
    args: list[str], env: dict[str, str], url: str, probe: str, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        wait_up(url, probe, process, log)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x (0 for fewer than two distinct x)."""
    if len(points) < 2:
        return 0.0
    mx = statistics.fmean(x for x, _ in points)
    my = statistics.fmean(y for _, y in points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in points) / sxx


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Results:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    first_errors: list[str] = field(default_factory=list)
    late: int = 0
    sent: int = 0
    retried: int = 0

    def error(self, kind: str, what: str) -> None:
        self.errors[kind] += 1
        if len(self.first_errors) < 10:
            self.first_errors.append(f"{kind}: {what}"[:300])


class Traffic:
    def __init__(
        self, relay: str, key: str, seed: int, session_messages: int = 0, context_words: int = 30
    ) -> None:
        self.relay = relay
        self.key = key
        self.rng = random.Random(seed)
        self.counter = 0
        self.pool = [self._text(12) for _ in range(20)]
        #: Appends a session takes before its slot moves on to a new one (0: never).
        self.session_messages = session_messages
        self.appends = [0] * SESSIONS
        self.generation = [0] * SESSIONS
        self.context_words = context_words

    def _session(self, slot: int) -> str:
        return f"soak-{slot}-{self.generation[slot]}"

    def _text(self, n: int) -> str:
        return " ".join(self.rng.choice(WORDS) for _ in range(n))

    def _unique(self) -> str:
        self.counter += 1
        return f"#{self.counter} {self._text(10)}"

    def _chat(self, text: str, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "You are a careful assistant."},
                {"role": "user", "content": text},
            ],
            "max_tokens": 64,
        }
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def request(self, kind: str) -> list[tuple[str, str, dict[str, Any] | None, bool]]:
        """(method, path, json body, streamed) for each HTTP request of one traffic unit."""
        if kind == "chat":
            return [("POST", "/v1/chat/completions", self._chat(self._unique(), False), False)]
        if kind == "chat_stream":
            return [("POST", "/v1/chat/completions", self._chat(self._unique(), True), True)]
        if kind in ("messages", "messages_stream"):
            stream = kind == "messages_stream"
            body: dict[str, Any] = {
                "model": "claude-haiku-4-5",
                "max_tokens": 64,
                "system": "You are a careful assistant.",
                "messages": [{"role": "user", "content": self._unique()}],
            }
            if stream:
                body["stream"] = True
            return [("POST", "/v1/messages", body, stream)]
        if kind == "repeated":
            text = self.rng.choice(self.pool)
            return [("POST", "/v1/chat/completions", self._chat(text, False), False)]
        if kind == "coalesced":
            # Slow enough upstream that the burst's requests overlap.
            body = self._chat(self._unique() + " fake:chunk_delay_ms=5", True)
            return [("POST", "/v1/chat/completions", body, True)] * BURST
        slot = self.rng.randrange(SESSIONS)
        session = self._session(slot)
        if kind == "context_append":
            self.appends[slot] += 1
            if self.session_messages and self.appends[slot] >= self.session_messages:
                self.appends[slot] = 0
                self.generation[slot] += 1
            content = self._text(self.context_words)
            message = {"session_id": session, "role": "user", "content": content}
            return [("POST", "/api/v1/context/messages", message, False)]
        # Room for the latest turn (always kept) however long --context-words makes it.
        budget = max(2000, 2 * self.context_words)
        return [("GET", f"/api/v1/context/{session}?budget={budget}", None, False)]


async def one(
    client: httpx.AsyncClient, results: Results, kind: str, spec: tuple[str, str, Any, bool]
) -> None:
    method, path, body, stream = spec
    started_at = time.perf_counter()
    for attempt in range(2):
        answered = False  # response headers arrived: a failure after that is the server's
        try:
            if stream:
                async with client.stream(method, path, json=body) as response:
                    answered = True
                    tail = b""
                    async for chunk in response.aiter_bytes():
                        tail = (tail + chunk)[-512:]
                    if response.status_code != 200:
                        results.error(kind, f"{response.status_code} {tail!r}")
                        return
                    if b"event: error" in tail:
                        results.error(kind, f"stream ended with an error event: {tail!r}")
                        return
            else:
                response = await client.request(method, path, json=body)
                # A window of a session nobody appended to yet is a 404, not a server error.
                ok = response.status_code in (200, 201) or (
                    kind == "context_get" and response.status_code == 404
                )
                if not ok:
                    results.error(kind, f"{response.status_code} {response.text[:200]}")
                    return
            break
        except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError) as exc:
            # A kept-alive connection the server closed as the request went out: the official
            # SDKs retry these (max_retries), and so does this client, once, counting it.
            if attempt == 0 and not answered:
                results.retried += 1
                continue
            results.error(kind, f"{type(exc).__name__}: {exc!r}")
            return
        except httpx.HTTPError as exc:
            results.error(kind, f"{type(exc).__name__}: {exc!r}")
            return
    results.latencies[kind].append((time.perf_counter() - started_at) * 1000)


async def drive(
    relay: str,
    key: str,
    server_pid: int,
    *,
    rate: float,
    total: int | None,
    duration: float | None,
    sample_seconds: float,
    max_in_flight: int,
    seed: int,
    without: frozenset[str] = frozenset(),
    session_messages: int = 0,
    context_words: int = 30,
) -> tuple[Results, list[tuple[float, int, float]]]:
    results = Results()
    traffic = Traffic(relay, key, seed, session_messages, context_words)
    kinds = [k for k, w in MIX.items() for _ in range(w) if k not in without]
    random.Random(seed).shuffle(kinds)
    samples: list[tuple[float, int, float]] = []  # (seconds, requests sent, RSS MiB)
    # Idle connections are dropped before the server's keep-alive timeout (5 s) would close them
    # under a request being sent (the race every HTTP/1.1 client has with an equal expiry).
    limits = httpx.Limits(
        max_connections=max_in_flight, max_keepalive_connections=max_in_flight, keepalive_expiry=2.0
    )
    headers = {"authorization": f"Bearer {key}", "x-api-key": key}
    in_flight: set[asyncio.Task[None]] = set()
    slots = asyncio.Semaphore(max_in_flight)

    async def guarded(kind: str, spec: tuple[str, str, Any, bool]) -> None:
        try:
            await one(client, results, kind, spec)
        finally:
            slots.release()

    async with httpx.AsyncClient(
        base_url=relay, headers=headers, limits=limits, timeout=60
    ) as client:
        begin = time.monotonic()
        next_sample = begin
        i = 0
        while True:
            now = time.monotonic()
            if now >= next_sample:
                samples.append((now - begin, results.sent, rss_mib(server_pid)))
                next_sample += sample_seconds
            if (total is not None and results.sent >= total) or (
                duration is not None and now - begin >= duration
            ):
                break
            due = begin + i / rate
            if due > now:
                await asyncio.sleep(min(due - now, max(0.0, next_sample - now)))
                continue
            kind = kinds[i % len(kinds)]
            i += 1
            for spec in traffic.request(kind):
                if slots.locked():
                    results.late += 1
                    continue
                await slots.acquire()
                results.sent += 1
                task = asyncio.create_task(guarded(kind, spec))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
        if in_flight:
            await asyncio.wait(in_flight, timeout=120)
        samples.append((time.monotonic() - begin, results.sent, rss_mib(server_pid)))
    return results, samples


def report(
    results: Results, samples: list[tuple[float, int, float]], rate: float, warmup: float
) -> dict[str, Any]:
    warm = samples[int(len(samples) * warmup) :]
    per_minute = slope([(t / 60, rss) for t, _, rss in warm])
    per_100k = slope([(n / 100_000, rss) for _, n, rss in warm])
    total_errors = sum(results.errors.values())
    kinds = {
        kind: {
            "requests": len(lat) + results.errors.get(kind, 0),
            "errors": results.errors.get(kind, 0),
            "p50_ms": round(percentile(lat, 0.50), 2),
            "p99_ms": round(percentile(lat, 0.99), 2),
        }
        for kind, lat in sorted(results.latencies.items())
    }
    return {
        "rate": rate,
        "seconds": round(samples[-1][0], 1),
        "requests": results.sent,
        "late": results.late,
        "retried": results.retried,
        "errors": total_errors,
        "error_rate": total_errors / max(1, results.sent),
        "first_errors": results.first_errors,
        "kinds": kinds,
        "rss_mib": [round(rss, 2) for _, _, rss in samples],
        "rss_start_mib": round(warm[0][2], 2) if warm else None,
        "rss_end_mib": round(samples[-1][2], 2),
        "rss_slope_mib_per_minute": round(per_minute, 4),
        "rss_slope_mib_per_100k_requests": round(per_100k, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=None, help="stop after this many")
    parser.add_argument("--duration", type=float, default=None, help="stop after this long (s)")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--sample-seconds", type=float, default=10.0)
    parser.add_argument("--max-in-flight", type=int, default=128)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--without", default="", help="comma-separated kinds of traffic to leave out of the mix"
    )
    parser.add_argument(
        "--cache-bytes",
        type=int,
        default=4 * 1024 * 1024,
        help="the response cache's memory bound (reached early, so that a full cache is measured)",
    )
    parser.add_argument(
        "--context-memory-bytes",
        type=int,
        default=1024 * 1024,
        help="the engine's bound on sessions kept in memory (reached early, like --cache-bytes)",
    )
    parser.add_argument(
        "--session-messages",
        type=int,
        default=400,
        help="appends after which a session ends and its slot starts a new one (0: never)",
    )
    parser.add_argument(
        "--context-words", type=int, default=30, help="words per appended context message"
    )
    parser.add_argument(
        "--warmup", type=float, default=0.25, help="share of the samples before the slope counts"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the report here too")
    args = parser.parse_args()
    if args.requests is None and args.duration is None:
        args.requests = 1_000_000

    with tempfile.TemporaryDirectory(prefix="relay-soak-") as tmp:
        tmpdir = Path(tmp)
        upstream_port, relay_port = free_port(), free_port()
        upstream = f"http://127.0.0.1:{upstream_port}"
        relay = f"http://127.0.0.1:{relay_port}"
        fake_env = {**os.environ, "PYTHONPATH": str(REPO / "tests" / "python")}
        fake_args = [sys.executable, "-m", "fake_upstream", "--port", str(upstream_port)]
        fake_args += ["--key", UPSTREAM_KEY, "--no-record"]
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DATABASE_", "REDIS_", "OPENAI_", "ANTHROPIC_", "GATEWAY_"))
        }
        env.update(
            DATA_DIR=str(tmpdir / "data"),
            LOG_LEVEL="WARNING",
            OPENAI_BASE_URL=upstream + "/v1",
            OPENAI_API_KEY=UPSTREAM_KEY,
            ANTHROPIC_BASE_URL=upstream,
            ANTHROPIC_API_KEY=UPSTREAM_KEY,
            RATE_LIMIT_REQUESTS="1000000",
            MAX_SESSIONS_PER_USER="100000",
            GATEWAY_RPM="0",
            # The response cache on, with a small memory bound so that the run reaches it early:
            # a full cache must stay flat, not grow.
            GATEWAY_CACHE=json.dumps({"enabled": True, "memory_max_bytes": args.cache_bytes}),
            CONTEXT_MEMORY_MAX_BYTES=str(args.context_memory_bytes),
        )
        created = subprocess.run(
            [str(RELAY), "keys", "create", "--role", "admin", "--name", "soak", "--json"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        key = json.loads(created.stdout)["key"]
        with (
            started(fake_args, fake_env, upstream, "/_fake/requests", tmpdir / "fake.log"),
            started(
                [str(RELAY), "serve", "--port", str(relay_port)],
                env,
                relay,
                "/health",
                tmpdir / "relay.log",
            ) as server,
        ):
            results, samples = asyncio.run(
                drive(
                    relay,
                    key,
                    server.pid,
                    rate=args.rate,
                    total=args.requests,
                    duration=args.duration,
                    sample_seconds=args.sample_seconds,
                    max_in_flight=args.max_in_flight,
                    seed=args.seed,
                    without=frozenset(k for k in args.without.split(",") if k),
                    session_messages=args.session_messages,
                    context_words=args.context_words,
                )
            )
        out = report(results, samples, args.rate, args.warmup)
    print(
        f"{out['requests']} requests in {out['seconds']} s at {args.rate:g}/s target, "
        f"{out['late']} late, {out['errors']} errors"
    )
    print(f"{'kind':<16} {'requests':>9} {'errors':>7} {'p50 ms':>8} {'p99 ms':>8}")
    for kind, k in out["kinds"].items():
        print(f"{kind:<16} {k['requests']:>9} {k['errors']:>7} {k['p50_ms']:>8} {k['p99_ms']:>8}")
    print(
        f"RSS {out['rss_start_mib']} -> {out['rss_end_mib']} MiB after warm-up; slope "
        f"{out['rss_slope_mib_per_minute']} MiB/min, "
        f"{out['rss_slope_mib_per_100k_requests']} MiB per 100k requests"
    )
    for line in out["first_errors"]:
        print("error:", line)
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
