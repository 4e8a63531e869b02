"""The gateway's added latency: direct to the fake upstream vs through ``relay serve``.

    python benchmarks/bench_gateway.py [--quick] [--requests N]

Starts the project's fake upstream (``tests/python/fake_upstream``) and ``relay serve`` (keys
auth with a key from ``relay keys create``, the fake as OPENAI_BASE_URL) as separate processes,
then measures, for the same request body sent directly and through Relay:

* one request at a time, non-streamed and streamed (to the last byte): p50 / p99 latency and the
  added latency (Relay minus direct), plus Relay's own ``x-relay-overhead-ms``;
* concurrency 16 and 64 (non-streamed): requests/s, p99 and errors.

LiteLLM's proxy is not run here (it needs its own virtual environment); the issue's figures for
it on this machine are ~16 ms added per non-streamed request, ~34 ms per streamed one, and a
ceiling near 60 requests/s at concurrency 16.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
RELAY = Path(sys.executable).parent / "relay"
BODY = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are a helpful coding assistant."},
        {"role": "user", "content": "Explain what a context window is, briefly."},
    ],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_up(url: str, path: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(url + path, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


@contextmanager
def process(args: list[str], env: dict[str, str], url: str, probe: str) -> Iterator[None]:
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        try:
            try:
                wait_up(url, probe)
            except RuntimeError:
                log.seek(0)
                tail = log.read().decode()[-2000:]
                raise RuntimeError(f"{args[0]} did not start: {tail}") from None
            yield
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def sequential(
    client: httpx.Client, url: str, headers: dict[str, str], n: int, stream: bool
) -> tuple[list[float], list[float]]:
    """Latencies (ms) and, through Relay, its reported overheads (ms)."""
    body = json.dumps({**BODY, "stream": stream}).encode()
    latencies: list[float] = []
    overheads: list[float] = []
    for _ in range(n):
        started = time.perf_counter()
        if stream:
            with client.stream("POST", url, content=body, headers=headers) as response:
                for _ in response.iter_raw():
                    pass
        else:
            response = client.post(url, content=body, headers=headers)
        latencies.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
        if "x-relay-overhead-ms" in response.headers:
            overheads.append(float(response.headers["x-relay-overhead-ms"]))
    return latencies, overheads


async def concurrent(
    url: str, headers: dict[str, str], concurrency: int, total: int
) -> tuple[float, float, int]:
    """(requests/s, p99 ms, errors)."""
    body = json.dumps(BODY).encode()
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        queue = list(range(total))

        async def worker() -> None:
            nonlocal errors
            while queue:
                queue.pop()
                started = time.perf_counter()
                try:
                    response = await client.post(url, content=body, headers=headers)
                    if response.status_code != 200:
                        errors += 1
                except httpx.HTTPError:
                    errors += 1
                latencies.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return total / elapsed, percentile(latencies, 0.99), errors


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer requests")
    parser.add_argument("--requests", type=int, default=None, help="sequential requests per case")
    args = parser.parse_args()
    n = args.requests or (200 if args.quick else 1000)
    total = 500 if args.quick else 3000
    fake_port, relay_port = free_port(), free_port()
    fake_url = f"http://127.0.0.1:{fake_port}"
    relay_url = f"http://127.0.0.1:{relay_port}"
    with tempfile.TemporaryDirectory() as data:
        base_env = {
            k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "ANTHROPIC"))
        }
        fake_env = {**base_env, "PYTHONPATH": str(REPO / "tests" / "python")}
        relay_env = {
            **base_env,
            "DATA_DIR": data,
            "SECRET_KEY": "bench-secret-0123456789abcdef-0123456789abcdef",
            "LOG_LEVEL": "WARNING",
            "RATE_LIMIT_REQUESTS": "10000000",
            "OPENAI_BASE_URL": fake_url + "/v1",
            "OPENAI_API_KEY": "sk-fake",
        }
        created = subprocess.run(
            [str(RELAY), "keys", "create", "--role", "user", "--json"],
            env=relay_env,
            capture_output=True,
            text=True,
            check=True,
        )
        key = json.loads(created.stdout)["key"]
        fake_cmd = [sys.executable, "-m", "fake_upstream", "--port", str(fake_port), "--no-record"]
        relay_cmd = [str(RELAY), "serve", "--port", str(relay_port)]
        with (
            process(fake_cmd, fake_env, fake_url, "/v1/models"),
            process(relay_cmd, relay_env, relay_url, "/health"),
        ):
            direct = (fake_url + "/v1/chat/completions", {"authorization": "Bearer sk-fake"})
            relay = (relay_url + "/v1/chat/completions", {"authorization": f"Bearer {key}"})
            with httpx.Client(timeout=60) as client:
                for url, headers in (direct, relay):  # warm up connections and caches
                    sequential(client, url, headers, 50, False)
                    sequential(client, url, headers, 50, True)
                print(f"one at a time, {n} requests each (ms)")
                for stream in (False, True):
                    d, _ = sequential(client, *direct, n, stream)
                    r, overhead = sequential(client, *relay, n, stream)
                    label = "streamed" if stream else "non-streamed"
                    print(
                        f"  {label:13s} direct p50 {percentile(d, 0.5):6.3f}"
                        f" p99 {percentile(d, 0.99):6.3f}"
                        f" | relay p50 {percentile(r, 0.5):6.3f} p99 {percentile(r, 0.99):6.3f}"
                        f" | added p50 {percentile(r, 0.5) - percentile(d, 0.5):6.3f}"
                        f" p99 {percentile(r, 0.99) - percentile(d, 0.99):6.3f}"
                        f" | x-relay-overhead-ms median {statistics.median(overhead):.3f}"
                    )
            for concurrency in (16, 64):
                for name, (url, headers) in (("direct", direct), ("relay", relay)):
                    rps, p99, errors = asyncio.run(concurrent(url, headers, concurrency, total))
                    print(
                        f"concurrency {concurrency:2d} {name:6s}: {rps:8.0f} req/s,"
                        f" p99 {p99:7.2f} ms, errors {errors}"
                    )


if __name__ == "__main__":
    main()
