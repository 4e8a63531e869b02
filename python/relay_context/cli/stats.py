"""``relay stats SESSION_ID``: a session's statistics, asked of a running service.

It goes through the HTTP API (``GET /api/v1/context/{id}/stats``) rather than the database, so
the same roles and ownership apply as for any client: the credential is an API key
(``--api-key`` / ``RELAY_API_KEY``) or a JWT (``--token`` / ``RELAY_TOKEN``); the service's
address is ``--url`` / ``RELAY_URL`` (default ``http://HOST:PORT`` of the settings).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import click


def _default_url() -> str:
    from relay_context.config.settings import Settings

    try:
        settings = Settings()
    except Exception:  # the URL is all we need; bad unrelated settings should not stop us
        return "http://127.0.0.1:8080"
    return f"http://{settings.host}:{settings.port}"


def _print_table(stats: dict[str, Any]) -> None:
    rows = [
        ("session", stats["session_id"]),
        ("owner", stats["owner"]),
        ("messages", stats["message_count"]),
        ("last seq", stats["last_seq"]),
        ("total tokens", f"{stats['total_tokens']} ({stats['encoding']})"),
    ]
    for role, tokens in sorted(stats["tokens_by_role"].items()):
        rows.append((f"  {role}", f"{tokens} tokens, {stats['messages_by_role'][role]} messages"))
    rows += [
        ("content bytes", stats["content_bytes"]),
        ("stored bytes", stats["stored_bytes"]),
        ("compression", f"{stats['compression_ratio']:.2f}x ({stats['bytes_saved']} B saved)"),
        ("drift score", f"{stats['drift_score']:.3f}"),
        (
            "near-duplicates",
            f"{stats['near_duplicates']} ({stats['near_duplicate_tokens']} tokens)",
        ),
        ("created", stats["created_at"]),
        ("updated", stats["updated_at"]),
        ("expires", stats["expires_at"]),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        click.echo(f"{name.ljust(width)}  {value}")


@click.command()
@click.argument("session_id")
@click.option("--url", envvar="RELAY_URL", default=None, help="Service URL (RELAY_URL).")
@click.option("--api-key", envvar="RELAY_API_KEY", default=None, help="API key (RELAY_API_KEY).")
@click.option("--token", envvar="RELAY_TOKEN", default=None, help="JWT (RELAY_TOKEN).")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON the service returned.")
@click.option(
    "--timeout", type=click.FloatRange(min=0.1), default=10.0, show_default=True, help="Seconds."
)
def stats(
    session_id: str,
    url: str | None,
    api_key: str | None,
    token: str | None,
    as_json: bool,
    timeout: float,
) -> None:
    """Statistics of SESSION_ID (messages, tokens per role, compression, drift) from a running
    `relay serve`, with an API key or a JWT (`relay token USER --role ...`)."""
    import httpx

    if api_key and token:
        raise click.UsageError("give --api-key or --token, not both")
    if not api_key and not token:
        raise click.UsageError("a credential is required: --api-key/RELAY_API_KEY or --token")
    headers = {"X-API-Key": api_key} if api_key else {"Authorization": f"Bearer {token}"}
    base = (url or _default_url()).rstrip("/")
    path = f"/api/v1/context/{quote(session_id, safe='')}/stats"
    try:
        response = httpx.get(base + path, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach {base}: {exc}") from exc
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200:
        message = (
            body["error"]["message"]
            if isinstance(body, dict) and isinstance(body.get("error"), dict)
            else response.text[:300]
        )
        raise click.ClickException(f"{response.status_code}: {message}")
    if as_json:
        click.echo(json.dumps(body, indent=2))
    else:
        _print_table(body)
