"""``GET /dashboard`` in headless Chromium (``browser_support``): the numbers the page shows
are the API's. The gateway's panels: test_gateway_dashboard.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from browser_support import Browser, open_browser
from context_service_support import CONTEXT, post_message
from service_support import Server, create_key, run_server, service_env

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


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    with open_browser(tmp_path / "profile") as opened:
        yield opened


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("dashboard")
    env = service_env(data / "state", dashboard_interval_seconds="0.3", rate_limit_requests="500")
    with run_server(env, data) as running:
        yield running


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
        FIELDS, lambda s: s["status"] == "live" and s["sessions-active"] == "2", "the live figures"
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
    browser.wait_for(FIELDS, lambda s: s["sessions-active"] == "3", "the third session")


def test_the_dashboard_refuses_a_non_admin_credential(server: Server, browser: Browser) -> None:
    key = create_key(server.env, "viewer", owner="someone")["key"]
    browser.call("Page.navigate", url=f"{server.url}/dashboard#key={key}")
    shown = browser.wait_for(FIELDS, lambda s: s["status"] == "disconnected", "the refusal")
    assert "may not" in shown["error"]
    assert browser.evaluate("document.getElementById('login').hidden") is False
    assert shown["tokens-used"] == "\u2013"  # the placeholder dash: no figures shown
