"""``deploy/grafana/dashboards/relay-gateway.json`` is a valid Grafana dashboard and every metric
its queries name is one Relay exports on ``/metrics`` after real gateway traffic (calls through
both providers, a retried upstream error, a rate-limit rejection, a prompt-cache read)."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import openai
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from fake_upstream import Scenario
from gateway_support import jwt_for, running_gateway
from relay_context.security.auth import UserRole
from service_support import REPO

GRAFANA = REPO / "deploy" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "relay-gateway.json"
METRIC_NAME = re.compile(r"\brelay_[a-z0-9_]+\b")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every sample name /metrics shows after gateway traffic."""
    with running_gateway(tmp_path_factory.mktemp("deploy-gateway")) as rig:
        oa = openai.OpenAI(base_url=rig.v1, api_key=rig.key, max_retries=0)
        oa.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": "hello " * 80 + "fake:cached=32"}]
        )
        rig.upstream.push(Scenario(status=503))  # retried, then answered
        oa.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "again"}])
        assert rig.post(
            "/v1/messages",
            {
                "model": "claude-sonnet-4-5",
                "max_tokens": 16,
                "messages": [{"role": "user", "content": "hi"}],
            },
            {"anthropic-version": "2023-06-01"},
        ).is_success
        admin = {"authorization": f"Bearer {jwt_for('root', UserRole.ADMIN)}"}
        key_id = httpx.get(rig.url + "/api/v1/keys", headers=admin).json()[0]["id"]
        httpx.put(
            rig.url + f"/api/v1/gateway/keys/{key_id}/limits", json={"rpm": 1}, headers=admin
        ).raise_for_status()
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "limited"}]}
        statuses = {rig.post("/v1/chat/completions", body).status_code for _ in range(2)}
        assert 429 in statuses
        rig.gateway.stats.record_cache("miss")
        text = httpx.get(rig.url + "/metrics").text
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return names


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def test_the_gateway_dashboard_is_valid_grafana_json() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] == "relay-gateway"
    assert (
        dashboard["uid"] != json.loads((GRAFANA / "dashboards" / "relay.json").read_text())["uid"]
    )
    assert isinstance(dashboard["schemaVersion"], int)
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    datasource = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    uid = datasource["datasources"][0]["uid"]
    cells: set[tuple[int, int]] = set()
    for p in panels:
        assert p["datasource"]["uid"] == uid, p["title"]
        assert p["type"] in {"row", "timeseries", "stat", "gauge", "state-timeline"}, p["type"]
        pos = p["gridPos"]
        assert 0 <= pos["x"] < pos["x"] + pos["w"] <= 24, p["title"]
        covered = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not covered & cells, f"{p['title']} overlaps another panel"
        cells |= covered
        if p["type"] != "row":
            assert p["targets"], p["title"]
            assert len({t["refId"] for t in p["targets"]}) == len(p["targets"])
            for t in p["targets"]:
                assert t["datasource"]["uid"] == uid
                assert t["expr"].count("(") == t["expr"].count(")"), t["expr"]


def test_every_gateway_metric_has_a_panel_and_exists(exported: set[str]) -> None:
    expressions = [t["expr"] for p in _dashboard()["panels"] for t in p["targets"]]
    used = {name for e in expressions for name in METRIC_NAME.findall(e)}
    wanted = {
        "relay_gateway_requests_total",
        "relay_upstream_latency_seconds_bucket",
        "relay_gateway_overhead_seconds_bucket",
        "relay_request_tokens_bucket",
        "relay_gateway_tokens_total",
        "relay_gateway_cost_usd_total",
        "relay_circuit_breaker_state",
        "relay_rate_limit_rejections_total",
        "relay_gateway_retries_total",
        "relay_cache_hits_total",
        "relay_cache_misses_total",
        "relay_coalesced_requests_total",
        "relay_saved_usd_total",
        "relay_prompt_cache_tokens_total",
    }
    assert wanted <= used, sorted(wanted - used)
    assert used <= exported, sorted(used - exported)
