"""Exact-cache hit latency of the gateway, per store: in process, SQLite (sealed), Redis.

    python benchmarks/bench_gateway_cache.py [--quick] [--rate 1000] [--seconds 5]

For each store, starts the project's fake upstream and ``relay serve`` (keys auth, the fake as
OPENAI_BASE_URL, ``GATEWAY_CACHE`` turning the cache on with that store; Redis is a throwaway
``redis-server`` on a free port), fills the cache with one answer per distinct prompt, then:

* one request at a time: p50 / p99 latency of a hit (to the last byte), non-streamed and
  streamed, and Relay's own ``x-relay-overhead-ms`` for them;
* an open-loop load of ``--rate`` hits per second for ``--seconds`` (each request due on a
  fixed schedule, latency counted from when it was due, over 32 keep-alive connections):
  achieved rate, p50 / p99 / p99.9 latency, errors.

The one-at-a-time client is a minimal asyncio HTTP/1.1 client; the open-loop load comes from
``open_loop_client.py``, a process of its own on non-blocking sockets, run twice: waiting in
``select(2)`` (microsecond timeouts, so it sends on time and leaves the CPU to the server
meanwhile), then spinning (a zero-timeout poll: a whole core, which on a 2-core machine the
server, its Redis and the kernel then lack). Both are on the same machine as the server; the
server-side ``x-relay-overhead-ms`` and the client's own lateness in sending (p99) are beside
each figure.

Beside Relay, given a LiteLLM 1.106.x venv (``--litellm-venv``; ``benchmarks/litellm_peer.py``
builds one), LiteLLM's proxy with its cache in each of ``--litellm-modes`` — ``local`` (in
memory) and ``redis`` (a throwaway redis-server on a free port) — on the same requests: hit
latency one at a time, whole and streamed, with the upstream calls made during the hits (0 when
they are all hits). For Relay's memory and Redis stores and for each LiteLLM mode, the
stream-replay fidelity of a tool-call + reasoning + cached-tokens stream: its chunk count first
and replayed, the field paths the replay lost, and whether the replay made no upstream call.
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import httpx

from open_loop_client import open_loop

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


class RawConnection:
    """One keep-alive HTTP/1.1 connection speaking just enough HTTP for this benchmark: the load
    generator must cost far less than the server it measures (httpx's pool does not at 1k/s on
    this machine)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> RawConnection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def post(self, head: bytes, content: bytes) -> tuple[int, dict[str, str], bytes]:
        self.writer.write(head + str(len(content)).encode() + b"\r\n\r\n" + content)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding") == "chunked":
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).strip(), 16)
                data = await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(data[:-2])
            return status, headers, b"".join(parts)
        return status, headers, await self.reader.readexactly(int(headers["content-length"]))

    def close(self) -> None:
        self.writer.close()


def request_head(port: int, key: str) -> bytes:
    return (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\n"
        f"authorization: Bearer {key}\r\ncontent-type: application/json\r\n"
        "content-length: "
    ).encode()


def check_hit(status: int, headers: dict[str, str]) -> None:
    if status != 200 or headers.get("x-relay-cache") != "hit":
        raise RuntimeError(f"not a hit: {status} {headers}")


async def sequential(port: int, key: str, n: int, stream: bool) -> tuple[list[float], list[float]]:
    conn = await RawConnection.open("127.0.0.1", port)
    head = request_head(port, key)
    latencies: list[float] = []
    overheads: list[float] = []
    try:
        for i in range(n):
            content = body(i % PROMPTS, stream)
            started = time.perf_counter()
            status, headers, _ = await conn.post(head, content)
            latencies.append((time.perf_counter() - started) * 1000)
            check_hit(status, headers)
            overheads.append(float(headers["x-relay-overhead-ms"]))
    finally:
        conn.close()
    return latencies, overheads


def load(port: int, key: str, rate: float, seconds: float, *, spin: bool) -> dict[str, Any]:
    """Hits due on a fixed schedule of ``rate`` per second over 32 connections, from the
    precise open-loop client (``open_loop_client.py``: its own process, no timer slop);
    latency counts from the moment each was due (a late answer delays the next ones too)."""
    head = request_head(port, key)
    requests = [head + str(len(b)).encode() + b"\r\n\r\n" + b for b in map(body, range(PROMPTS))]
    result = open_loop(
        "127.0.0.1",
        port,
        requests,
        rate=rate,
        seconds=seconds,
        require_header=("x-relay-cache", "hit"),
        collect_header="x-relay-overhead-ms",
        spin=spin,
    )
    return {
        "rate": result.rate,
        "p50": percentile(result.latencies_ms, 0.5),
        "p99": percentile(result.latencies_ms, 0.99),
        "p999": percentile(result.latencies_ms, 0.999),
        "overhead_p50": percentile(result.collected, 0.5),
        "overhead_p99": percentile(result.collected, 0.99),
        "send_late_p99": percentile(result.send_late_ms, 0.99),
        "errors": result.errors,
        "error_kinds": result.error_kinds,
    }


def run_store(store: str, args: argparse.Namespace) -> dict[str, Any]:
    fake_port, relay_port = free_port(), free_port()
    fake_url = f"http://127.0.0.1:{fake_port}"
    relay_url = f"http://127.0.0.1:{relay_port}"
    with (
        tempfile.TemporaryDirectory() as data,
        redis_server() if store == "redis" else nullcontext(None) as redis_url,
    ):
        cache: dict[str, Any] = {"enabled": True, "ttl_seconds": 3600}
        if store == "redis":
            # The default 0.2 s Redis timeouts treat a stall of the shared, saturated benchmark
            # machine as an outage (then misses, "bypass", for redis_retry_seconds): hits are
            # what is measured here.
            cache |= {"redis_connect_timeout_seconds": 2.0, "redis_socket_timeout_seconds": 2.0}
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
            asyncio.run(sequential(relay_port, key, 100, False))  # warm up
            print(f"  [{store}] measuring", file=sys.stderr, flush=True)
            out: dict[str, Any] = {}
            if store in ("memory", "redis"):
                with httpx.Client(timeout=60) as client:
                    fidelity(
                        client, url, headers, f"relay/{store}", lambda: upstream_calls(fake_url)
                    )
            for stream in (False, True):
                lat, over = asyncio.run(sequential(relay_port, key, args.requests, stream))
                out["stream" if stream else "whole"] = (lat, over)
            out["load"] = {
                client: load(relay_port, key, args.rate, args.seconds, spin=client == "spin")
                for client in ("select", "spin")
            }
            return out


LITELLM_CONFIG = """model_list:
  - model_name: "*"
    litellm_params:
      model: "openai/*"
      api_base: "{upstream}"
      api_key: "sk-fake"
litellm_settings:
  telemetry: false
  cache: true
  cache_params:
{cache_params}
general_settings:
  master_key: "sk-litellm-bench"
  disable_spend_logs: true
"""
FIDELITY_BODY = {
    "model": "gpt-4o-mini",
    "stream": True,
    "stream_options": {"include_usage": True},
    "messages": [{"role": "user", "content": "fidelity fake:tools=2 fake:thinking fake:cached=64"}],
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
}


def stream_chunks(client: httpx.Client, url: str, headers: dict[str, str]) -> list[Any]:
    with client.stream("POST", url, json=FIDELITY_BODY, headers=headers) as response:
        text = response.read().decode()
    return [
        json.loads(e[6:])
        for e in text.replace("\r\n", "\n").split("\n\n")
        if e.startswith("data: {")
    ]


def fields(chunks: list[Any]) -> set[str]:
    """Every field path present in the chunks (``choices.delta.tool_calls.function.arguments``)."""
    out: set[str] = set()

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if v is not None:
                    walk(v, f"{path}.{k}" if path else k)
        elif isinstance(value, list):
            for v in value:
                walk(v, path)
        else:
            out.add(path)

    for chunk in chunks:
        walk(chunk, "")
    return out


def fidelity(
    client: httpx.Client, url: str, headers: dict[str, str], name: str, calls: Callable[[], int]
) -> None:
    """A tool-call + reasoning + cached-tokens stream, then its replay: chunk count, the field
    paths the replay lost, and whether the replay came without an upstream call."""
    original = stream_chunks(client, url, headers)
    time.sleep(1.0)
    before = calls()
    replayed = stream_chunks(client, url, headers)
    from_cache = calls() == before
    lost = sorted(fields(original) - fields(replayed))
    strip = {"id", "created", "system_fingerprint"}
    same = [{k: v for k, v in c.items() if k not in strip} for c in original] == [
        {k: v for k, v in c.items() if k not in strip} for c in replayed
    ]
    print(
        f"  {name:13s} stream replay: {len(original)} chunks first, {len(replayed)} replayed;"
        f" fields lost: {lost or 'none'}; chunks equal (ids aside): {same};"
        f" replayed without an upstream call: {from_cache}"
    )


def post_retrying(
    client: httpx.Client, url: str, content: bytes, headers: dict[str, str], retried: list[int]
) -> httpx.Response:
    """One POST, sent again once when the server closed a kept-alive connection just as it was
    reused (``RemoteProtocolError``: LiteLLM's proxy does that now and then); counted."""
    try:
        return client.post(url, content=content, headers=headers)
    except httpx.RemoteProtocolError:
        retried[0] += 1
        return client.post(url, content=content, headers=headers)


def upstream_calls(fake_url: str) -> int:
    return int(httpx.get(fake_url + "/_fake/stats").json()["calls"])


def run_litellm(venv: Path, args: argparse.Namespace, mode: str) -> dict[str, float]:
    """LiteLLM's proxy with its cache in ``mode``: ``local`` (in memory) or ``redis`` (a
    throwaway redis-server), on the same requests as Relay's."""
    fake_port, port = free_port(), free_port()
    fake_url = f"http://127.0.0.1:{fake_port}"
    url = f"http://127.0.0.1:{port}"
    base_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OPENAI", "ANTHROPIC", "LITELLM", "DATABASE_URL", "REDIS"))
    }
    with (
        tempfile.TemporaryDirectory() as work,
        redis_server() if mode == "redis" else nullcontext(None) as redis_url,
    ):
        cache_params = "    type: local"
        if redis_url is not None:
            redis_port = redis_url.rsplit(":", 1)[1].split("/")[0]
            cache_params = f'    type: redis\n    host: "127.0.0.1"\n    port: {redis_port}'
        config = Path(work) / "litellm.yaml"
        config.write_text(
            LITELLM_CONFIG.format(upstream=fake_url + "/v1", cache_params=cache_params)
        )
        env = {
            **base_env,
            "LITELLM_LOG": "ERROR",
            "LITELLM_TELEMETRY": "False",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }
        fake_env = {**base_env, "PYTHONPATH": str(REPO / "tests" / "python")}
        fake_cmd = [sys.executable, "-m", "fake_upstream", "--port", str(fake_port)]
        cmd = [str(venv / "bin" / "litellm"), "--config", str(config), "--port", str(port)]
        with (
            process(fake_cmd, fake_env, fake_url, "/v1/models"),
            process(cmd, env, url, "/health/liveliness"),
        ):
            headers = {"authorization": "Bearer sk-litellm-bench"}
            name = f"litellm/{mode}"
            p50s: dict[str, float] = {}
            with httpx.Client(timeout=60) as client:
                for stream in (False, True):  # fill: one miss per prompt
                    for n in range(PROMPTS):
                        client.post(
                            url + "/v1/chat/completions", content=body(n, stream), headers=headers
                        )
                time.sleep(1.0)  # LiteLLM writes its cache after answering
                for stream in (False, True):
                    before = upstream_calls(fake_url)
                    latencies = []
                    retried = [0]
                    for i in range(args.requests):
                        started = time.perf_counter()
                        response = post_retrying(
                            client,
                            url + "/v1/chat/completions",
                            body(i % PROMPTS, stream),
                            headers,
                            retried,
                        )
                        latencies.append((time.perf_counter() - started) * 1000)
                        assert response.status_code == 200, response.text
                    calls = upstream_calls(fake_url) - before
                    p50s["stream" if stream else "whole"] = percentile(latencies, 0.5)
                    print(
                        f"  {name:13s} {'stream' if stream else 'whole':6s} one at a time:"
                        f" p50 {percentile(latencies, 0.5):6.3f}"
                        f" p99 {percentile(latencies, 0.99):6.3f}"
                        f" | upstream calls during the {args.requests} hits: {calls}"
                        f" | resent after a closed keep-alive: {retried[0]}"
                    )
                fidelity(
                    client,
                    url + "/v1/chat/completions",
                    headers,
                    name,
                    lambda: upstream_calls(fake_url),
                )
            return p50s


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rate", type=float, default=1000.0, help="hits per second (open loop)")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--requests", type=int, default=None, help="sequential hits per case")
    parser.add_argument("--stores", default="memory,sqlite,redis")
    parser.add_argument(
        "--litellm-venv",
        default=os.environ.get("RELAY_LITELLM_VENV", str(REPO / "benchmarks" / ".venv-litellm")),
        help="a virtual environment with litellm[proxy] 1.106.x (skipped if absent)",
    )
    parser.add_argument("--litellm-modes", default="local,redis", help="LiteLLM cache types")
    args = parser.parse_args()
    args.seconds = args.seconds or (2.0 if args.quick else 5.0)
    args.requests = args.requests or (300 if args.quick else 1000)
    print(f"exact-cache hits, {args.requests} one at a time; then {args.rate:.0f}/s open loop")
    print(f"for {args.seconds:.0f} s (ms; client latency to the last byte | x-relay-overhead-ms)")
    relay_p50: dict[tuple[str, str], float] = {}
    for store in args.stores.split(","):
        result = run_store(store, args)
        for mode in ("whole", "stream"):
            lat, over = result[mode]
            relay_p50[store, mode] = percentile(lat, 0.5)
            print(
                f"  relay/{store:7s} {mode:6s} one at a time: p50 {percentile(lat, 0.5):6.3f}"
                f" p99 {percentile(lat, 0.99):6.3f} | overhead p50 {percentile(over, 0.5):6.3f}"
                f" p99 {percentile(over, 0.99):6.3f}"
            )
        for client, hits in result["load"].items():
            print(
                f"  relay/{store:7s} whole  at {hits['rate']:6.0f}/s ({client:6s} client):"
                f" p50 {hits['p50']:6.3f} p99 {hits['p99']:6.3f} p99.9 {hits['p999']:6.3f}"
                f" | overhead p50 {hits['overhead_p50']:6.3f}"
                f" p99 {hits['overhead_p99']:6.3f} | sent late p99 {hits['send_late_p99']:6.3f}"
                f" | errors {hits['errors']}"
                + (f" {hits['error_kinds']}" if hits["errors"] else "")
            )
    venv = Path(args.litellm_venv)
    if (venv / "bin" / "litellm").exists():
        print("LiteLLM's cache (cache_params.type: local, then redis), same requests:")
        peer = {mode: run_litellm(venv, args, mode) for mode in args.litellm_modes.split(",")}
        print("hit latency p50, LiteLLM / Relay (same machine, same run):")
        for mode, store in (("local", "memory"), ("redis", "redis")):
            for kind in ("whole", "stream"):
                if mode in peer and (store, kind) in relay_p50:
                    ratio = peer[mode][kind] / relay_p50[store, kind]
                    print(f"  {kind:6s} litellm/{mode} vs relay/{store}: {ratio:5.1f}x")
    else:
        print(f"LiteLLM: no venv at {venv} (see --litellm-venv); not run")


if __name__ == "__main__":
    main()
