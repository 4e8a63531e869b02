"""Load on the HTTP service: ``relay serve`` in its own process on loopback, driven by httpx
(async) at a fixed concurrency.

    python benchmarks/bench_service.py [--concurrency 16] [--requests 2000] [--sessions 32]
        [--database-url postgresql+asyncpg://...] [--redis-url redis://127.0.0.1:6379/0]

Phases, each ``--requests`` requests by ``--concurrency`` workers on one keep-alive client:

* ``GET /health`` — the floor (framework, middleware, one database ping), for reference;
* ``POST /api/v1/context/messages`` — spread over ``--sessions`` sessions (auth, rate limit,
  token counting in two encodings, compression, ordered append, session totals);
* ``GET /api/v1/context/{id}`` built — a different ``query`` each call, so the window cache
  never answers (selection over the whole session);
* ``GET /api/v1/context/{id}`` cached — the same call again, from the window cache.

With ``--appends N`` (and ``--only-appends`` to skip the phases above), two more phases measure
append throughput: N concurrent appends (``--append-concurrency``, default N) to one hot session,
then N spread over ``--spread-sessions`` sessions. Their load comes from ``--clients`` processes
each speaking plain HTTP/1.1 over asyncio streams (a few microseconds of CPU per request, so the
load generator leaves the cores to the server); ``--workers`` runs ``relay serve --workers``.

Prints requests/s and p50/p99 latency of each, and each context phase's throughput relative to
the health floor; also the server process's CPU time per request (user + system, from /proc),
which other load on a shared machine disturbs much less than throughput does.
Defaults: SQLite in a temporary DATA_DIR, in-process cache and limits.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

RELAY = Path(sys.executable).parent / "relay"
SECRET = "bench-secret-key-0123456789abcdef-0123456789"
WORDS = [
    "budget",
    "window",
    "token",
    "policy",
    "cache",
    "session",
    "drift",
    "summary",
    "tool",
    "call",
    "weather",
    "travel",
    "city",
    "rain",
    "compile",
    "function",
    "error",
    "retry",
    "latency",
    "stream",
    "message",
    "assistant",
    "question",
    "answer",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(args: argparse.Namespace, data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        DATA_DIR=str(data_dir),
        SECRET_KEY=SECRET,
        LOG_LEVEL="WARNING",
        # every request of every phase
        RATE_LIMIT_REQUESTS=str(5 * args.requests + 3 * args.appends + 1000),
    )
    if args.database_url:
        env["DATABASE_URL"] = args.database_url
        env["DATABASE_SCHEMA"] = f"relay_bench_{os.getpid()}"
    if args.redis_url:
        env["REDIS_URL"] = args.redis_url
        env["REDIS_KEY_PREFIX"] = f"relay-bench-{os.getpid()}:"
    port = free_port()
    workers = str(args.workers)
    process = subprocess.Popen(
        [str(RELAY), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", workers],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(url + "/health", timeout=2)
            return process, url
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("relay serve did not start") from None
            time.sleep(0.1)


def admin_headers(data_dir: Path) -> dict[str, str]:
    from pydantic import SecretStr

    from relay_context.config.settings import Environment, Settings
    from relay_context.security.auth import AuthService, UserRole

    settings = Settings(
        environment=Environment.TESTING, secret_key=SecretStr(SECRET), data_dir=data_dir
    )
    token = AuthService(settings).create_access_token("bench", UserRole.ADMIN)
    return {"Authorization": f"Bearer {token}"}


def percentile(sorted_values: list[float], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def _process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.extend(int(c) for c in (task / "children").read_text().split())
    return found


def server_cpu_seconds(pid: int) -> float:
    """CPU time (user + system, all threads) the server process and its live children (the
    ``--workers`` processes) have used; NaN off Linux."""
    try:
        total = _process_cpu_seconds(pid)
        for child in _children(pid):
            with contextlib.suppress(OSError):
                total += _process_cpu_seconds(child)
    except OSError:
        return float("nan")
    return total


async def run_phase(
    client: httpx.AsyncClient,
    make_request: Callable[[int], httpx.Request],
    requests: int,
    concurrency: int,
    expected: int,
    server_pid: int,
) -> tuple[float, float, float, float]:
    """(requests/s, p50 ms, p99 ms, server CPU ms per request)."""
    cpu_before = server_cpu_seconds(server_pid)
    numbers = itertools.count()
    latencies: list[float] = []

    async def worker() -> None:
        while (i := next(numbers)) < requests:
            request = make_request(i)
            started = time.perf_counter()
            response = await client.send(request)
            latencies.append(time.perf_counter() - started)
            if response.status_code != expected:
                raise SystemExit(f"{request.url}: {response.status_code} {response.text[:300]}")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    cpu_ms = (server_cpu_seconds(server_pid) - cpu_before) * 1e3 / requests
    latencies.sort()
    p50, p99 = percentile(latencies, 0.5) * 1e3, percentile(latencies, 0.99) * 1e3
    return requests / elapsed, p50, p99, cpu_ms


def message_text(i: int) -> str:
    words = [WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(30 + i % 20)]
    return f"Message {i}: " + " ".join(words) + "."


async def bench(
    args: argparse.Namespace, url: str, headers: dict[str, str], server_pid: int
) -> None:
    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    async with httpx.AsyncClient(
        base_url=url, headers=headers, timeout=60, limits=limits
    ) as client:
        sessions = [f"bench-{s}" for s in range(args.sessions)]
        rows: list[tuple[str, tuple[float, float, float, float]]] = []

        def health(i: int) -> httpx.Request:
            return client.build_request("GET", "/health")

        def post(i: int) -> httpx.Request:
            body = {
                "session_id": sessions[i % len(sessions)],
                "role": "user" if i % 2 == 0 else "assistant",
                "content": message_text(i),
            }
            return client.build_request("POST", "/api/v1/context/messages", json=body)

        def built(i: int) -> httpx.Request:
            params = {"budget": str(args.budget), "query": f"{WORDS[i % len(WORDS)]} {i}"}
            return client.build_request(
                "GET", f"/api/v1/context/{sessions[i % len(sessions)]}", params=params
            )

        def cached(i: int) -> httpx.Request:
            return client.build_request(
                "GET",
                f"/api/v1/context/{sessions[i % len(sessions)]}",
                params={"budget": str(args.budget)},
            )

        # warm-up
        await run_phase(client, health, min(200, args.requests), args.concurrency, 200, server_pid)
        rows.append(
            (
                "GET /health (floor)",
                await run_phase(client, health, args.requests, args.concurrency, 200, server_pid),
            )
        )
        rows.append(
            (
                "POST /messages",
                await run_phase(client, post, args.requests, args.concurrency, 201, server_pid),
            )
        )
        rows.append(
            (
                "GET /context built",
                await run_phase(client, built, args.requests, args.concurrency, 200, server_pid),
            )
        )
        # fill the cache
        await run_phase(client, cached, len(sessions), args.concurrency, 200, server_pid)
        rows.append(
            (
                "GET /context cached",
                await run_phase(client, cached, args.requests, args.concurrency, 200, server_pid),
            )
        )

    backend = ("postgresql" if args.database_url else "sqlite") + (
        " + redis" if args.redis_url else ""
    )
    per_session = args.requests // args.sessions
    print(
        f"relay serve on {backend}; concurrency {args.concurrency}; {args.requests} requests per "
        f"phase; {args.sessions} sessions of ~{per_session} messages; budget {args.budget}"
    )
    print(
        f"{'phase':<22} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9} {'vs floor':>9}"
        f" {'cpu ms/req':>11} {'cpu vs floor':>13}"
    )
    floor, floor_cpu = rows[0][1][0], rows[0][1][3]
    for name, (rps, p50, p99, cpu) in rows:
        print(
            f"{name:<22} {rps:9.0f} {p50:9.2f} {p99:9.2f} {rps / floor:8.2f}x"
            f" {cpu:11.2f} {cpu / floor_cpu:12.2f}x"
        )


# --- append phases: a light load generator in several processes -----------------------------
async def _raw_client(
    host: str,
    port: int,
    headers: dict[str, str],
    bodies: list[bytes],
    concurrency: int,
    go: Any,
    ready: Any,
) -> tuple[list[float], float, float]:
    """Send each body as ``POST /api/v1/context/messages`` over ``concurrency`` keep-alive
    connections; (latencies in s, first start, last end) in ``time.time()`` seconds."""
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    queue = list(reversed(bodies))
    latencies: list[float] = []
    connections = [await asyncio.open_connection(host, port) for _ in range(concurrency)]
    # Connected; the start comes at once (the server closes connections idle before their
    # first request after HEADER_READ_TIMEOUT_SECONDS).
    ready.put(None)
    await asyncio.to_thread(go.wait)
    started = time.time()

    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while queue:
            body = queue.pop()
            request = (
                f"POST /api/v1/context/messages HTTP/1.1\r\nHost: {host}\r\n{head}"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            t0 = time.perf_counter()
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            answer = await reader.readexactly(length)
            latencies.append(time.perf_counter() - t0)
            if b" 201 " not in status_line:
                raise SystemExit(f"append: {status_line!r} {answer[:300]!r}")
        writer.close()

    await asyncio.gather(*(worker(r, w) for r, w in connections))
    return latencies, started, time.time()


def _client_process(
    host: str,
    port: int,
    headers: dict[str, str],
    bodies: list[bytes],
    concurrency: int,
    go: Any,
    ready: Any,
    results: Any,
) -> None:
    cpu = time.process_time()
    latencies, started, ended = asyncio.run(
        _raw_client(host, port, headers, bodies, concurrency, go, ready)
    )
    results.put((latencies, started, ended, time.process_time() - cpu))


def run_append_phase(
    url: str,
    headers: dict[str, str],
    session_of: Callable[[int], str],
    appends: int,
    concurrency: int,
    clients: int,
    server_pid: int,
) -> tuple[float, float, float, float, float]:
    """(appends/s, p50 ms, p99 ms, server CPU ms per append, client CPU ms per append)."""
    host, port = url.removeprefix("http://").split(":")
    bodies = [
        json.dumps(
            {
                "session_id": session_of(i),
                "role": "user" if i % 2 == 0 else "assistant",
                "content": message_text(i),
            }
        ).encode()
        for i in range(appends)
    ]
    spawn = multiprocessing.get_context("spawn")
    go, ready, results = spawn.Event(), spawn.Queue(), spawn.Queue()
    share = [bodies[k::clients] for k in range(clients)]
    processes = [
        spawn.Process(
            target=_client_process,
            args=(
                *(host, int(port), headers, share[k], max(1, concurrency // clients)),
                *(go, ready, results),
            ),
        )
        for k in range(clients)
    ]
    for process in processes:
        process.start()
    for _ in processes:  # every connection open before the start
        ready.get(timeout=120)
    cpu_before = server_cpu_seconds(server_pid)
    go.set()
    outcomes = [results.get(timeout=600) for _ in processes]
    cpu_ms = (server_cpu_seconds(server_pid) - cpu_before) * 1e3 / appends
    for process in processes:
        process.join(60)
        if process.exitcode != 0:
            raise SystemExit(f"a load client ended with {process.exitcode}")
    latencies = sorted(x for o in outcomes for x in o[0])
    elapsed = max(o[2] for o in outcomes) - min(o[1] for o in outcomes)
    client_ms = sum(o[3] for o in outcomes) * 1e3 / appends
    p50, p99 = percentile(latencies, 0.5) * 1e3, percentile(latencies, 0.99) * 1e3
    return appends / elapsed, p50, p99, cpu_ms, client_ms


def bench_appends(
    args: argparse.Namespace, url: str, headers: dict[str, str], server_pid: int
) -> None:
    concurrency = args.append_concurrency or args.appends
    run = f"{os.getpid()}"
    phases = [
        ("hot session", lambda i: f"hot-{run}"),
        (f"{args.spread_sessions} sessions", lambda i: f"spread-{run}-{i % args.spread_sessions}"),
    ]
    # warm-up: the sessions exist (the phases measure appends, not creations), the server's
    # code paths are loaded
    run_append_phase(url, headers, lambda i: f"hot-{run}", 50, 10, 1, server_pid)
    run_append_phase(url, headers, phases[1][1], args.spread_sessions, 10, 1, server_pid)
    rows = []
    for name, session_of in phases:
        figures = run_append_phase(
            url, headers, session_of, args.appends, concurrency, args.clients, server_pid
        )
        rows.append((name, figures))
    stored = check_appends_stored(
        url,
        headers,
        {f"hot-{run}": 50 + args.appends}
        | {
            f"spread-{run}-{k}": 1 + len(range(k, args.appends, args.spread_sessions))
            for k in range(args.spread_sessions)
        },
    )
    backend = ("postgresql" if args.database_url else "sqlite") + (
        " + redis" if args.redis_url else ""
    )
    print(
        f"appends on {backend}; workers {args.workers}; {args.appends} appends per phase, "
        f"{concurrency} concurrent, from {args.clients} client processes"
    )
    print(
        f"{'phase':<22} {'appends/s':>10} {'p50 ms':>9} {'p99 ms':>9} {'cpu ms/append':>14}"
        f" {'client cpu ms':>14}"
    )
    for name, (rps, p50, p99, cpu, client) in rows:
        print(f"{name:<22} {rps:10.0f} {p50:9.1f} {p99:9.1f} {cpu:14.2f} {client:14.2f}")
    print(
        f"every acknowledged append stored: {stored} messages"
        f" in {args.spread_sessions + 1} sessions"
    )


def check_appends_stored(url: str, headers: dict[str, str], expected: dict[str, int]) -> int:
    """Each session's stored message count equals the appends it acknowledged (201), or the
    benchmark fails: throughput that loses acknowledged writes is not throughput."""
    with httpx.Client(base_url=url, headers=headers, timeout=60) as client:
        for session_id, count in expected.items():
            answer = client.get(f"/api/v1/context/{session_id}/stats")
            answer.raise_for_status()
            if (stored := answer.json()["message_count"]) != count:
                raise SystemExit(f"{session_id}: {count} appends acknowledged, {stored} stored")
    return sum(expected.values())


def drop_bench_state(args: argparse.Namespace) -> None:
    """The PostgreSQL schema and Redis keys this run made."""
    if args.database_url:
        import asyncpg

        async def drop() -> None:
            dsn = args.database_url.replace("postgresql+asyncpg://", "postgresql://")
            connection = await asyncpg.connect(dsn)
            try:
                await connection.execute(
                    f'DROP SCHEMA IF EXISTS "relay_bench_{os.getpid()}" CASCADE'
                )
            finally:
                await connection.close()

        asyncio.run(drop())
    if args.redis_url:
        import redis

        client = redis.Redis.from_url(args.redis_url)
        try:
            keys = list(client.scan_iter(match=f"relay-bench-{os.getpid()}:*", count=1000))
            if keys:
                client.delete(*keys)
        finally:
            client.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--sessions", type=int, default=32)
    parser.add_argument("--budget", type=int, default=2000)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--workers", type=int, default=1, help="relay serve --workers")
    parser.add_argument("--appends", type=int, default=0, help="appends per append phase")
    parser.add_argument("--append-concurrency", type=int, default=0, help="default: --appends")
    parser.add_argument("--spread-sessions", type=int, default=100)
    parser.add_argument("--clients", type=int, default=2, help="load processes of the appends")
    parser.add_argument("--only-appends", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="relay-bench-") as tmp:
        data_dir = Path(tmp)
        process, url = start_server(args, data_dir)
        try:
            headers = admin_headers(data_dir)
            if not args.only_appends:
                asyncio.run(bench(args, url, headers, process.pid))
            if args.appends:
                bench_appends(args, url, headers, process.pid)
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            drop_bench_state(args)


if __name__ == "__main__":
    main()
