"""Hostile input to the service (issue 9): lone surrogates anywhere in a body, bodies sent
without credentials, session ids made of dots. ``relay serve`` on embedded defaults, driven with
httpx (raw bytes where JSON escapes matter)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from context_service_support import CONTEXT, bearer, post_message
from relay_context import ContextEngine
from relay_context.config.settings import Settings
from relay_context.engine.models import validate_session_id
from relay_context.errors import (
    InvalidSessionIdError,
    InvalidUnicodeError,
    RelayError,
    SessionNotFoundError,
)
from relay_context.service.errors import STATUS_BY_ERROR, status_for
from service_support import TEST_SECRET, Server, assert_error, run_server, service_env

ADMIN = bearer("hostile-admin", "admin")
USER = bearer("hostile-user", "user")
CALL = {"id": "call_1", "type": "function", "function": {"name": "add", "arguments": "{}"}}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("hostile")
    env = service_env(data / "state", rate_limit_requests="1000")
    with run_server(env, data) as running:
        yield running


def post_raw(client: httpx.Client, headers: dict[str, str], text: str) -> httpx.Response:
    """``text`` as the body exactly (``\\udfff`` stays a JSON escape, as an attacker sends it)."""
    return client.post(
        f"{CONTEXT}/messages",
        headers={**headers, "Content-Type": "application/json"},
        content=text.encode(),
    )


# (session id, the message's fields as JSON text with escapes, the field the 422 must name)
SURROGATES = [
    ("meta-value", '"content": "ok", "metadata": {"k": "\\udfff"}', "metadata.k"),
    ("meta-key", '"content": "ok", "metadata": {"\\ud800": 1}', "metadata.\\ud800"),
    ("meta-deep", '"content": "ok", "metadata": {"a": [{"b": ["x", "\\ud800"]}]}', "a.0.b.1"),
    ("content", '"content": "\\ud800"', "content"),
    ("name", '"content": "ok", "name": "\\ud800"', "name"),
    (
        "tool-id",
        '"role": "assistant", "content": "", "tool_calls": [{"id": "\\ud800", "type": '
        '"function", "function": {"name": "f", "arguments": "{}"}}]',
        "tool_calls.0.id",
    ),
    (
        "tool-args",
        '"role": "assistant", "content": "", "tool_calls": [{"id": "c", "type": "function", '
        '"function": {"name": "f", "arguments": "\\udc00"}}]',
        "tool_calls.0.function.arguments",
    ),
]


@pytest.mark.parametrize(("sid", "fields", "where"), SURROGATES, ids=[s[0] for s in SURROGATES])
def test_lone_surrogates_are_a_422_naming_the_field_and_leave_no_session(
    server: Server, sid: str, fields: str, where: str
) -> None:
    session = f"surrogate-{sid}"
    role = "" if '"role"' in fields else '"role": "user", '
    response = post_raw(server.client, USER, f'{{"session_id": "{session}", {role}{fields}}}')
    error = assert_error(response, 422, "validation_error")
    assert where in error["message"], error
    assert "surrogate" in error["message"]
    assert error["details"][0]["type"] == "invalid_unicode"
    # Nothing was created: the id is still unknown and the user's quota untouched.
    assert_error(server.client.get(f"{CONTEXT}/{session}", headers=USER), 404, "session_not_found")
    ok = post_message(server.client, USER, session, "fine")
    assert ok.status_code == 201, ok.text
    assert ok.json()["created_session"] is True


def test_a_surrogate_in_an_existing_session_stores_nothing(server: Server) -> None:
    assert post_message(server.client, ADMIN, "surrogate-existing", "one").status_code == 201
    response = post_raw(
        server.client,
        ADMIN,
        '{"session_id": "surrogate-existing", "role": "user", "content": "a\\udfffb"}',
    )
    assert_error(response, 422, "validation_error")
    stats = server.client.get(f"{CONTEXT}/surrogate-existing/stats", headers=ADMIN).json()
    assert stats["message_count"] == 1


def test_surrogates_in_other_bodies(server: Server) -> None:
    response = server.client.post(
        "/api/v1/keys",
        headers={**ADMIN, "Content-Type": "application/json"},
        content=b'{"name": "\\ud800", "role": "viewer"}',
    )
    error = assert_error(response, 422, "validation_error")
    assert "body.name" in error["message"]


async def test_python_api_refuses_lone_surrogates(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, secret_key=TEST_SECRET)  # type: ignore[arg-type]
    cases: list[tuple[str, dict[str, Any]]] = [
        ("message content", {"content": "\ud800"}),
        ("message metadata['k']", {"metadata": {"k": "\udfff"}}),
        ("the key message metadata['\\ud800']", {"metadata": {"\ud800": 1}}),
        ("message metadata['a'][1]", {"metadata": {"a": ["x", "\ud800"]}}),
        ("message name", {"name": "\ud800"}),
        (
            "tool call id",
            {"role": "assistant", "content": "", "tool_calls": [{**CALL, "id": "\ud800"}]},
        ),
    ]
    async with ContextEngine(settings) as engine:
        for where, fields in cases:
            arguments: dict[str, Any] = {"role": "user", "content": "ok", **fields}
            with pytest.raises(InvalidUnicodeError) as caught:
                await engine.add_message("py-surrogates", **arguments)
            assert where in str(caught.value)
            assert "lone surrogate" in str(caught.value)
            assert isinstance(caught.value, RelayError)
            assert isinstance(caught.value, ValueError)
        # No session was created by the refused first messages.
        with pytest.raises(SessionNotFoundError):
            await engine.messages("py-surrogates")
    assert status_for(InvalidUnicodeError("x")) == 422
    assert InvalidUnicodeError not in STATUS_BY_ERROR  # through InvalidArgumentError


def test_unauthenticated_bodies_are_not_parsed(server: Server) -> None:
    """A malformed or oversized-to-validate body without credentials is a 401 charged to the
    client address (with the X-RateLimit-* headers), never a 422."""
    for body in (b'{"session_id":', b'{"session_id": "x", "role": "user", "content": "\\ud800"}'):
        response = server.client.post(
            f"{CONTEXT}/messages", content=body, headers={"Content-Type": "application/json"}
        )
        assert_error(response, 401, "authentication")
        assert response.headers["www-authenticate"] == "Bearer"
        assert int(response.headers["x-ratelimit-limit"]) == 1000
        assert "x-ratelimit-remaining" in response.headers
        forged = server.client.post(
            f"{CONTEXT}/messages",
            content=body,
            headers={"Content-Type": "application/json", "X-API-Key": "relay_" + "x" * 43},
        )
        assert_error(forged, 401, "authentication")
        assert "x-ratelimit-reset" in forged.headers
    keys = server.client.post(
        "/api/v1/keys", content=b"[", headers={"Content-Type": "application/json"}
    )
    assert_error(keys, 401, "authentication")
    # With credentials the same body is the 422 it always was.
    response = server.client.post(
        f"{CONTEXT}/messages",
        content=b'{"session_id":',
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    assert_error(response, 422, "validation_error")
    assert response.headers["x-ratelimit-limit"] == "1000"


def test_anonymous_malformed_posts_are_rate_limited(tmp_path: Path) -> None:
    env = service_env(tmp_path / "state", rate_limit_requests="5")
    with run_server(env, tmp_path) as running:
        statuses = [
            running.client.post(
                f"{CONTEXT}/messages",
                content=b'{"session_id":',
                headers={"Content-Type": "application/json"},
            ).status_code
            for _ in range(8)
        ]
    assert statuses == [401] * 5 + [429] * 3


@pytest.mark.parametrize("sid", [".", "..", "...", "." * 128])
def test_session_ids_made_of_dots_are_refused(server: Server, sid: str) -> None:
    response = post_message(server.client, ADMIN, sid, "hello")
    error = assert_error(response, 422, "invalid_session_id")
    assert "dots" in error["message"]
    with pytest.raises(InvalidSessionIdError):
        validate_session_id(sid)


@pytest.mark.parametrize("sid", [".a", "a.", "a..b", "..x..", "v1.2"])
def test_ids_with_dots_and_more_are_fine(server: Server, sid: str) -> None:
    assert post_message(server.client, ADMIN, sid, "hello").status_code == 201
    assert server.client.get(f"{CONTEXT}/{sid}", headers=ADMIN).status_code == 200


def test_surrogate_json_text_is_what_the_client_sent() -> None:
    # The test bodies above are JSON escapes, not raw surrogates (httpx could not encode those).
    assert json.loads('"\\ud800"') == "\ud800"


@pytest.mark.parametrize("value", [b"\xb2", b"1\xb9", b"null", b"-1", b"1" * 19])
def test_last_event_id_must_be_ascii_digits(server: Server, value: bytes) -> None:
    """Header bytes are read as Latin-1, where "\xb2" is "²": ``str.isdigit`` accepts it and
    ``int`` refuses it, which was a 500."""
    assert post_message(server.client, ADMIN, "resume-digits", "one").status_code == 201
    response = server.client.get(
        f"{CONTEXT}/resume-digits/stream", headers=[*ADMIN.items(), ("Last-Event-ID", value)]
    )
    assert_error(response, 422, "invalid_argument")


def test_a_budget_the_pinned_messages_do_not_fit_is_a_409(server: Server) -> None:
    system = "You are a careful assistant who always answers in full sentences. " * 4
    assert post_message(server.client, ADMIN, "tight", system, role="system").status_code == 201
    response = server.client.get(f"{CONTEXT}/tight", headers=ADMIN, params={"budget": 10})
    assert_error(response, 409, "infeasible_budget")
