"""Every gateway route, as one router for ``create_app`` (``app.include_router(gateway.router)``).
The handlers talk only to :meth:`relay_context.gateway.Gateway.handle`."""

from __future__ import annotations

from fastapi import APIRouter

from relay_context.service.routes import gateway_anthropic, gateway_openai

router = APIRouter()
router.include_router(gateway_openai.router)
router.include_router(gateway_anthropic.router)

__all__ = ["router"]
