"""The HTTP service: ``create_app`` (``service/app.py``), its routes, dependencies, errors,
metrics and telemetry. ``relay serve`` runs it with uvicorn."""

from relay_context.service.app import create_app

__all__ = ["create_app"]
