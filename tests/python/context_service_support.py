"""Helpers of the context-route tests: principals as JWTs signed with the test secret, message
posting, SSE reading and Prometheus parsing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from relay_context.config.settings import Environment, Settings
from relay_context.security.auth import AuthService, UserRole
from service_support import TEST_SECRET

CONTEXT = "/api/v1/context"


def auth_service() -> AuthService:
    return AuthService(Settings(environment=Environment.TESTING, secret_key=SecretStr(TEST_SECRET)))


def bearer(user_id: str, role: str) -> dict[str, str]:
    token = auth_service().create_access_token(user_id, UserRole(role))
    return {"Authorization": f"Bearer {token}"}


def post_message(
    client: httpx.Client,
    headers: dict[str, str],
    session_id: str,
    content: str,
    role: str = "user",
    **extra: Any,
) -> httpx.Response:
    body = {"session_id": session_id, "role": role, "content": content, **extra}
    return client.post(f"{CONTEXT}/messages", headers=headers, json=body)


def sse_events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """Parses an SSE line stream into events ``{"id", "event", "data"}``; comment lines come as
    ``{"comment": text}``."""
    event: dict[str, Any] = {}
    for line in lines:
        if line == "":
            if event:
                yield event
            event = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "data":
                event["data"] = event.get("data", "") + value
            else:
                event[field] = value


def metric_samples(text: str) -> dict[str, float]:
    """``name{label="v",...}`` (labels sorted) -> value, parsed with prometheus_client's parser."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out
