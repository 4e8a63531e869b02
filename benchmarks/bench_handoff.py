"""The handoff relay on loopback: ``relay serve`` in its own process (open mode), driven by
httpx and websockets clients.

    python benchmarks/bench_handoff.py [--requests 300] [--subscribers 100] [--events 50]
        [--big-mb 25] [--database-url postgresql+asyncpg://...] [--redis-url redis://...]

Phases:

* push of 125 KB (``POST /api/v1/handoff``; each payload distinct, so every push stores a new
  blob), pull of 125 KB (``GET /api/v1/handoff/{id}``), peek (``GET /peek/{id}``) — one
  keep-alive client, one request at a time: p50/p99 latency;
* fan-out — ``--subscribers`` WebSocket subscribers of one channel, ``--events`` publishes: the
  time from sending the publish to each subscriber's receipt, p50/p99 over all deliveries;
* a ``--big-mb`` push and pull, streamed both ways (random bytes, so compression cannot shrink
  it): the growth of the server's peak resident memory (``VmHWM``) against the chunk size.

Defaults: SQLite in a temporary DATA_DIR (the embedded defaults). The brief's internet figures,
for scale: push 125 KB ~250 ms, pull ~75 ms, peek ~89 ms, fan-out ~21 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from websockets.asyncio.client import connect

RELAY = Path(sys.executable).parent / "relay"
CHUNK = 256 * 1024  # HANDOFF_CHUNK_BYTES default


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: Figures of the current run, by name (milliseconds), for the side-by-side table.
FIGURES: dict[str, float] = {}


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))] * 1000


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = statistics.median(ordered)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return f"p50 {p50 * 1000:7.2f} ms   p99 {p99 * 1000:7.2f} ms   (n={len(ordered)})"


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process (less disturbed by other load than latency)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux: write 5 to clear_refs); False if not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


_SITECUSTOMIZE = """
import sys
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__.lower()]
sys.path.insert(0, {path!r})
"""


def baseline_env(source: Path, scratch: Path) -> dict[str, str]:
    """Run the server from another checkout's ``python/`` (the built C++ extension copied in):
    the editable install's import hook is dropped so that tree's package wins."""
    import relay_context._core as core

    package = source / "python" / "relay_context"
    shutil.copy2(core.__file__, package / Path(str(core.__file__)).name)
    site = scratch / "baseline-site"
    site.mkdir(exist_ok=True)
    (site / "sitecustomize.py").write_text(_SITECUSTOMIZE.format(path=str(source / "python")))
    return {"PYTHONPATH": str(site)}


def start(
    args: argparse.Namespace, data_dir: str, extra_env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "DATA_DIR": data_dir,
        "HANDOFF_AUTH": "open",
        "HANDOFF_OPEN_PLAN": "unlimited",
        "RATE_LIMIT_REQUESTS": "1000000",
        "LOG_LEVEL": "WARNING",
        "SECRET_KEY": "bench-secret-key-0123456789abcdef-0123456789",
        **(extra_env or {}),
    }
    for name, value in (("DATABASE_URL", args.database_url), ("REDIS_URL", args.redis_url)):
        if value:
            env[name] = value
    if args.database_url:
        env["DATABASE_SCHEMA"] = f"bench_handoff_{os.getpid()}"
    command = [str(RELAY), "serve", "--host", "127.0.0.1", "--port", str(port)]
    if args.profile:
        command = [sys.executable, "-m", "cProfile", "-o", args.profile, *command]
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=sys.stderr,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{url}/health", timeout=2)
            return process, url
        except httpx.TransportError:
            if time.monotonic() > deadline or process.poll() is not None:
                raise RuntimeError("relay serve did not start") from None
            time.sleep(0.1)


def request_phases(url: str, pid: int, n: int) -> None:
    body = (b"The architecture document, section after section. " * 2600)[: 125 * 1024]
    ids: list[str] = []
    with httpx.Client(base_url=url, timeout=30) as c:
        for i in range(20):  # warm-up
            c.post("/api/v1/handoff", content=b"warm %d " % i + body)
        floor = []
        cpu: dict[str, float] = {}
        mark = cpu_seconds(pid)
        for _ in range(n):
            t = time.perf_counter()
            c.get("/health").raise_for_status()
            floor.append(time.perf_counter() - t)
        cpu["health"], mark = cpu_seconds(pid) - mark, cpu_seconds(pid)
        pushes = []
        for i in range(n):
            data = b"%08d" % i + body[8:]
            t = time.perf_counter()
            r = c.post("/api/v1/handoff", content=data, headers={"content-type": "text/plain"})
            pushes.append(time.perf_counter() - t)
            r.raise_for_status()
            ids.append(r.json()["id"])
        cpu["push"], mark = cpu_seconds(pid) - mark, cpu_seconds(pid)
        pulls = []
        for payload_id in ids:
            t = time.perf_counter()
            r = c.get(f"/api/v1/handoff/{payload_id}")
            pulls.append(time.perf_counter() - t)
            assert len(r.content) == len(body)
        cpu["pull"], mark = cpu_seconds(pid) - mark, cpu_seconds(pid)
        peeks = []
        for payload_id in ids:
            t = time.perf_counter()
            c.get(f"/peek/{payload_id}").raise_for_status()
            peeks.append(time.perf_counter() - t)
        cpu["peek"] = cpu_seconds(pid) - mark

    def used(phase: str) -> str:
        # Server CPU per request: steadier than latency on a shared, loaded machine.
        return f"   server CPU {cpu[phase] / n * 1000:5.2f} ms/request"

    for name, samples in (("push", pushes), ("pull", pulls), ("peek", peeks)):
        FIGURES[f"{name} p50"] = statistics.median(samples) * 1000
        FIGURES[f"{name} p99"] = p99(samples)
        FIGURES[f"{name} server CPU"] = cpu[name] / n * 1000
    print(f"GET /health   {percentiles(floor)}{used('health')}   (the service's floor)")
    print(f"push 125 KB   {percentiles(pushes)}{used('push')}")
    print(f"pull 125 KB   {percentiles(pulls)}{used('pull')}")
    print(f"peek          {percentiles(peeks)}{used('peek')}")


async def _receipt(subscriber: object, sent: float) -> float:
    while True:
        frame = await subscriber.recv()  # type: ignore[attr-defined]
        if '"signal"' in frame:
            return time.perf_counter() - sent


async def fanout(url: str, pid: int, subscribers: int, events: int) -> None:
    ws = url.replace("http://", "ws://") + "/ws/bench-fanout"
    sockets = [await connect(ws, max_queue=None) for _ in range(subscribers)]
    for s in sockets:
        await s.recv()  # {"type": "subscribed"}
    latencies: list[float] = []
    cpu_before = cpu_seconds(pid)
    async with httpx.AsyncClient(base_url=url, timeout=30) as c:
        for i in range(events):
            sent = time.perf_counter()
            publish = asyncio.ensure_future(c.post("/publish/bench-fanout", json={"message": i}))

            latencies += await asyncio.gather(*(_receipt(s, sent) for s in sockets))
            await publish
    cpu = (cpu_seconds(pid) - cpu_before) / events
    for s in sockets:
        await s.close()
    FIGURES["fan-out p50"] = statistics.median(latencies) * 1000
    FIGURES["fan-out p99"] = p99(latencies)
    FIGURES["fan-out server CPU"] = cpu * 1000
    print(f"fan-out to {subscribers:3d} {percentiles(latencies)}")
    print(f"fan-out server CPU per event (publish + {subscribers} frames): {cpu * 1000:.2f} ms")


def big_payload(url: str, pid: int, megabytes: int, *, compressible: bool) -> None:
    size = megabytes * 1024 * 1024
    text = b"the same log line, again and again, %d\n"

    def body() -> Iterator[bytes]:
        for i in range(megabytes):
            if compressible:  # ~500x: a few KB of zstd frame expand to megabytes
                yield (text % i) * (1024 * 1024 // len(text % i)) + b"\n" * (
                    1024 * 1024 % len(text % i)
                )
            else:
                yield os.urandom(1024 * 1024)

    resettable = reset_peak(pid)
    before = peak_rss_kib(pid)
    t = time.perf_counter()
    with httpx.Client(base_url=url, timeout=120) as c:
        r = c.post("/api/v1/handoff", content=body())
        r.raise_for_status()
        pushed = time.perf_counter() - t
        received = 0
        t = time.perf_counter()
        with c.stream("GET", f"/api/v1/handoff/{r.json()['id']}") as response:
            for chunk in response.iter_bytes():
                received += len(chunk)
        pulled = time.perf_counter() - t
    assert received == size, received
    growth = peak_rss_kib(pid) - before
    kind = "repetitive" if compressible else "random"
    FIGURES[f"{megabytes} MB {kind} RSS growth (MiB)"] = growth / 1024
    print(
        f"{megabytes} MB {kind} push {pushed * 1000:.0f} ms, pull {pulled * 1000:.0f} ms; "
        f"server peak RSS grew {growth / 1024:.1f} MiB "
        f"({growth * 1024 / CHUNK:.1f}x the {CHUNK // 1024} KiB chunk)"
        f"{'' if resettable else ' (peak since start: VmHWM could not be reset)'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--subscribers", type=int, default=100)
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--big-mb", type=int, default=25)
    parser.add_argument("--database-url")
    parser.add_argument("--redis-url")
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="run the server under cProfile and write its statistics to FILE",
    )
    parser.add_argument(
        "--baseline-source",
        type=Path,
        metavar="DIR",
        help="also run every phase against the server of another checkout (e.g. the commit "
        "before a change: git archive COMMIT python | tar -x -C DIR), side by side",
    )
    args = parser.parse_args()
    runs: list[tuple[str, dict[str, float]]] = []
    with tempfile.TemporaryDirectory() as scratch:
        sources = [("current", None)]
        if args.baseline_source:
            sources.insert(0, ("baseline", baseline_env(args.baseline_source, Path(scratch))))
        for label, extra_env in sources:
            print(f"--- {label}")
            FIGURES.clear()
            run_suite(args, extra_env)
            runs.append((label, dict(FIGURES)))
    if len(runs) == 2:
        (_, before), (_, after) = runs
        print("\n--- side by side (ms unless noted; ratio = baseline / current)")
        for name, value in after.items():
            old = before.get(name)
            ratio = f"{old / value:5.2f}x" if old and value else "   -"
            print(
                f"{name:34s} baseline {old if old is not None else float('nan'):9.2f}   "
                f"current {value:9.2f}   {ratio}"
            )


def run_suite(args: argparse.Namespace, extra_env: dict[str, str] | None) -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        process, url = start(args, data_dir, extra_env)
        try:
            backend = "PostgreSQL" if args.database_url else "SQLite"
            print(f"relay serve on {url} ({backend}{', Redis' if args.redis_url else ''})")
            request_phases(url, process.pid, args.requests)
            asyncio.run(fanout(url, process.pid, args.subscribers, args.events))
            big_payload(url, process.pid, args.big_mb, compressible=False)
            big_payload(url, process.pid, args.big_mb, compressible=True)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
            if args.database_url:
                asyncio.run(drop_schema(args.database_url, f"bench_handoff_{os.getpid()}"))


async def drop_schema(url: str, schema: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await connection.close()


if __name__ == "__main__":
    main()
