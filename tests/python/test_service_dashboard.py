"""``GET /dashboard`` in headless Chromium (Debian's ``chromium``), driven over the DevTools
protocol (``--remote-debugging-port`` + ``websockets``): the numbers the page shows are the
API's. Chromium missing fails the test (scripts/bootstrap installs it)."""

from __future__ import annotations

import contextlib
import itertools
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from context_service_support import CONTEXT, post_message
from service_support import Server, create_key, run_server, service_env

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-port=0",
)
#: The figures the page shows, by element id.
FIELDS = (
    "status",
    "tokens-used",
    "tokens-budget",
    "tokens-percent",
    "tokens-counted",
    "rate-limit",
    "rate-window",
    "rate-remaining",
    "sessions-active",
    "sessions-created",
    "compression-ratio",
    "compression-saved",
    "auth-jwt",
    "auth-keys",
    "auth-principal",
    "error",
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("dashboard")
    env = service_env(data / "state", dashboard_interval_seconds="0.3", rate_limit_requests="500")
    with run_server(env, data) as running:
        yield running


class Browser:
    """One headless Chromium page, driven over the DevTools protocol."""

    def __init__(self, profile: Path) -> None:
        binary = shutil.which("chromium") or shutil.which("chromium-browser")
        if binary is None:
            pytest.fail("chromium is required (apt-get install chromium; scripts/bootstrap)")
        self.process = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            assert self.process.poll() is None, "chromium exited during start-up"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.1)
        port = int(port_file.read_text().splitlines()[0])
        targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        page = next(t for t in targets if t["type"] == "page")
        self._stack = contextlib.ExitStack()
        self.ws: ClientConnection = self._stack.enter_context(
            connect(page["webSocketDebuggerUrl"], max_size=None)
        )
        self._ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=30))
            if message.get("id") == call_id:
                assert "error" not in message, message
                result: dict[str, Any] = message["result"]
                return result

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def fields(self) -> dict[str, str]:
        script = (
            "JSON.stringify(Object.fromEntries("
            + json.dumps(list(FIELDS))
            + ".map(id => [id, (document.getElementById(id) || {}).textContent || ''])))"
        )
        shown: dict[str, str] = json.loads(self.evaluate(script))
        return shown

    def wait_for(self, predicate: Any, what: str) -> dict[str, str]:
        deadline = time.monotonic() + 30
        while True:
            shown = self.fields()
            if predicate(shown):
                return shown
            assert time.monotonic() < deadline, f"the page never showed {what}: {shown}"
            time.sleep(0.1)

    def close(self) -> None:
        try:
            self._stack.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    opened = Browser(tmp_path / "profile")
    try:
        yield opened
    finally:
        opened.close()


def _number(text: str) -> float:
    return float(text.replace(",", "").rstrip("%x"))


def test_the_dashboard_shows_the_api_numbers(server: Server, browser: Browser) -> None:
    key = create_key(server.env, "admin", owner="ops")["key"]
    admin = {"X-API-Key": key}
    c = server.client
    post_message(c, admin, "dash", "You are a weather assistant.", role="system")
    for i, city in enumerate(("Paris", "Tokyo", "Lima", "Oslo", "Cairo", "Quito")):
        post_message(c, admin, "dash", f"Will it rain in {city} on day {i}? " + "Please. " * i)
    window = c.get(f"{CONTEXT}/dash", headers=admin, params={"budget": 70}).json()
    assert window["tokens_saved"] > 0
    post_message(c, admin, "dash-2", "A second session.")

    browser.call("Page.navigate", url=f"{server.url}/dashboard#key={key}")
    shown = browser.wait_for(
        lambda s: s["status"] == "live" and s["sessions-active"] == "2", "the live figures"
    )
    api = c.get("/api/v1/dashboard/snapshot", headers=admin).json()
    assert _number(shown["tokens-used"]) == window["tokens_used"] == api["tokens"]["used"]
    assert _number(shown["tokens-budget"]) == 128000 == api["tokens"]["budget"]
    assert shown["tokens-percent"] == f"{100 * window['tokens_used'] / 128000:.1f}%"
    assert _number(shown["tokens-counted"]) == api["tokens"]["counted_total"] > 0
    assert _number(shown["sessions-active"]) == api["sessions"]["active"] == 2
    assert _number(shown["sessions-created"]) == api["sessions"]["created_total"] == 2
    assert shown["compression-ratio"] == f"{window['total_tokens'] / window['tokens_used']:.2f}"
    assert _number(shown["compression-saved"]) == window["tokens_saved"]
    assert _number(shown["rate-limit"]) == 500
    assert _number(shown["rate-window"]) == 60
    assert 0 <= _number(shown["rate-remaining"]) < 500
    assert shown["auth-jwt"] == "HS256 active"
    assert _number(shown["auth-keys"]) == api["auth"]["api_keys_active"] >= 1
    assert shown["auth-principal"] == "ops (admin, api_key)"
    # The credential left the address bar; the page keeps following the stream.
    assert browser.evaluate("window.location.hash") == ""
    post_message(c, admin, "dash-3", "A third session.")
    browser.wait_for(lambda s: s["sessions-active"] == "3", "the third session")


def test_the_dashboard_refuses_a_non_admin_credential(server: Server, browser: Browser) -> None:
    key = create_key(server.env, "viewer", owner="someone")["key"]
    browser.call("Page.navigate", url=f"{server.url}/dashboard#key={key}")
    shown = browser.wait_for(lambda s: s["status"] == "disconnected", "the refusal")
    assert "may not" in shown["error"]
    assert browser.evaluate("document.getElementById('login').hidden") is False
    assert shown["tokens-used"] == "\u2013"  # the placeholder dash: no figures shown
