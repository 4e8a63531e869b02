"""In-flight coalescing: N concurrent identical streams through ``relay serve``.

    python benchmarks/bench_gateway_coalesce.py [--clients 100] [--rounds 5]

Starts the project's fake upstream (``tests/python/fake_upstream``) and two ``relay serve``
processes on it, one with coalescing (the default) and one with ``GATEWAY_COALESCE=false`` (what
every peer gateway does: none of LiteLLM, Bifrost, Portkey, Helicone, Envoy AI Gateway or Kong
coalesces in-flight requests, so each of their clients costs an upstream call). Each round sends
``--clients`` identical streamed chat completions at once (raw asyncio sockets, so the client
side stays light) and records, per client, when the first body bytes arrived; the fake upstream
records when each of its streams sent its first event (wall clock, same machine). Printed per
mode: upstream calls per round, and the first-byte lag of the clients behind the upstream's first
event (p50 / p99 / max over all rounds) twice: *at the socket*, the kernel's receive time of the
first body bytes on the client's socket (``SO_TIMESTAMPNS``: when they reached the client), and
*as read*, when this process got to read them (which adds its own queue: one Python process
reading 100 sockets in turn); then the ratio of upstream calls. Last, the multicast
core alone (``coalescing.Flight`` in this process, no HTTP): how long after a chunk is appended
each of N waiting readers has it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
RELAY = Path(sys.executable).parent / "relay"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def process(args: list[str], env: dict[str, str], url: str, probe: str) -> Iterator[None]:
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    httpx.get(url + probe, timeout=1)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        log.seek(0)
                        tail = log.read()[-2000:]
                        raise RuntimeError(f"{args[0]} did not start: {tail!r}") from None
                    time.sleep(0.1)
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


#: Linux's ``SO_TIMESTAMPNS`` (and its control message): each read of a TCP socket then carries
#: the kernel's receive time of the last segment it returned.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)


async def recv_stamped(sock: socket.socket) -> tuple[bytes, float | None]:
    """One read of a non-blocking socket and the kernel's receive time of its data (wall clock)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[tuple[bytes, float | None]] = loop.create_future()

    def readable() -> None:
        try:
            data, ancillary, _, _ = sock.recvmsg(65536, socket.CMSG_SPACE(16))
        except BlockingIOError:
            return
        except OSError as exc:
            loop.remove_reader(sock)
            done.set_exception(exc)
            return
        loop.remove_reader(sock)
        stamp = None
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(payload) >= 16:
                seconds, nanoseconds = struct.unpack("qq", payload[:16])
                stamp = seconds + nanoseconds / 1e9
        done.set_result((data, stamp))

    loop.add_reader(sock, readable)
    try:
        return await done
    finally:
        loop.remove_reader(sock)


async def one_stream(port: int, request: bytes, go: asyncio.Event) -> tuple[float, float, float]:
    """Wall-clock times of one streamed answer (read to its end): its response headers, its first
    body bytes as this client read them, and as they reached this client's socket (the kernel's
    receive time, which leaves out this process's own queue of 100 sockets to read)."""
    loop = asyncio.get_running_loop()
    sock = socket.socket()
    sock.setblocking(False)
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await go.wait()
    await loop.sock_sendall(sock, request)
    head = b""
    stamp: float | None = None
    while b"\r\n\r\n" not in head:
        data, stamp = await recv_stamped(sock)
        if not data:
            raise RuntimeError("connection closed before the headers")
        head += data
    headers_at = time.time()
    status = head.split(b" ", 2)[1]
    if status != b"200":
        raise RuntimeError(f"status {status.decode()}: {head[:500]!r}")
    rest = head.split(b"\r\n\r\n", 1)[1]
    first, first_stamp = (time.time(), stamp) if rest else (None, None)
    body = rest
    while True:
        data, stamp = await recv_stamped(sock)
        if not data:
            break
        if first is None:
            first, first_stamp = time.time(), stamp
        body += data
        if body.endswith(b"0\r\n\r\n"):
            break
    sock.close()
    if first is None or b"[DONE]" not in body:
        raise RuntimeError("stream ended early")
    if first_stamp is None:
        raise RuntimeError("the kernel gave no receive timestamp (SO_TIMESTAMPNS)")
    return headers_at, first, first_stamp


async def round_of(
    port: int, key: str, clients: int, content: str
) -> list[tuple[float, float, float]]:
    body = json.dumps(
        {
            "model": "gpt-4o-mini",
            "stream": True,
            "messages": [{"role": "user", "content": content}],
        }
    ).encode()
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
        f"authorization: Bearer {key}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode() + body
    go = asyncio.Event()
    tasks = [asyncio.create_task(one_stream(port, request, go)) for _ in range(clients)]
    await asyncio.sleep(0.2)  # every connection open
    go.set()
    return list(await asyncio.gather(*tasks))


async def flight_fanout(readers: int, chunks: int) -> list[float]:
    """Per chunk and reader: ms from the chunk's append to the reader having it."""
    from relay_context.gateway.coalescing import Flight, Head

    flight = Flight("bench", stream=True, max_bytes=1 << 30)
    flight.answer_head(Head(200, (), "bench"))
    appended: list[float] = []
    lags: list[float] = []

    async def reader(position: int) -> None:
        n = 0
        while await flight.read(position) is not None:
            lags.append((time.perf_counter() - appended[n]) * 1000)
            n += 1

    tasks = [asyncio.create_task(reader(flight.join())) for _ in range(readers)]
    await asyncio.sleep(0)
    for _ in range(chunks):
        appended.append(time.perf_counter())
        await flight.append(b"data: {}\n\n")
        await asyncio.sleep(0.005)
    flight.finish()
    await asyncio.gather(*tasks)
    return lags


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    fake_port = free_port()
    fake_url = f"http://127.0.0.1:{fake_port}"
    ports = {"coalescing": free_port(), "coalescing off": free_port()}
    with tempfile.TemporaryDirectory() as data, ExitStack() as stack:
        base_env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("OPENAI", "ANTHROPIC", "GATEWAY_", "REDIS_URL"))
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
            "GATEWAY_MAX_CONNECTIONS": "1000",
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
        stack.enter_context(process(fake_cmd, fake_env, fake_url, "/v1/models"))
        for mode, port in ports.items():
            env = {**relay_env, "GATEWAY_COALESCE": "true" if mode == "coalescing" else "false"}
            cmd = [str(RELAY), "serve", "--port", str(port)]
            stack.enter_context(process(cmd, env, f"http://127.0.0.1:{port}", "/health"))
        print(f"{args.clients} concurrent identical streams, {args.rounds} rounds per mode")
        calls_per_mode: dict[str, float] = {}
        for mode, port in ports.items():
            lags: list[float] = []
            socket_lags: list[float] = []
            late = 0
            calls: list[int] = []
            for n in range(args.rounds + 1):  # round 0 warms up connections and tokenizers
                # The upstream: 2 s to its first event (time for every request to be through
                # the gateway's pipeline: the lag is then the multicast's), then 40 words 20 ms
                # apart.
                content = (
                    f"{mode} round {n} fake:latency_ms=2000 fake:chunk_delay_ms=20 fake:words=40"
                )
                before = httpx.get(fake_url + "/_fake/stats").json()
                firsts = asyncio.run(round_of(port, key, args.clients, content))
                after = httpx.get(fake_url + "/_fake/stats").json()
                upstream_firsts = after["first_event_at"][len(before["first_event_at"]) :]
                if n == 0:
                    continue
                calls.append(after["calls"] - before["calls"])
                origin = min(upstream_firsts)
                lags += [(first - origin) * 1000 for _, first, _ in firsts]
                socket_lags += [(stamp - origin) * 1000 for _, _, stamp in firsts]
                late += sum(headers > origin for headers, _, _ in firsts)
            calls_per_mode[mode] = sum(calls) / len(calls)
            print(
                f"  {mode:15s} upstream calls/round {calls_per_mode[mode]:6.1f}"
                f" | headers after the upstream's first event: {late} of {len(lags)}"
            )
            for what, values in (("at the socket", socket_lags), ("as read", lags)):
                print(
                    f"    first-byte lag behind the upstream's first event, {what:13s} (ms):"
                    f" p50 {percentile(values, 0.5):6.2f} p99 {percentile(values, 0.99):6.2f}"
                    f" max {max(values):6.2f}"
                )
        ratio = calls_per_mode["coalescing off"] / calls_per_mode["coalescing"]
        print(f"upstream calls, coalescing off / on: {ratio:.0f}x")
    lags = asyncio.run(flight_fanout(args.clients, 50))
    print(
        f"multicast core alone, {args.clients} readers x 50 chunks: append to read (ms)"
        f" p50 {percentile(lags, 0.5):.3f} p99 {percentile(lags, 0.99):.3f} max {max(lags):.3f}"
    )


if __name__ == "__main__":
    main()
