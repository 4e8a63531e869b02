"""The context engine's persistence layer: models, session stores, the context-window cache.

The engine itself (policies, ``ContextEngine``) builds on these; see ``docs/engine-store.md``.
"""

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
from relay_context.engine.store import (
    PostgresSessionStore,
    SessionStore,
    SqliteSessionStore,
    open_store,
    store_for,
)

__all__ = [
    "CacheStats",
    "CodecSet",
    "ContentCodec",
    "ContextCache",
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
    "ToolCall",
    "open_cache",
    "open_store",
    "store_for",
    "validate_session_id",
]
