"""Exact-cache hit latency of the gateway, per store: in process, SQLite (sealed), Redis.

    python benchmarks/bench_gateway_cache.py [--quick] [--rate 1000] [--seconds 5]

For each store, starts the project's fake upstream and ``relay serve`` (keys auth, the fake as
OPENAI_BASE_URL, ``GATEWAY_CACHE`` turning the cache on with that store; Redis is a throwaway
``redis-server`` on a free port), fills the cache with one answer per distinct prompt, then:

* one request at a time: p50 / p99 latency of a hit (to the last byte), non-streamed and
  streamed, and Relay's own ``x-relay-overhead-ms`` for them;
* an open-loop load of ``--rate`` hits per second for ``--seconds`` (requests sent on a fixed
  schedule, whatever the answers' speed): achieved rate, p50 / p99 latency, errors.

The load generator is Python (httpx) on the same machine as the server, so its own cost is
part of every figure; the server-side ``x-relay-overhead-ms`` is printed beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
RELAY = Path(sys.executable).parent / "relay"
PROMPTS = 64


def body(n: int, stream: bool = False) -> bytes:
    return json.dumps(
        {
            "model": "gpt-4o-mini",
            "stream": stream,
            "messages": [
                {"role": "system", "content": "You are a helpful coding assistant."},
                {"role": "user", "content": f"Explain context windows, variant {n}. fake:words=60"},
            ],
        }
    ).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, path: str) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            httpx.get(url + path, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


@contextmanager
def process(args: list[str], env: dict[str, str], url: str | None, probe: str) -> Iterator[None]:
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        try:
            if url is not None:
                try:
                    wait_up(url, probe)
                except RuntimeError:
                    log.seek(0)
                    raise RuntimeError(f"{args[0]} did not start: {log.read()[-2000:]!r}") from None
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextmanager
def redis_server() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed")
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    with process(args, dict(os.environ), None, ""):
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def sequential(
    client: httpx.Client, url: str, headers: dict[str, str], n: int, stream: bool
) -> tuple[list[float], list[float]]:
    latencies: list[float] = []
    overheads: list[float] = []
    for i in range(n):
        content = body(i % PROMPTS, stream)
        started = time.perf_counter()
        if stream:
            with client.stream("POST", url, content=content, headers=headers) as response:
                for _ in response.iter_raw():
                    pass
        else:
            response = client.post(url, content=content, headers=headers)
        latencies.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200 or response.headers.get("x-relay-cache") != "hit":
            raise RuntimeError(f"not a hit: {response.status_code} {response.headers}")
        overheads.append(float(response.headers["x-relay-overhead-ms"]))
    return latencies, overheads


async def open_loop(
    url: str, headers: dict[str, str], rate: float, seconds: float
) -> dict[str, float]:
    """Requests sent on a fixed schedule of ``rate`` per second."""
    total = int(rate * seconds)
    latencies: list[float] = []
    overheads: list[float] = []
    errors = 0
    bodies = [body(n) for n in range(PROMPTS)]
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=256)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def one(n: int) -> None:
            nonlocal errors
            started = time.perf_counter()
            try:
                response = await client.post(url, content=bodies[n % PROMPTS], headers=headers)
            except httpx.HTTPError:
                errors += 1
                return
            latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200 or response.headers.get("x-relay-cache") != "hit":
                errors += 1
            else:
                overheads.append(float(response.headers["x-relay-overhead-ms"]))

        tasks: list[asyncio.Task[None]] = []
        start = time.perf_counter()
        for n in range(total):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(n)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    return {
        "rate": total / elapsed,
        "p50": percentile(latencies, 0.5),
        "p99": percentile(latencies, 0.99),
        "overhead_p50": percentile(overheads, 0.5),
        "overhead_p99": percentile(overheads, 0.99),
        "errors": errors,
    }


def run_store(store: str, args: argparse.Namespace) -> dict[str, Any]:
    fake_port, relay_port = free_port(), free_port()
    fake_url = f"http://127.0.0.1:{fake_port}"
    relay_url = f"http://127.0.0.1:{relay_port}"
    with tempfile.TemporaryDirectory() as data, (
        redis_server() if store == "redis" else nullcontext(None)
    ) as redis_url:
        cache: dict[str, Any] = {"enabled": True, "ttl_seconds": 3600}
        if store == "sqlite":
            cache |= {
                "persist": True,
                "path": str(Path(data) / "cache.sqlite3"),
                "encryption_keys": [base64.b64encode(os.urandom(32)).decode()],
            }
        base_env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("OPENAI", "ANTHROPIC", "REDIS", "GATEWAY"))
        }
        relay_env = {
            **base_env,
            "DATA_DIR": data,
            "SECRET_KEY": "bench-secret-0123456789abcdef-0123456789abcdef",
            "LOG_LEVEL": "WARNING",
            "RATE_LIMIT_REQUESTS": "10000000",
            "OPENAI_BASE_URL": fake_url + "/v1",
            "OPENAI_API_KEY": "sk-fake",
            "GATEWAY_CACHE": json.dumps(cache),
        }
        if redis_url:
            relay_env["REDIS_URL"] = redis_url
        created = subprocess.run(
            [str(RELAY), "keys", "create", "--role", "user", "--json"],
            env=relay_env,
            capture_output=True,
            text=True,
            check=True,
        )
        key = json.loads(created.stdout)["key"]
        fake_env = {**base_env, "PYTHONPATH": str(REPO / "tests" / "python")}
        fake_cmd = [sys.executable, "-m", "fake_upstream", "--port", str(fake_port), "--no-record"]
        relay_cmd = [str(RELAY), "serve", "--port", str(relay_port)]
        with (
            process(fake_cmd, fake_env, fake_url, "/v1/models"),
            process(relay_cmd, relay_env, relay_url, "/health"),
        ):
            url = relay_url + "/v1/chat/completions"
            headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
            print(f"  [{store}] servers up; filling", file=sys.stderr, flush=True)
            with httpx.Client(timeout=60) as client:
                for stream in (False, True):  # fill: one miss per prompt, then wait for it
                    for n in range(PROMPTS):
                        client.post(url, content=body(n, stream), headers=headers)
                time.sleep(0.5)
                sequential(client, url, headers, 100, False)  # warm up
                print(f"  [{store}] measuring", file=sys.stderr, flush=True)
                out: dict[str, Any] = {}
                for stream in (False, True):
                    lat, over = sequential(client, url, headers, args.requests, stream)
                    out["stream" if stream else "whole"] = (lat, over)
            out["load"] = asyncio.run(open_loop(url, headers, args.rate, args.seconds))
            return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rate", type=float, default=1000.0, help="hits per second (open loop)")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--requests", type=int, default=None, help="sequential hits per case")
    parser.add_argument("--stores", default="memory,sqlite,redis")
    args = parser.parse_args()
    args.seconds = args.seconds or (2.0 if args.quick else 5.0)
    args.requests = args.requests or (300 if args.quick else 1000)
    print(f"exact-cache hits, {args.requests} one at a time; then {args.rate:.0f}/s open loop")
    print(f"for {args.seconds:.0f} s (ms; client latency to the last byte | x-relay-overhead-ms)")
    for store in args.stores.split(","):
        result = run_store(store, args)
        for mode in ("whole", "stream"):
            lat, over = result[mode]
            print(
                f"  {store:7s} {mode:6s} one at a time: p50 {percentile(lat, 0.5):6.3f}"
                f" p99 {percentile(lat, 0.99):6.3f} | overhead p50 {percentile(over, 0.5):6.3f}"
                f" p99 {percentile(over, 0.99):6.3f}"
            )
        load = result["load"]
        print(
            f"  {store:7s} whole  at {load['rate']:6.0f}/s:   p50 {load['p50']:6.3f}"
            f" p99 {load['p99']:6.3f} | overhead p50 {load['overhead_p50']:6.3f}"
            f" p99 {load['overhead_p99']:6.3f} | errors {load['errors']}"
        )


if __name__ == "__main__":
    main()
