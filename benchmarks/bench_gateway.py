"""The gateway's added latency and throughput, side by side: direct to the fake upstream, through
``relay serve``, and through LiteLLM's proxy, all in one run against the same fake upstream.

    python benchmarks/bench_gateway.py [--quick] [--sequential N] [--requests N] [--no-litellm]

Starts the project's fake upstream (``tests/python/fake_upstream``), ``relay serve`` (keys auth
with a key from ``relay keys create``, the fake as OPENAI_BASE_URL) and LiteLLM's proxy (1.106.x
in its own virtual environment, built on first run by ``litellm_peer.py``; the fake as the
``openai/*`` upstream) as separate processes, then measures, for the same request body:

* one request at a time, non-streamed and streamed (to the last byte): p50 / p99 latency and the
  added latency (gateway minus direct), plus Relay's own ``x-relay-overhead-ms`` and each
  gateway process's CPU per request (load on a shared machine inflates wall-clock latency far
  more than CPU time);
* concurrency 16 and 64 (non-streamed): requests/s, p99 and errors;
* the ratios Relay vs LiteLLM (added p50, requests/s);
* Relay's resident memory over a long run (``--requests``, 100,000 by default) at concurrency
  16: sampled every 1 % of the run, with the slope of a least-squares line over the second half
  (after warm-up) in KiB per 10,000 requests — flat memory is a slope near 0.
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
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from litellm_peer import installed_version, litellm_proxy

REPO = Path(__file__).resolve().parent.parent
RELAY = Path(sys.executable).parent / "relay"
BODY = {
    "model": "gpt-4o-mini",
    "messages": [
        {"role": "system", "content": "You are a helpful coding assistant."},
        {"role": "user", "content": "Explain what a context window is, briefly."},
    ],
}


@dataclass(frozen=True)
class Target:
    name: str
    url: str  # the chat completions URL
    headers: dict[str, str]
    pid: int | None = None


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
def process(args: list[str], env: dict[str, str], url: str, probe: str) -> Iterator[int]:
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        try:
            try:
                wait_up(url, probe)
            except RuntimeError:
                log.seek(0)
                tail = log.read().decode()[-2000:]
                raise RuntimeError(f"{args[0]} did not start: {tail}") from None
            yield proc.pid
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its children so far (the gateway's own cost, which the
    machine's load does not inflate the way it inflates wall-clock latency)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    ticks = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def slope(xs: list[float], ys: list[float]) -> float:
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def sequential(
    client: httpx.Client, t: Target, n: int, stream: bool
) -> tuple[list[float], list[float]]:
    """Latencies (ms) and, through Relay, its reported overheads (ms)."""
    body = json.dumps({**BODY, "stream": stream}).encode()
    latencies: list[float] = []
    overheads: list[float] = []
    for _ in range(n):
        started = time.perf_counter()
        if stream:
            with client.stream("POST", t.url, content=body, headers=t.headers) as response:
                for _ in response.iter_raw():
                    pass
        else:
            response = client.post(t.url, content=body, headers=t.headers)
        latencies.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"{t.name}: {response.status_code} {response.read()[:500]!r}")
        if "x-relay-overhead-ms" in response.headers:
            overheads.append(float(response.headers["x-relay-overhead-ms"]))
    return latencies, overheads


async def concurrent(
    t: Target, concurrency: int, total: int, on_progress: tuple[int, list[int]] | None = None
) -> tuple[float, float, int]:
    """(requests/s, p99 ms, errors); with ``on_progress=(pid, samples)`` the RSS of ``pid`` is
    appended to ``samples`` every 1 % of ``total``."""
    body = json.dumps(BODY).encode()
    latencies: list[float] = []
    errors = 0
    done = 0
    every = max(1, total // 100)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        remaining = total

        async def worker() -> None:
            nonlocal errors, remaining, done
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                try:
                    response = await client.post(t.url, content=body, headers=t.headers)
                    if response.status_code != 200:
                        errors += 1
                except httpx.HTTPError:
                    errors += 1
                latencies.append((time.perf_counter() - started) * 1000)
                done += 1
                if on_progress is not None and done % every == 0:
                    on_progress[1].append(rss_kib(on_progress[0]))
                    if len(on_progress[1]) % 10 == 1:  # a line every 10 %, for long runs
                        mib = on_progress[1][-1] / 1024
                        print(f"  memory run: {done} requests, RSS {mib:.1f} MiB", flush=True)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return total / elapsed, percentile(latencies, 0.99), errors


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer requests")
    parser.add_argument("--sequential", type=int, default=None, help="requests per latency case")
    parser.add_argument(
        "--requests", type=int, default=None, help="requests of the memory run (100,000)"
    )
    parser.add_argument("--concurrent", type=int, default=None, help="requests per load case")
    parser.add_argument("--no-litellm", action="store_true", help="direct and Relay only")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory run")
    args = parser.parse_args()
    n = args.sequential or (200 if args.quick else 1000)
    total = args.concurrent or (500 if args.quick else 3000)
    long_run = args.requests or (5000 if args.quick else 100_000)
    fake_port, relay_port = free_port(), free_port()
    fake_url = f"http://127.0.0.1:{fake_port}"
    relay_url = f"http://127.0.0.1:{relay_port}"
    with tempfile.TemporaryDirectory() as data, ExitStack() as stack:
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
        stack.enter_context(process(fake_cmd, fake_env, fake_url, "/v1/models"))
        relay_pid = stack.enter_context(process(relay_cmd, relay_env, relay_url, "/health"))
        direct = Target("direct", fake_url + "/v1/chat/completions", {"authorization": "Bearer x"})
        relay = Target(
            "relay",
            relay_url + "/v1/chat/completions",
            {"authorization": f"Bearer {key}"},
            relay_pid,
        )
        targets = [direct, relay]
        if not args.no_litellm:
            version = installed_version()
            peer = stack.enter_context(litellm_proxy(fake_url + "/v1"))
            targets.append(
                Target(
                    f"litellm {version}",
                    peer.url + "/v1/chat/completions",
                    {"authorization": f"Bearer {peer.key}"},
                    peer.pid,
                )
            )
        names = ", ".join(t.name for t in targets)
        print(f"bench_gateway: {names}; load average {os.getloadavg()[0]:.1f}")
        added: dict[tuple[str, bool], float] = {}
        cpu: dict[tuple[str, bool], float] = {}
        with httpx.Client(timeout=60) as client:
            for t in targets:  # warm up connections and caches
                sequential(client, t, 50, False)
                sequential(client, t, 50, True)
            print(f"one at a time, {n} requests each (ms)")
            for stream in (False, True):
                label = "streamed" if stream else "non-streamed"
                base, _ = sequential(client, direct, n, stream)
                b50, b99 = percentile(base, 0.5), percentile(base, 0.99)
                print(f"  {label:13s} {'direct':16s} p50 {b50:7.3f} p99 {b99:7.3f}")
                for t in targets[1:]:
                    assert t.pid is not None
                    cpu_before = cpu_seconds(t.pid)
                    lat, overhead = sequential(client, t, n, stream)
                    cpu_ms = (cpu_seconds(t.pid) - cpu_before) * 1000 / n
                    cpu[(t.name, stream)] = cpu_ms
                    p50, p99 = percentile(lat, 0.5), percentile(lat, 0.99)
                    added[(t.name, stream)] = p50 - b50
                    extra = (
                        f" | x-relay-overhead-ms median {statistics.median(overhead):.3f}"
                        if overhead
                        else ""
                    )
                    print(
                        f"  {label:13s} {t.name:16s} p50 {p50:7.3f} p99 {p99:7.3f}"
                        f" | added p50 {p50 - b50:7.3f} p99 {p99 - b99:7.3f}"
                        f" | server CPU {cpu_ms:.3f} ms/request{extra}"
                    )
        rps: dict[tuple[str, int], float] = {}
        for concurrency in (16, 64):
            for t in targets:
                per_target = total if t is not targets[-1] or args.no_litellm else total // 2
                r, p99, errors = asyncio.run(concurrent(t, concurrency, per_target))
                rps[(t.name, concurrency)] = r
                print(
                    f"concurrency {concurrency:2d} {t.name:16s}: {r:8.0f} req/s,"
                    f" p99 {p99:8.2f} ms, errors {errors}"
                )
        if not args.no_litellm:
            peer_name = targets[-1].name
            print("ratios (LiteLLM / Relay; higher is better for Relay)")
            for stream in (False, True):
                ours, theirs = added[("relay", stream)], added[(peer_name, stream)]
                label = "streamed" if stream else "non-streamed"
                print(
                    f"  added p50 {label:13s}: relay {ours:.3f} ms, litellm {theirs:.3f} ms,"
                    f" {theirs / max(ours, 1e-3):.1f}x"
                )
                ours, theirs = cpu[("relay", stream)], cpu[(peer_name, stream)]
                print(
                    f"  server CPU {label:12s}: relay {ours:.3f} ms, litellm {theirs:.3f} ms"
                    f" per request, {theirs / max(ours, 1e-3):.1f}x"
                )
            for concurrency in (16, 64):
                ours, theirs = rps[("relay", concurrency)], rps[(peer_name, concurrency)]
                print(
                    f"  requests/s at concurrency {concurrency}: relay {ours:.0f}, litellm"
                    f" {theirs:.0f}, {ours / theirs:.1f}x"
                )
        if not args.no_memory:
            samples: list[int] = [rss_kib(relay_pid)]
            r, p99, errors = asyncio.run(concurrent(relay, 16, long_run, (relay_pid, samples)))
            xs = [i * (long_run / 100) for i in range(len(samples))]
            half = len(samples) // 2
            per_10k = slope(xs[half:], samples[half:]) * 10_000
            print(
                f"memory, relay, {long_run} requests at concurrency 16 ({r:.0f} req/s, errors"
                f" {errors}): RSS {samples[0] / 1024:.1f} -> {samples[half] / 1024:.1f} ->"
                f" {samples[-1] / 1024:.1f} MiB; slope over the second half"
                f" {per_10k:+.1f} KiB per 10k requests"
            )


if __name__ == "__main__":
    main()
