"""The gateway's dashboard panels and ``GET /api/v1/gateway/stats``: real traffic through the
gateway (the openai and anthropic SDKs against the fake upstream), then headless Chromium shows
the API's numbers — savings, hit rates, coalesced requests, cached-prefix tokens, spend by
provider and model, breaker states — and draws the series with uPlot, in either theme."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from browser_support import Browser, open_browser
from fake_upstream import FakeUpstream
from gateway_support import UPSTREAM_KEY, GatewayRig, jwt_for, running_gateway
from relay_context.security.auth import UserRole

GATEWAY_FIELDS = (
    "status",
    "error",
    "gw-saved-usd",
    "gw-cost-usd",
    "gw-requests",
    "gw-errors",
    "gw-exact-rate",
    "gw-exact-hits",
    "gw-fuzzy-rate",
    "gw-fuzzy-hits",
    "gw-coalesced",
    "gw-misses",
    "gw-lookups",
    "gw-prompt-cache-tokens",
    "gw-input-tokens",
    "gw-output-tokens",
    "theme-name",
)
LONG_PROMPT = "Explain the build of this repository step by step, please. " * 20
DARK_BG, LIGHT_BG = "rgb(15, 18, 23)", "rgb(247, 248, 250)"


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayRig]:
    with running_gateway(
        tmp_path_factory.mktemp("gateway-dashboard"), FakeUpstream(required_key=UPSTREAM_KEY)
    ) as running:
        yield running


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    with open_browser(tmp_path / "profile") as opened:
        yield opened


def _drive_traffic(rig: GatewayRig) -> None:
    """OpenAI and Anthropic calls (one streamed, two with provider prompt-cache reads), one
    refused request, and the cache outcomes the response caches report."""
    oa = openai.OpenAI(base_url=rig.v1, api_key=rig.key, max_retries=0)
    for i in range(2):
        oa.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": f"question {i}"}]
        )
    oa.chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": LONG_PROMPT + " fake:cached=64"}]
    )
    stream = oa.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "stream it"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    assert [c for c in stream]
    an = anthropic.Anthropic(base_url=rig.url, api_key=rig.key, max_retries=0)
    an.messages.create(
        model="claude-sonnet-4-5",
        max_tokens=64,
        messages=[{"role": "user", "content": LONG_PROMPT + " fake:cached=128"}],
    )
    with pytest.raises(openai.NotFoundError):
        oa.chat.completions.create(
            model="no-such-model", messages=[{"role": "user", "content": "hi"}]
        )
    # The response caches and the coalescer report their outcomes through the same recorder.
    stats = rig.gateway.stats
    for kind, saved in (("exact", 0.002), ("exact", 0.003), ("fuzzy", 0.001), ("coalesced", 0.004)):
        stats.record_cache(kind, saved_usd=saved)
    for _ in range(4):
        stats.record_cache("miss")


def _api_stats(rig: GatewayRig, token: str) -> dict[str, Any]:
    response = httpx.get(
        rig.url + "/api/v1/gateway/stats", headers={"authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    stats: dict[str, Any] = response.json()
    return stats


def test_the_stats_api_reports_real_traffic_and_is_for_admins(rig: GatewayRig) -> None:
    admin = jwt_for("root", UserRole.ADMIN)
    before = _api_stats(rig, admin)
    _drive_traffic(rig)
    after = _api_stats(rig, admin)
    totals, was = after["totals"], before["totals"]
    assert totals["requests"] - was["requests"] == 6
    assert totals["errors"] - was["errors"] == 1
    assert totals["prompt_cache_tokens"] - was["prompt_cache_tokens"] == 64 + 128
    assert totals["cached_input_tokens"] - was["cached_input_tokens"] == 64 + 128
    assert totals["cost_usd"] > was["cost_usd"]
    # Cache hits and the prompt-cache discount: gpt-4o reads at 1.25 instead of 2.5 per 1M,
    # claude-sonnet-4 at 0.3 instead of 3.0.
    discount = 64 * 1.25e-6 + 128 * 2.7e-6
    assert totals["saved_usd"] - was["saved_usd"] == pytest.approx(0.010 + discount)
    rows = {(r["provider"], r["model"]): r for r in after["spend"]}
    assert {"gpt-4o", "gpt-4o-mini", "claude-sonnet-4-5"} <= {m for _, m in rows}
    assert sum(r["cost_usd"] for r in after["spend"]) == pytest.approx(totals["cost_usd"])
    assert set(after["breakers"].values()) == {"closed"}
    assert len(after["breakers"]) >= 2  # the openai and the anthropic deployments
    hour = after["series"]["hour"]
    assert sum(hour["requests"]) == totals["requests"]
    assert sum(hour["exact_hits"]) == after["cache"]["exact_hits"]
    # Only an admin sees everyone's spend.
    user = httpx.get(
        rig.url + "/api/v1/gateway/stats", headers={"authorization": f"Bearer {rig.key}"}
    )
    assert user.status_code == 403
    assert httpx.get(rig.url + "/api/v1/gateway/stats").status_code == 401
    # The same figures are in the dashboard's snapshot.
    snap = httpx.get(
        rig.url + "/api/v1/dashboard/snapshot", headers={"authorization": f"Bearer {admin}"}
    ).json()
    assert snap["gateway"]["totals"] == _api_stats(rig, admin)["totals"]


def _charts(browser: Browser) -> dict[str, Any]:
    """Each chart's data as uPlot holds it, and whether its canvas has pixels drawn."""
    script = """JSON.stringify(Object.fromEntries(Object.entries(relayDashboard.charts).map(
      ([name, u]) => {
        const canvas = u.root.querySelector("canvas");
        const ctx = canvas.getContext("2d");
        const pixels = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
        let painted = 0;
        for (let i = 3; i < pixels.length; i += 4) if (pixels[i]) painted++;
        return [name, {data: u.data, width: canvas.width, painted,
                       legend: [...u.root.querySelectorAll(".u-series .u-label")]
                         .map(e => e.textContent)}];
      })))"""
    charts: dict[str, Any] = json.loads(browser.evaluate(script))
    return charts


def _number(text: str) -> float:
    return float(text.replace(",", "").rstrip("%"))


def test_the_dashboard_shows_the_gateway_figures_and_charts(
    rig: GatewayRig, browser: Browser
) -> None:
    admin = jwt_for("root", UserRole.ADMIN)
    _drive_traffic(rig)
    api = _api_stats(rig, admin)
    browser.call(
        "Emulation.setEmulatedMedia",
        features=[{"name": "prefers-color-scheme", "value": "dark"}],
    )
    browser.call("Page.navigate", url=f"{rig.url}/dashboard#token={admin}")
    shown = browser.wait_for(
        GATEWAY_FIELDS,
        lambda s: s["status"] == "live" and s["gw-requests"] == f"{api['totals']['requests']:,}",
        "the gateway figures",
    )
    assert shown["error"] == ""
    totals, cache = api["totals"], api["cache"]
    assert shown["gw-saved-usd"] == f"{totals['saved_usd']:.6f}"
    assert float(shown["gw-saved-usd"]) > 0
    assert shown["gw-cost-usd"] == f"{totals['cost_usd']:.6f}"
    assert _number(shown["gw-errors"]) == totals["errors"] >= 1
    assert shown["gw-exact-rate"] == f"{100 * cache['exact_hit_rate']:.1f}%"
    assert shown["gw-fuzzy-rate"] == f"{100 * cache['fuzzy_hit_rate']:.1f}%"
    assert _number(shown["gw-exact-hits"]) == cache["exact_hits"] >= 2
    assert _number(shown["gw-fuzzy-hits"]) == cache["fuzzy_hits"] >= 1
    assert _number(shown["gw-coalesced"]) == cache["coalesced"] >= 1
    assert _number(shown["gw-misses"]) == cache["misses"]
    assert _number(shown["gw-lookups"]) == cache["lookups"]
    assert _number(shown["gw-prompt-cache-tokens"]) == totals["prompt_cache_tokens"] >= 192
    assert _number(shown["gw-input-tokens"]) == totals["input_tokens"]
    assert _number(shown["gw-output-tokens"]) == totals["output_tokens"]
    spend = json.loads(
        browser.evaluate(
            "JSON.stringify([...document.querySelectorAll('#gw-spend tr')].map("
            "tr => [...tr.children].map(td => td.textContent)))"
        )
    )
    assert spend == [
        [
            r["provider"],
            r["model"],
            f"{r['requests']:,}",
            f"{r['input_tokens']:,}",
            f"{r['output_tokens']:,}",
            f"{r['cached_input_tokens']:,}",
            f"{r['cost_usd']:.6f}",
        ]
        for r in api["spend"]
    ]
    breakers = json.loads(
        browser.evaluate(
            "JSON.stringify(Object.fromEntries([...document.querySelectorAll("
            "'#gw-breakers li')].map(li => [li.dataset.upstream, "
            "li.querySelector('strong').dataset.breaker])))"
        )
    )
    assert breakers == api["breakers"]
    assert len(breakers) >= 2

    # Charts: uPlot canvases holding the API's series, with pixels drawn.
    charts = _charts(browser)
    assert set(charts) == {"requests", "tokens", "spend", "hit_rate"}
    hour = api["series"]["hour"]
    for chart in charts.values():
        assert chart["width"] > 0
        assert chart["painted"] > 100
        assert len(chart["data"][0]) == len(hour["t"]) == 60
    assert sum(charts["requests"]["data"][1]) == sum(hour["requests"]) == totals["requests"]
    assert sum(charts["requests"]["data"][2]) == totals["errors"]
    assert sum(charts["tokens"]["data"][1]) == totals["input_tokens"]
    assert sum(charts["tokens"]["data"][3]) == totals["cached_input_tokens"]
    assert sum(charts["spend"]["data"][2]) == pytest.approx(totals["saved_usd"])
    rates = [r for r in charts["hit_rate"]["data"][1] if r is not None]
    assert rates
    assert all(0 < r <= 1 for r in rates)
    assert charts["tokens"]["legend"][1:] == ["Input", "Output", "Cached prefix"]
    browser.evaluate(
        "(() => { const s = document.getElementById('chart-range'); s.value = 'day';"
        " s.dispatchEvent(new Event('change')); })()"
    )
    day = _charts(browser)["requests"]["data"]
    assert len(day[0]) == 288
    assert sum(day[1]) == totals["requests"]

    # Theme: the system's (dark, emulated) until the toggle picks light, then dark again.
    background = "getComputedStyle(document.body).backgroundColor"
    assert browser.evaluate(background) == DARK_BG
    assert shown["theme-name"] == "dark (system)"
    browser.evaluate("document.getElementById('theme-toggle').click()")
    assert browser.evaluate(background) == LIGHT_BG
    assert browser.evaluate("document.documentElement.dataset.theme") == "light"
    assert browser.fields(["theme-name"])["theme-name"] == "light"
    assert browser.evaluate("localStorage.getItem('relay.dashboard.theme')") == "light"
    assert browser.evaluate("relayDashboard.builtFor") == "day/light"  # charts rebuilt
    assert _charts(browser)["requests"]["painted"] > 100
    browser.evaluate("document.getElementById('theme-toggle').click()")
    assert browser.evaluate(background) == DARK_BG
    assert browser.fields(["theme-name"])["theme-name"] == "dark"
