"""The context engine's persistence layer: models, session stores, the context-window cache.

Policies, windows and notifications of ``ContextEngine`` live here too; see
``docs/engine-store.md`` and ``docs/context-engine.md``.
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
from relay_context.engine.policies import (
    ExtractiveSummarizer,
    Summarizer,
    get_policy,
    policy_name,
)
from relay_context.engine.store import (
    PostgresSessionStore,
    SessionStore,
    SqliteSessionStore,
    open_store,
    store_for,
)
from relay_context.engine.window import ContextWindow, WindowMessage

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
