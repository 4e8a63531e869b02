"""``relay usage``: the gateway's usage ledger, asked of a running service
(``GET /api/v1/gateway/usage``), with the same credentials and address options as
``relay stats``: a key sees its own usage, an admin everyone's."""

from __future__ import annotations

import json
from typing import Any

import click

from relay_context.cli.stats import _default_url


def _print_table(group_by: str, rows: list[dict[str, Any]]) -> None:
    header = (
        group_by,
        "requests",
        "input",
        "output",
        "cached",
        "cost_usd",
        "saved_usd",
        "cache_hits",
        "coalesced",
    )
    table = [
        (
            str(r[group_by]),
            str(r["requests"]),
            str(r["input_tokens"]),
            str(r["output_tokens"]),
            str(r["cached_input_tokens"]),
            f"{r['cost_usd']:.6f}",
            # A service older than these columns reports none: shown as 0.
            f"{r.get('saved_usd', 0.0):.6f}",
            str(r.get("cache_hits", 0)),
            str(r.get("coalesced", 0)),
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header))]
    for row in [header, *table]:
        click.echo(
            "  ".join(
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )


@click.command()
@click.option(
    "--group-by", type=click.Choice(["key", "model", "day"]), default="model", show_default=True
)
@click.option("--since", default=None, help="ISO-8601 date or time (default: everything).")
@click.option("--url", envvar="RELAY_URL", default=None, help="Service URL (RELAY_URL).")
@click.option("--api-key", envvar="RELAY_API_KEY", default=None, help="API key (RELAY_API_KEY).")
@click.option("--token", envvar="RELAY_TOKEN", default=None, help="JWT (RELAY_TOKEN).")
@click.option("--json", "as_json", is_flag=True, help="Print the JSON the service returned.")
def usage(
    group_by: str,
    since: str | None,
    url: str | None,
    api_key: str | None,
    token: str | None,
    as_json: bool,
) -> None:
    """Gateway requests, tokens and cost per key, model or day, from a running `relay serve`."""
    import httpx

    if api_key and token:
        raise click.UsageError("give --api-key or --token, not both")
    if not api_key and not token:
        raise click.UsageError("a credential is required: --api-key/RELAY_API_KEY or --token")
    headers = {"X-API-Key": api_key} if api_key else {"Authorization": f"Bearer {token}"}
    base = (url or _default_url()).rstrip("/")
    params = {"group_by": group_by, **({"since": since} if since else {})}
    try:
        response = httpx.get(base + "/api/v1/gateway/usage", params=params, headers=headers)
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach {base}: {exc}") from exc
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200:
        error = body.get("error") if isinstance(body, dict) else None
        message = error.get("message") if isinstance(error, dict) else response.text[:300]
        raise click.ClickException(f"{response.status_code}: {message}")
    if as_json:
        click.echo(json.dumps(body, indent=2))
    else:
        _print_table(group_by, body["data"])
