"""The context product: :class:`~relay_context.engine.context_engine.ContextEngine` and what it
is made of — models, session stores, policies, windows, the window cache, near-duplicate
collapse, per-session plans and notifications. See ``docs/context-engine.md``,
``docs/engine-store.md`` and ``docs/architecture.md``.
"""

from typing import TYPE_CHECKING, Any

from relay_context.engine.cache import (
    CacheStats,
    ContextCache,
    InProcessContextCache,
    RedisContextCache,
    open_cache,
)
from relay_context.engine.codec import CodecSet, ContentCodec, IdentityCodec
from relay_context.engine.models import (
    MessageRole,
    NewMessage,
    Session,
    StoredMessage,
    ToolCall,
    validate_session_id,
)
from relay_context.engine.policies import (
    ExtractiveSummarizer,
    Summarizer,
    get_policy,
    policy_name,
)
from relay_context.engine.store import (
    SessionStore,
    SqliteSessionStore,
    open_store,
    store_for,
)
from relay_context.engine.window import ContextWindow, WindowMessage

if TYPE_CHECKING:
    from relay_context.engine.store.postgres import PostgresSessionStore


def __getattr__(name: str) -> Any:
    # asyncpg loads only for PostgreSQL users.
    if name == "PostgresSessionStore":
        from relay_context.engine.store.postgres import PostgresSessionStore

        return PostgresSessionStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CacheStats",
    "CodecSet",
    "ContentCodec",
    "ContextCache",
    "ContextWindow",
    "ExtractiveSummarizer",
    "IdentityCodec",
    "InProcessContextCache",
    "MessageRole",
    "NewMessage",
    "PostgresSessionStore",
    "RedisContextCache",
    "Session",
    "SessionStore",
    "SqliteSessionStore",
    "StoredMessage",
    "Summarizer",
    "ToolCall",
    "WindowMessage",
    "get_policy",
    "open_cache",
    "open_store",
    "policy_name",
    "store_for",
    "validate_session_id",
]
