"""The deployment files parse, wire the five services together, and every metric their queries
name is one the app exports on ``/metrics``. (No Docker engine runs here: the files are checked,
not started.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from relay_context.config.settings import Environment, Settings
from relay_context.service.app import create_app
from service_support import REPO, TEST_SECRET, serve_in_thread

DEPLOY = REPO / "deploy"
#: ``relay_...`` identifiers in PromQL (not followed by a label name's ``=`` or a ``(``).
METRIC_NAME = re.compile(r"\brelay_[a-z0-9_]+\b")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every sample name the app's /metrics shows (histogram _bucket/_sum/_count included)."""
    settings = Settings(
        environment=Environment.TESTING,
        secret_key=SecretStr(TEST_SECRET),
        data_dir=tmp_path_factory.mktemp("deploy"),
        log_level="WARNING",
    )
    app = create_app(settings)
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        client.get("/health")  # one request, so the labelled series exist
        client.get("/api/v1/context/x")  # and one error
        text = client.get("/metrics").text
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    return names


def _load_yaml(path: Path) -> dict[str, object]:
    loaded = yaml.safe_load(path.read_text())
    assert isinstance(loaded, dict), path
    return loaded


def _metrics_in(expressions: list[str]) -> set[str]:
    return {name for e in expressions for name in METRIC_NAME.findall(e)}


def test_compose_runs_the_five_services() -> None:
    compose = _load_yaml(REPO / "docker-compose.yml")
    services = compose["services"]
    assert isinstance(services, dict)
    assert set(services) == {"relay", "postgres", "redis", "prometheus", "grafana"}
    relay = services["relay"]
    assert relay["build"] == "."
    assert relay["ports"] == ["8080:8080"]
    env = relay["environment"]
    assert env["DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert "@postgres:5432/" in env["DATABASE_URL"]
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    assert set(relay["depends_on"]) == {"postgres", "redis"}
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (REPO / source).exists(), f"{name} mounts missing {source}"


def test_dockerfile_builds_and_serves() -> None:
    text = (REPO / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim-bookworm AS build$", text, re.M)
    assert 'CMD ["relay", "serve"]' in text
    assert "EXPOSE 8080" in text
    assert "/health" in text
    assert "USER relay" in text


def test_prometheus_scrapes_the_api_and_its_rules_use_real_metrics(exported: set[str]) -> None:
    config = _load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    (job,) = config["scrape_configs"]  # type: ignore[misc]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["relay:8080"]
    rules = _load_yaml(DEPLOY / "prometheus" / "alerts.yml")
    expressions = [r["expr"] for g in rules["groups"] for r in g["rules"]]  # type: ignore[attr-defined]
    used = _metrics_in(expressions)
    assert len(used) >= 6
    assert used <= exported, sorted(used - exported)


def test_grafana_dashboard_uses_real_metrics(exported: set[str]) -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "relay.json").read_text())
    expressions = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = _metrics_in(expressions)
    for wanted in (
        "relay_context_tokens_used",
        "relay_context_max_tokens",
        "relay_context_drift_score",
        "relay_cache_hit_rate",
        "relay_rate_limit_remaining",
        "relay_sessions_active",
        "relay_compression_ratio",
        "relay_compression_saved_tokens_total",
        "relay_api_keys_active",
        "relay_http_request_duration_seconds_bucket",
    ):
        assert wanted in used, wanted
    assert used <= exported, sorted(used - exported)
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    datasource = _load_yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    uid = datasource["datasources"][0]["uid"]  # type: ignore[index]
    assert all(p["datasource"]["uid"] == uid for p in dashboard["panels"])
    provider = _load_yaml(DEPLOY / "grafana" / "provisioning" / "dashboards" / "relay.yml")
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"  # type: ignore[index]
