"""The handoff relay's flows: agents pass large context by URL pointer, over channels.

Run: ``python examples/agent_handoff.py``

Starts ``relay serve`` in open mode (no key needed, as a self-hosted ContextRelay) on embedded
defaults in a temporary folder, then runs the brief's flows with stand-in agents (functions
instead of LLM calls): a two-agent handoff, a fan-in of three researchers over a channel, a
checkpoint that is peeked before it is pulled, an end-to-end encrypted push, and a bridge that
two callers use at once. The server is stopped at the end and nothing is left behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from relay_context.handoff_client import AgentBridge, HandoffClient

OUTSIDE_SETTINGS = ("DATABASE_URL", "REDIS_URL", "CONFIG_FILE", "SECRET_KEY", "ENVIRONMENT", "PORT")


def relay_command() -> list[str]:
    beside = Path(sys.executable).with_name("relay")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("relay")
    return [found] if found else [sys.executable, "-m", "relay_context.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def relay_serve(data_dir: Path) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if k.upper() not in OUTSIDE_SETTINGS}
    env.update({"DATA_DIR": str(data_dir), "LOG_LEVEL": "WARNING", "HANDOFF_AUTH": "open"})
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [*relay_command(), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=data_dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError("relay serve exited early")
            try:
                httpx.get(f"{url}/health", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError("relay serve did not start within 60 s") from None
                time.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        print(f"server stopped (exit code {process.returncode})")


def two_agent_handoff(relay: HandoffClient) -> None:
    review = "Finding: the retry loop never backs off.\n" * 2000  # ~80 KB from "Agent A"
    url = relay.push(review, metadata={"type": "code_review", "pr": "PR-441"})
    print(f"handoff: {len(review):,} characters became a {len(url)}-character pointer")
    print(f"handoff: agent B pulled {len(relay.pull(url)):,} characters")


def fan_in(relay: HandoffClient) -> None:
    collected: dict[str, str] = {}
    with relay.subscription("report-channel") as events:  # subscribed before anyone pushes

        def researcher(section: str) -> None:
            with HandoffClient(relay.base_url) as mine:
                mine.push(
                    f"[{section} findings]", channel="report-channel", metadata={"section": section}
                )

        threads = [
            threading.Thread(target=researcher, args=(s,))
            for s in ("intro", "analysis", "conclusion")
        ]
        for t in threads:
            t.start()
        for message in events:
            assert message.url is not None
            collected[relay.peek(message.url)["section"]] = str(relay.pull(message.url))
            if len(collected) == 3:
                break
        for t in threads:
            t.join()
    report = "\n".join(collected[k] for k in ("intro", "analysis", "conclusion"))
    print(f"fan-in: report assembled from 3 sections ({len(report)} characters)")


def checkpoint(relay: HandoffClient) -> None:
    rows = [{"id": i, "total": i * 3} for i in range(2000)]
    import json

    url = relay.push(json.dumps(rows), metadata={"step": "sql_extraction", "rows": len(rows)})
    meta = relay.peek(url)
    print(f"checkpoint: peek says {meta['rows']} rows; pulled {len(json.loads(relay.pull(url)))}")


def encrypted(relay: HandoffClient) -> None:
    url = relay.push("the migration plan", encrypted=True)
    print(f"encrypted: pointer carries the key in its fragment: {'#key=' in url}")
    print(f"encrypted: decrypted locally: {relay.pull(url)!r}")


def bridge(relay: HandoffClient) -> None:
    stop, ready = threading.Event(), threading.Event()
    worker = AgentBridge(HandoffClient(relay.base_url), "tasks", "done")
    serving = threading.Thread(
        target=worker.serve,
        args=(lambda task: f"done: {task}",),
        kwargs={"stop": stop, "ready": ready},
    )
    serving.start()
    ready.wait(30)  # the worker is subscribed: tasks pushed now reach it
    answers: dict[str, str | bytes] = {}

    def ask(task: str) -> None:
        with HandoffClient(relay.base_url) as mine:
            answers[task] = AgentBridge(mine, "tasks", "done").push_and_wait(task, timeout=30)

    callers = [threading.Thread(target=ask, args=(t,)) for t in ("refactor auth", "fix tests")]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    stop.set()
    serving.join()
    worker.relay.close()
    for task, answer in sorted(answers.items()):
        print(f"bridge: {task!r} -> {answer!r}")


def main() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="relay-handoff-example-"))
    try:
        with relay_serve(data_dir) as url, HandoffClient(url) as relay:
            two_agent_handoff(relay)
            fan_in(relay)
            checkpoint(relay)
            encrypted(relay)
            bridge(relay)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
        print(f"temporary data removed: {not data_dir.exists()}")


if __name__ == "__main__":
    main()
