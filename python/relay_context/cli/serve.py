"""``relay serve``: the HTTP service under uvicorn, on embedded defaults unless configured."""

from __future__ import annotations

import ipaddress

import click

from relay_context.config.settings import Settings


@click.command()
@click.option("--host", default=None, help="Address to bind (default: HOST or 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default: PORT or 8080).")
@click.option("--reload", is_flag=True, help="Restart when the code changes (development).")
@click.option(
    "--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Processes."
)
def serve(host: str | None, port: int | None, reload: bool, workers: int) -> None:
    """Run the Relay service (GET /health, /metrics, /docs, the API).

    Settings come from the environment (DATABASE_URL, REDIS_URL, SECRET_KEY, ...; see
    docs/service.md). With none set it needs no other server: SQLite and the secret key live in
    ~/.relay (DATA_DIR), rate limits are kept in process.
    """
    import uvicorn
    from pydantic import ValidationError

    from relay_context.service.server import uvicorn_options

    try:
        settings = Settings()
    except ValidationError as exc:
        raise click.ClickException(f"invalid settings: {exc}") from exc
    bind_host = host or settings.host
    bind_port = port or settings.port
    if (
        settings.gateway.auth == "open"
        and not settings.gateway.allow_open_remote
        and not _is_loopback(bind_host)
    ):
        raise click.ClickException(
            f"GATEWAY_AUTH=open on {bind_host} would let anyone reach the LLM gateway with this "
            "server's provider keys: bind a loopback address, or set GATEWAY_ALLOW_OPEN_REMOTE=true"
        )
    uvicorn.run(
        "relay_context.main:serve_app",
        factory=True,
        host=bind_host,
        port=bind_port,
        reload=reload,
        workers=None if reload else workers,
        log_config=None,  # the app logs JSON itself (service/telemetry.py)
        access_log=False,  # the request middleware writes one line per request
        proxy_headers=False,
        server_header=False,
        # Connection limits (header, idle and body deadlines, connection cap, head size) and
        # the graceful-shutdown bound: service/server.py.
        **uvicorn_options(settings),
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
