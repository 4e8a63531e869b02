"""The OpenAPI document describes the service (issue 9): error statuses with the error schema,
security schemes, schemas of roles and session ids, Server-Sent Events; then schemathesis with
every check, stateful phase included, against a running ``relay serve``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from context_service_support import bearer
from relay_context.config.settings import Settings
from relay_context.core.encodings import SHIPPED_ENCODINGS
from relay_context.core.model_encodings import (
    MODEL_PREFIX_TO_ENCODING,
    MODEL_TO_ENCODING,
    encoding_name_for_model,
)
from relay_context.engine.models import SESSION_ID_PATTERN, validate_session_id
from relay_context.errors import InvalidSessionIdError, UnknownModelError
from relay_context.service.app import create_app
from relay_context.service.openapi import MODEL_SCHEMA
from service_support import TEST_SECRET, Server, assert_error, run_server, service_env

ADMIN = bearer("openapi-admin", "admin")


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    data = tmp_path_factory.mktemp("openapi-doc")
    app = create_app(Settings(data_dir=data, secret_key=TEST_SECRET))  # type: ignore[arg-type]
    spec: dict[str, Any] = app.openapi()
    return spec


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("openapi")
    # The rate limit is raised for schemathesis's few thousand requests.
    env = service_env(data / "state", rate_limit_requests="1000000")
    with run_server(env, data) as running:
        yield running


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def error_ref(response: dict[str, Any]) -> str:
    ref: str = response["content"]["application/json"]["schema"]["$ref"]
    return ref


def test_error_statuses_are_documented_with_the_error_schema(document: dict[str, Any]) -> None:
    authenticated = 0
    for path, method, operation in operations(document):
        if not path.startswith("/api/"):
            continue
        authenticated += 1
        responses = operation["responses"]
        expected = {"401", "403", "429"}
        if operation.get("parameters") or operation.get("requestBody"):
            expected |= {"422"}
        if "{" in path:
            expected |= {"404"}
        assert expected <= set(responses), (method, path, sorted(responses))
        for status, response in responses.items():
            if status.startswith(("4", "5")):
                assert error_ref(response) == "#/components/schemas/ErrorResponse", (path, status)
        # The service's 422 has the one shape, not FastAPI's HTTPValidationError.
        assert "HTTPValidationError" not in str(responses)
    assert authenticated >= 10
    messages = document["paths"]["/api/v1/context/messages"]["post"]["responses"]
    assert {"400", "413"} <= set(messages)


def test_security_schemes_and_route_security(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": schemes["HTTPBearer"]["description"],
    }
    assert schemes["APIKeyHeader"]["type"] == "apiKey"
    assert schemes["APIKeyHeader"]["in"] == "header"
    assert schemes["APIKeyHeader"]["name"] == "X-API-Key"
    for path, method, operation in operations(document):
        security = operation.get("security")
        if path.startswith("/api/"):
            # Either credential on its own is enough.
            assert security == [{"HTTPBearer": []}, {"APIKeyHeader": []}], (method, path)
        else:
            assert security is None, (method, path)


def test_role_enum_and_session_id_pattern(document: dict[str, Any]) -> None:
    schema = document["components"]["schemas"]["MessageIn"]["properties"]
    assert schema["role"]["enum"] == ["system", "user", "assistant", "tool"]
    assert schema["session_id"]["pattern"] == SESSION_ID_PATTERN
    assert schema["session_id"]["maxLength"] == 128
    for path, _, operation in operations(document):
        for parameter in operation.get("parameters", []):
            if parameter["name"] == "session_id":
                assert parameter["schema"]["pattern"] == SESSION_ID_PATTERN, path
    pattern = re.compile(SESSION_ID_PATTERN)
    for candidate in [".", "..", "a", ".a.", "a..b", "x" * 128, "bad id", "", "é", "a/b"]:
        try:
            validate_session_id(candidate)
            accepted = True
        except InvalidSessionIdError:
            accepted = False
        assert accepted == (pattern.fullmatch(candidate) is not None and len(candidate) <= 128)


def test_streams_declare_text_event_stream(document: dict[str, Any]) -> None:
    for path in ("/api/v1/dashboard/stream", "/api/v1/context/{session_id}/stream"):
        content = document["paths"][path]["get"]["responses"]["200"]["content"]
        assert list(content) == ["text/event-stream"], path


def test_links_lead_from_creation_to_the_new_id(document: dict[str, Any]) -> None:
    created = document["paths"]["/api/v1/context/messages"]["post"]["responses"]["201"]
    assert created["links"]["GetContext"] == {
        "operationId": "get_context",
        "parameters": {"session_id": "$response.body#/session_id"},
    }
    assert "schema" in created["content"]["application/json"]


def test_options_lists_every_method_of_the_path(server: Server) -> None:
    response = server.client.options("/api/v1/context/some-id", headers=ADMIN)
    assert_error(response, 405, "method_not_allowed")
    assert set(response.headers["allow"].split(", ")) == {"GET", "DELETE"}
    keys = server.client.request("PUT", "/api/v1/keys", headers=ADMIN)
    assert set(keys.headers["allow"].split(", ")) == {"GET", "POST"}


SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
SCHEMATHESIS_CONFIG = Path(__file__).parent / "openapi_fuzz" / "schemathesis.toml"
SCHEMATHESIS_HOOKS = Path(__file__).parent / "openapi_fuzz" / "hooks.py"


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("schemathesis")
    env = service_env(
        data / "state",
        rate_limit_requests="1000000",  # a few thousand requests from one principal
        dashboard_interval_seconds="0.2",  # so that a stream's events come quickly
        sse_heartbeat_seconds="0.5",
    )
    with run_server(env, data) as running:
        yield running


@pytest.mark.slow
def test_schemathesis_every_check_passes(fuzzed_server: Server, tmp_path: Path) -> None:
    """schemathesis with every check (``checks.enabled = true`` in its config file, which also
    holds the one documented exception), every phase (stateful included), a bounded number of
    examples per operation and deterministic generation, against the running server as an
    ADMIN. A failure prints schemathesis's report, with a curl line per case."""
    command = [
        str(SCHEMATHESIS),
        "--config-file",
        str(SCHEMATHESIS_CONFIG),
        "run",
        f"{fuzzed_server.url}/openapi.json",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        "30",
        "--generation-deterministic",  # no random seed, no example database: same cases
        "--header",
        f"Authorization: {ADMIN['Authorization']}",
        "--request-timeout",
        "20",
        "--workers",
        "1",
        "--no-color",
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": str(SCHEMATHESIS_HOOKS)}
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=900, cwd=tmp_path, env=env
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-20_000:]
    assert "No issues found" in output, output[-5000:]
    # Every operation was exercised, the stateful phase included.
    assert re.search(r"(\d+) selected / \1 total", output), output[-5000:]
    assert "Stateful" in output


def _resolves(model: str) -> bool:
    if model in SHIPPED_ENCODINGS:
        return True
    try:
        encoding_name_for_model(model)
    except UnknownModelError:
        return False
    return True


_JUNK = ["/", " ", "\n", "\u3000", "ft:", "openai", "x", "-2024", ":org", "", "é", "\x00"]
_PIECES = st.sampled_from(
    [*MODEL_TO_ENCODING, *MODEL_PREFIX_TO_ENCODING, *SHIPPED_ENCODINGS, *_JUNK]
)


@settings(max_examples=500, derandomize=True, deadline=None)
@given(st.lists(_PIECES, max_size=5).map("".join) | st.text(max_size=12))
def test_the_model_pattern_is_exactly_what_resolves(model: str) -> None:
    assert (re.search(MODEL_SCHEMA["pattern"], model) is not None) == _resolves(model), model


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.from_regex(MODEL_SCHEMA["pattern"]))
def test_every_model_the_pattern_generates_resolves(model: str) -> None:
    assert _resolves(model), model
