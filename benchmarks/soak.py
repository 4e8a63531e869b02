"""Soak: ``relay serve`` under mixed traffic at a fixed rate, its memory sampled as it goes.

    python benchmarks/soak.py [--requests N | --duration S] [--rate R] [--clients N]
                              [--sample-seconds S] [--json PATH]

Starts the project's fake upstream and ``relay serve`` (embedded defaults: SQLite in a temporary
``DATA_DIR``) as processes of their own, then sends requests open-loop at ``--rate`` units of
traffic per second (a unit is one request, or a burst of them; a request that cannot start
because ``--max-in-flight`` are already out counts as ``late``), from ``--clients`` processes
of its own on keep-alive connections (``soak_client.py``):

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
import multiprocessing
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
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httptools
import httpx

from soak_client import ConnectionClosedError, HttpPool

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
#: Seconds a request may take, streamed ones included, before it counts as an error.
REQUEST_TIMEOUT = 60.0


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

    def merge(self, other: Results) -> None:
        for kind, values in other.latencies.items():
            self.latencies[kind].extend(values)
        for kind, n in other.errors.items():
            self.errors[kind] += n
        self.first_errors.extend(other.first_errors[: 10 - len(self.first_errors)])
        self.late += other.late
        self.sent += other.sent
        self.retried += other.retried

    def error(self, kind: str, what: str) -> None:
        self.errors[kind] += 1
        if len(self.first_errors) < 10:
            self.first_errors.append(f"{kind}: {what}"[:300])


class Traffic:
    def __init__(
        self,
        relay: str,
        key: str,
        seed: int,
        session_messages: int = 0,
        context_words: int = 30,
        *,
        client: int = 0,
    ) -> None:
        self.relay = relay
        #: Clients' texts and sessions are their own: two clients never send the same request.
        self.client = client
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
        return f"soak-{self.client}-{slot}-{self.generation[slot]}"

    def _text(self, n: int) -> str:
        return " ".join(self.rng.choice(WORDS) for _ in range(n))

    def _unique(self) -> str:
        self.counter += 1
        return f"#{self.client}.{self.counter} {self._text(10)}"

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
    pool: HttpPool, results: Results, kind: str, spec: tuple[str, str, Any, bool]
) -> None:
    method, path, body, _ = spec
    request = pool.encode(method, path, body)
    started_at = time.perf_counter()
    for attempt in range(2):
        try:
            status, tail = await pool.request(request, REQUEST_TIMEOUT)
        except ConnectionClosedError as exc:
            # A kept-alive connection the server closed as the request went out: the official
            # SDKs retry these (max_retries), and so does this client, once, counting it.
            if attempt == 0 and not exc.answered:
                results.retried += 1
                continue
            results.error(kind, repr(exc))
            return
        except (OSError, TimeoutError, httptools.HttpParserError) as exc:
            results.error(kind, f"{type(exc).__name__}: {exc!r}")
            return
        # A window of a session nobody appended to yet is a 404, not a server error.
        if not (status in (200, 201) or (kind == "context_get" and status == 404)):
            results.error(kind, f"{status} {tail[-200:]!r}")
            return
        if b"event: error" in tail:
            results.error(kind, f"stream ended with an error event: {tail!r}")
            return
        break
    results.latencies[kind].append((time.perf_counter() - started_at) * 1000)


async def drive(
    relay: str,
    key: str,
    progress: Any,
    *,
    client: int = 0,
    rate: float,
    total: int | None,
    duration: float | None,
    max_in_flight: int,
    seed: int,
    without: frozenset[str] = frozenset(),
    session_messages: int = 0,
    context_words: int = 30,
) -> Results:
    """One client's traffic at ``rate`` units/s until it has sent ``total`` requests or
    ``duration`` is over; ``progress[client]`` follows its count of requests sent."""
    results = Results()
    traffic = Traffic(relay, key, seed, session_messages, context_words, client=client)
    kinds = [k for k, w in MIX.items() for _ in range(w) if k not in without]
    random.Random(seed).shuffle(kinds)
    host, _, port = relay.removeprefix("http://").partition(":")
    pool = HttpPool(host, int(port), {"authorization": f"Bearer {key}", "x-api-key": key})
    in_flight: set[asyncio.Task[None]] = set()
    slots = asyncio.Semaphore(max_in_flight)

    async def guarded(kind: str, spec: tuple[str, str, Any, bool]) -> None:
        try:
            await one(pool, results, kind, spec)
        finally:
            slots.release()

    begin = time.monotonic()
    i = 0
    while True:
        now = time.monotonic()
        progress[client] = results.sent
        if (total is not None and results.sent >= total) or (
            duration is not None and now - begin >= duration
        ):
            break
        due = begin + i / rate
        if due > now:
            await asyncio.sleep(due - now)
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
        await asyncio.wait(in_flight, timeout=2 * REQUEST_TIMEOUT)
    progress[client] = results.sent
    pool.close()
    return results


def run_clients(
    server_pid: int, clients: int, sample_seconds: float, **kwargs: Any
) -> tuple[Results, list[tuple[float, int, float]]]:
    """``clients`` processes of :func:`drive`, each with its share of the rate and requests,
    while this one reads the server's RSS every ``sample_seconds``."""
    spawn = multiprocessing.get_context("spawn")
    progress = spawn.Array("q", clients, lock=False)
    total, rate = kwargs.pop("total"), kwargs.pop("rate")
    seed = kwargs.pop("seed")
    samples: list[tuple[float, int, float]] = []  # (seconds, requests sent, RSS MiB)
    with ProcessPoolExecutor(
        clients, mp_context=spawn, initializer=_share, initargs=(progress,)
    ) as pool:
        futures = [
            pool.submit(
                _client_shared,
                dict(
                    kwargs,
                    client=c,
                    rate=rate / clients,
                    total=None if total is None else -(-total // clients),
                    seed=seed + 1000 * c,
                ),
            )
            for c in range(clients)
        ]
        begin = time.monotonic()
        next_sample = begin
        while not all(f.done() for f in futures):
            now = time.monotonic()
            if now >= next_sample:
                samples.append((now - begin, sum(progress), rss_mib(server_pid)))
                next_sample += sample_seconds
            time.sleep(max(0.0, min(0.5, next_sample - time.monotonic())))
        results = Results()
        for f in futures:
            results.merge(f.result())
    samples.append((time.monotonic() - begin, results.sent, rss_mib(server_pid)))
    return results, samples


_progress: Any = None


def _share(progress: Any) -> None:
    global _progress
    _progress = progress


def _client_shared(kwargs: dict[str, Any]) -> Results:
    return asyncio.run(drive(progress=_progress, **kwargs))


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
    parser.add_argument("--rate", type=float, default=200.0, help="units of traffic per second")
    parser.add_argument("--sample-seconds", type=float, default=10.0)
    parser.add_argument(
        "--max-in-flight", type=int, default=128, help="requests out at once, per client"
    )
    parser.add_argument(
        "--clients",
        type=int,
        default=1,
        help="load-generating processes, each sending its share of --rate and --requests",
    )
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
            results, samples = run_clients(
                server.pid,
                args.clients,
                args.sample_seconds,
                relay=relay,
                key=key,
                rate=args.rate,
                total=args.requests,
                duration=args.duration,
                max_in_flight=args.max_in_flight,
                seed=args.seed,
                without=frozenset(k for k in args.without.split(",") if k),
                session_messages=args.session_messages,
                context_words=args.context_words,
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
