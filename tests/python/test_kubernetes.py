"""The Kubernetes deployment: the plain manifests in ``deploy/kubernetes/`` and the Helm chart in
``deploy/helm/relay`` validate against the Kubernetes schemas, the chart's defaults render exactly
the plain manifests, and the Deployment's own environment starts a real ``relay serve`` on
PostgreSQL + Redis whose probes answer as the manifest expects. (No cluster runs here: what a
cluster would check — schemas, and the process the pod runs — is checked.)"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import kubernetes_validate
import pytest
import yaml

from relay_context.config.settings import Settings
from service_support import REPO, TEST_SECRET, create_key, real_backends, run_server, service_env

MANIFESTS = REPO / "deploy" / "kubernetes"
CHART = REPO / "deploy" / "helm" / "relay"
#: The Kubernetes version the manifests are validated against (schemas ship in the package).
KUBERNETES_VERSION = "1.31.0"
#: Labels only Helm adds; the plain manifests leave them out.
HELM_ONLY_LABELS = ("helm.sh/chart", "app.kubernetes.io/managed-by")
#: The helm binary from the `helm-binary` test dependency, beside this interpreter.
HELM = Path(sys.executable).parent / "helm"


def _documents(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def _plain() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for path in sorted(MANIFESTS.glob("*.yaml")):
        docs += _documents(path.read_text())
    return docs


def _render(*args: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [str(HELM), "template", "relay", str(CHART), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return _documents(result.stdout)


def _by_kind(docs: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def _without_helm_labels(doc: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    labels = doc["metadata"].get("labels", {})
    for label in HELM_ONLY_LABELS:
        labels.pop(label, None)
    return doc


def _deployment(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    return deployment


def test_the_plain_manifests_are_valid_kubernetes_objects() -> None:
    docs = _plain()
    assert {d["kind"] for d in docs} == {
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "Service",
        "ServiceAccount",
    }
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_a_broken_manifest_is_refused_by_the_schema_check() -> None:
    # The check above can fail: a typo in a container field is caught.
    deployment = copy.deepcopy(_deployment(_plain()))
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_the_chart_renders_valid_objects_equal_to_the_plain_manifests() -> None:
    lint = subprocess.run([str(HELM), "lint", "--strict", str(CHART)], capture_output=True)
    assert lint.returncode == 0, lint.stdout.decode() + lint.stderr.decode()
    rendered = _render()
    for doc in rendered:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        assert doc["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    chart = {k: _without_helm_labels(v) for k, v in _by_kind(rendered).items()}
    plain = _by_kind(_plain())
    assert chart.keys() == plain.keys()
    for key, doc in plain.items():
        assert chart[key] == doc, f"{key}: deploy/kubernetes differs from the chart's render"


def test_chart_values_change_the_render() -> None:
    fixed = _by_kind(
        _render(
            "--set",
            "autoscaling.enabled=false",
            "--set",
            "replicaCount=5",
            "--set",
            "image.tag=1.2.3",
            "--set",
            "env.LOG_LEVEL=DEBUG",
        )
    )
    assert ("HorizontalPodAutoscaler", "relay") not in fixed
    deployment = fixed["Deployment", "relay"]
    assert deployment["spec"]["replicas"] == 5
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "relay-context:1.2.3"
    assert {"name": "LOG_LEVEL", "value": "DEBUG"} in container["env"]
    # With the autoscaler on, the Deployment leaves the replica count to it.
    assert "replicas" not in _deployment(_render())["spec"]


def test_the_pod_runs_unprivileged_with_limits_and_probes() -> None:
    deployment = _deployment(_plain())
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    # The Dockerfile's user: the UID the pod asks for owns the image's home directory.
    assert "--uid 10001 relay" in (REPO / "Dockerfile").read_text()
    assert pod["securityContext"]["runAsUser"] == 10001
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert set(container["resources"]) == {"requests", "limits"}
    assert container["readinessProbe"]["httpGet"]["path"] == "/health"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    hpa = _by_kind(_plain())["HorizontalPodAutoscaler", "relay"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"


def _pod_environment(deployment: dict[str, Any]) -> tuple[dict[str, str], dict[str, bool]]:
    """The container's literal variables, and its Secret references (name -> optional)."""
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    plain: dict[str, str] = {}
    secrets: dict[str, bool] = {}
    for var in container["env"]:
        if "value" in var:
            plain[var["name"]] = var["value"]
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            assert ref["name"] == "relay-secrets"
            secrets[var["name"]] = bool(ref.get("optional", False))
    return plain, secrets


def test_every_variable_the_pod_sets_is_a_relay_setting() -> None:
    plain, secrets = _pod_environment(_deployment(_plain()))
    known = {name.upper() for name in Settings.model_fields}
    unknown = set(plain) | set(secrets)
    unknown -= known | {"PYTHONDONTWRITEBYTECODE"}
    assert not unknown, f"not Relay settings: {sorted(unknown)}"
    assert {name for name, optional in secrets.items() if not optional} == {
        "SECRET_KEY",
        "DATABASE_URL",
        "REDIS_URL",
    }


def test_the_pods_environment_starts_relay_on_postgres_and_redis(
    pg_dsn: str, redis_server: str, tmp_path: Path
) -> None:
    """What the pod would run: its literal settings (paths moved under tmp_path, the address to
    loopback), the Secret's keys filled with test values, the ConfigMap's file as CONFIG_FILE."""
    docs = _by_kind(_plain())
    plain, _ = _pod_environment(docs["Deployment", "relay"])
    config_dir = tmp_path / "etc-relay"
    config_dir.mkdir()
    for name, text in docs["ConfigMap", "relay-config"]["data"].items():
        (config_dir / name).write_text(text)
    assert plain["CONFIG_FILE"].startswith("/etc/relay/")
    plain["CONFIG_FILE"] = str(config_dir / Path(plain["CONFIG_FILE"]).name)
    plain["DATA_DIR"] = str(tmp_path / "data")
    plain.pop("HOST")  # run_server binds loopback
    plain.pop("PORT")
    with real_backends(pg_dsn, redis_server, "k8s") as backends:
        secret = {
            "SECRET_KEY": TEST_SECRET,
            "DATABASE_URL": backends["database_url"],
            "REDIS_URL": backends["redis_url"],
        }
        env = service_env(
            tmp_path / "data",
            **plain,
            **secret,
            database_schema=backends["database_schema"],
            redis_key_prefix=backends["redis_key_prefix"],
        )
        with run_server(env, tmp_path / "logs") as server:
            live = server.client.get("/health/live")
            assert live.status_code == 200
            assert live.json()["status"] == "alive"
            ready = server.client.get("/health")
            assert ready.status_code == 200, ready.text
            body = ready.json()
            assert body["environment"] == "production"
            assert body["checks"]["database"]["backend"] == "postgresql"
            assert body["checks"]["redis"]["status"] == "healthy"
            # The ConfigMap's model table is what the gateway serves.
            key = create_key(env, "user")["key"]
            models = httpx.get(
                server.url + "/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=30
            )
            assert models.status_code == 200, models.text
            names = {m["id"] for m in models.json()["data"]}
            assert {"gpt-4o-mini", "claude-sonnet"} <= names
