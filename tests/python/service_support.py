"""Runs the real service for the end-to-end tests: ``relay serve`` in its own process on a free
loopback port, driven with httpx."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent.parent
RELAY = Path(sys.executable).parent / "relay"
#: A key long enough for production; tests sign their own tokens with it.
TEST_SECRET = "test-secret-key-0123456789abcdef-0123456789"
STARTUP_TIMEOUT_SECONDS = 60.0

#: Settings the tests control; the outer environment must not leak into the server.
_CLEARED = (
    "DATABASE_URL",
    "REDIS_URL",
    "SECRET_KEY",
    "ENVIRONMENT",
    "CONFIG_FILE",
    "CORS_ORIGINS",
    "RATE_LIMIT_REQUESTS",
    "RATE_LIMIT_WINDOW_SECONDS",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "JWT_ALGORITHM",
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def real_backends(pg_dsn: str, redis_url: str, label: str) -> Iterator[dict[str, str]]:
    """Settings for servers on the real PostgreSQL (a schema of their own) and Redis (a key
    prefix of their own); both are removed afterwards."""
    from engine_support import delete_redis_keys, drop_pg_schema, unique_name

    schema = unique_name(label)
    prefix = unique_name(label) + ":"
    try:
        yield {
            "database_url": pg_dsn.replace("postgresql://", "postgresql+asyncpg://"),
            "database_schema": schema,
            "redis_url": redis_url,
            "redis_key_prefix": prefix,
        }
    finally:
        drop_pg_schema(pg_dsn, schema)
        delete_redis_keys(redis_url, prefix)


def service_env(data_dir: Path, **settings: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.upper() not in _CLEARED}
    env["DATA_DIR"] = str(data_dir)
    env["SECRET_KEY"] = TEST_SECRET
    env["LOG_LEVEL"] = "WARNING"
    for key, value in settings.items():
        if value is None:
            env.pop(key.upper(), None)
        else:
            env[key.upper()] = value if isinstance(value, str) else json.dumps(value)
    return env


def relay_cli(
    env: Mapping[str, str], *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(RELAY), *args], env=dict(env), capture_output=True, text=True, timeout=120, cwd=REPO
    )
    if check and result.returncode != 0:
        raise AssertionError(f"relay {' '.join(args)} failed: {result.stderr}")
    return result


def create_key(env: Mapping[str, str], role: str, owner: str | None = None) -> dict[str, Any]:
    """A new API key, made with ``relay keys create --json`` (straight in the database)."""
    args = ["keys", "create", "--role", role, "--json"]
    if owner:
        args += ["--owner", owner]
    created: dict[str, Any] = json.loads(relay_cli(env, *args).stdout)
    return created


@dataclass
class Server:
    url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log_path: Path
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def run_server(env: dict[str, str], log_dir: Path, *, port_flag: bool = True) -> Iterator[Server]:
    """``relay serve`` on a free port, given by ``--port`` or (``port_flag=False``) by the
    ``PORT`` setting, with the default host."""
    port = free_port()
    args = ["--host", "127.0.0.1", "--port", str(port)] if port_flag else []
    if not port_flag:
        env = {**env, "PORT": str(port)}
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"server-{port}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [str(RELAY), "serve", *args],
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    server = Server(f"http://127.0.0.1:{port}", env, process, log_path)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
        while True:
            if process.poll() is not None:
                raise AssertionError(
                    f"relay serve exited with {process.returncode}:\n{server.log()}"
                )
            try:
                server.client.get("/health", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"relay serve did not start:\n{server.log()}") from None
                time.sleep(0.1)
        yield server
    finally:
        server.client.close()
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def assert_error(response: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    """The one error shape, with ``status`` and ``type``; returns the ``error`` object."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert error["type"] == kind, error
    assert isinstance(error["message"], str)
    assert error["message"]
    assert error["request_id"] == response.headers["x-request-id"]
    assert set(error) <= {"type", "message", "details", "request_id"}
    return error


@contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """``app`` under a real uvicorn server in a thread of this process (for tests that inspect
    the app's objects: spans, extra routes); yields its base URL."""
    import threading

    import uvicorn

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "uvicorn stopped during start-up"
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
