"""``relay mcp``: the handoff relay's MCP server over stdio (needs ``relay-context[mcp]``)."""

from __future__ import annotations

import click


@click.command("mcp")
@click.option("--url", envvar=["RELAY_URL", "CONTEXTRELAY_URL"], default=None, help="The relay.")
@click.option("--api-key", envvar=["RELAY_API_KEY", "CONTEXTRELAY_API_KEY"], default=None)
def mcp(url: str | None, api_key: str | None) -> None:
    """Serve push_context, pull_context, peek_context, publish and bridge_task over MCP (stdio)."""
    try:
        from relay_context.integrations.mcp_server import run_stdio
    except ImportError as exc:
        raise click.ClickException(
            f"the MCP server needs the mcp package: pip install 'relay-context[mcp]' ({exc})"
        ) from exc
    run_stdio(url, api_key)
