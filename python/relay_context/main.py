"""Entry point of the service: ``uvicorn relay_context.main:app`` (or ``relay serve``).

``from relay_context.main import create_app`` builds an app for given settings; ``app`` is built
on first access, from the environment, so importing this module has no side effects.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from relay_context.config.settings import Settings
from relay_context.service.app import create_app
from relay_context.service.gc_freeze import freeze_heap_after_startup
from relay_context.service.server import configure_connection_limits
from relay_context.service.telemetry import configure_logging


def serve_app() -> FastAPI:
    """The app for the settings in the environment, with JSON logs on standard error (the
    factory ``relay serve`` gives uvicorn)."""
    settings = Settings()
    configure_logging(settings.log_level)
    # Each worker process calls this factory before it accepts connections.
    configure_connection_limits(settings)
    app = create_app(settings)
    if settings.gc_freeze:
        app.router.lifespan_context = freeze_heap_after_startup(app.router.lifespan_context)
    return app


def __getattr__(name: str) -> Any:
    if name == "app":
        app = serve_app()
        globals()["app"] = app
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["app", "create_app", "serve_app"]  # noqa: F822 - ``app`` is built on first access
