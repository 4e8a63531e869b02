"""The context service over HTTP: start ``relay serve``, make an API key, keep a conversation.

Run: ``python examples/context_service.py``

The service runs on embedded defaults (SQLite, a generated secret key, in-process rate limits)
in a temporary data folder, on a free loopback port, and is stopped at the end: nothing is left
behind and nothing goes over the network beyond 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

SESSION = "support-42"
#: Settings read from the environment that would point the service elsewhere (a shared
#: PostgreSQL or Redis, another config file); the example runs on its own embedded defaults.
OUTSIDE_SETTINGS = ("DATABASE_URL", "REDIS_URL", "CONFIG_FILE", "SECRET_KEY", "ENVIRONMENT", "PORT")


def relay_command() -> list[str]:
    """The ``relay`` console script of this interpreter's environment (a virtualenv's bin/)."""
    beside = Path(sys.executable).with_name("relay")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("relay")
    return [found] if found else [sys.executable, "-m", "relay_context.cli"]


def free_port() -> int:
    # Port 0 makes the OS choose a free one; it is released again just before the server binds.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.upper() not in OUTSIDE_SETTINGS}
    env["DATA_DIR"] = str(data_dir)  # Settings.data_dir: the SQLite file and the secret key
    env["LOG_LEVEL"] = "WARNING"  # keep the example's output readable
    return env


@contextmanager
def relay_serve(env: dict[str, str], cwd: Path) -> Iterator[str]:
    """``relay serve --port N`` in a subprocess; yields its base URL and stops it afterwards."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (cwd / "server.log").open("wb")
    process = subprocess.Popen(
        [*relay_command(), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=cwd,  # a .env file in the caller's directory must not configure this server
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:  # wait until /health answers (start-up loads the C++ core and the store)
            if process.poll() is not None:
                raise RuntimeError(f"relay serve exited early:\n{(cwd / 'server.log').read_text()}")
            try:
                httpx.get(f"{url}/health", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise RuntimeError("relay serve did not start within 60 s") from None
                time.sleep(0.1)
        yield url
    finally:
        # SIGINT is Ctrl-C: uvicorn finishes open requests, the app closes its store, and the
        # process exits by itself. Kill only if it does not.
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        print(f"server stopped (exit code {process.returncode})")


def create_api_key(env: dict[str, str], cwd: Path) -> str:
    # `relay keys create` writes straight into the same database the server uses (it reads the
    # same DATA_DIR); the key's secret is printed once and stored only as a hash.
    out = subprocess.run(
        [*relay_command(), "keys", "create", "--role", "user", "--name", "example", "--json"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    created = json.loads(out.stdout)
    print(f"API key {created['id']} ({created['role']}) created")
    return str(created["key"])


def talk_to_the_service(url: str, api_key: str) -> None:
    with httpx.Client(base_url=url, headers={"X-API-Key": api_key}, timeout=30) as client:
        print("health:", client.get("/health").json()["status"])

        conversation = [
            ("system", "You are a support agent for a bicycle shop."),
            ("user", "My rear brake squeaks when it rains. What can I do?"),
            ("assistant", "Wet rims squeal: clean the rims and pads, then toe-in the pads."),
            ("user", "I did, it still squeaks. Could the pads be worn out?"),
        ]
        for role, content in conversation:
            # The first message creates the session; it belongs to this key's owner.
            r = client.post(
                "/api/v1/context/messages",
                json={"session_id": SESSION, "role": role, "content": content},
            )
            r.raise_for_status()
            body = r.json()
            print(
                f"POST {role:<9} seq {body['seq']}, {body['tokens']:>2} tokens; "
                f"session total {body['session']['total_tokens']}"
            )

        # The window to send next, within 60 tokens: the system prompt and the latest user turn
        # are always kept, older turns give way.
        r = client.get(f"/api/v1/context/{SESSION}", params={"budget": 60})
        r.raise_for_status()
        window = r.json()
        print(
            f"GET window: {window['tokens_used']} / {window['budget']} tokens, "
            f"kept {window['kept_ids']}, dropped {window['dropped_ids']}, policy {window['policy']}"
        )
        for m in window["messages"]:  # OpenAI chat format, ready for the API
            print(f"    {m['role']:<9} {m['content'][:60]}")

        stats = client.get(f"/api/v1/context/{SESSION}/stats")
        stats.raise_for_status()
        s = stats.json()
        print(f"stats: {s['message_count']} messages, {s['total_tokens']} tokens, {s['encoding']}")


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="relay-service-example-") as tmp:
        data_dir = Path(tmp)
        env = service_env(data_dir)
        api_key = create_api_key(env, data_dir)
        with relay_serve(env, data_dir) as url:
            print(f"relay serve on {url} (data in {data_dir})")
            talk_to_the_service(url, api_key)
    print("temporary data removed:", not data_dir.exists())


if __name__ == "__main__":
    main()
