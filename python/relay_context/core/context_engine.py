"""``relay_context.core.context_engine``: the documented import path of the context engine,
which lives in :mod:`relay_context.engine.context_engine` (the context product, above the
kernel facades of ``core``). The engine loads on first use of a name, so importing ``core``
never imports ``engine``; this alias is the one import up from ``core`` that the architecture
contracts allow (``ignore_imports`` in pyproject.toml)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from relay_context.engine.context_engine import (
        ContextEngine,
        ContextWindow,
        MessageRole,
        SessionStats,
        WindowMessage,
    )

__all__ = ["ContextEngine", "ContextWindow", "MessageRole", "SessionStats", "WindowMessage"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from relay_context.engine import context_engine

        return getattr(context_engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
