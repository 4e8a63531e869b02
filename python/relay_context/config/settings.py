"""``Settings``: every knob of Relay in one pydantic-settings class.

Values come from (highest first) constructor arguments, environment variables (``APP_NAME``,
``DATABASE_URL``, ``REDIS_URL``, ``TTL_SECONDS``, ...; case-insensitive), a ``.env`` file in the
working directory, then the defaults below. With neither ``DATABASE_URL`` nor ``REDIS_URL`` set,
Relay runs on embedded defaults: SQLite in ``data_dir`` and in-process caches and limits.
"""

from __future__ import annotations

import enum
import functools
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Environment(str, enum.Enum):
    DEVELOPMENT = "development"
    TESTING = "testing"
    STAGING = "staging"
    PRODUCTION = "production"


def _default_data_dir() -> Path:
    return Path.home() / ".relay"


class Settings(BaseSettings):
    """Relay's settings. See ``docs/configuration.md`` for each one."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="__",
        extra="ignore",
        case_sensitive=False,
        validate_default=True,
    )

    # --- application -----------------------------------------------------------------------
    app_name: str = "relay-context"
    environment: Environment = Environment.DEVELOPMENT
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    #: Where embedded state lives (the SQLite database, the generated development secret key).
    data_dir: Path = Field(default_factory=_default_data_dir)

    # --- storage ---------------------------------------------------------------------------
    #: ``postgresql://...`` (also ``postgresql+asyncpg://...``) or ``sqlite:///path``; unset
    #: means SQLite at ``data_dir/relay.db``.
    database_url: str | None = None
    database_pool_size: int = Field(default=20, ge=1, le=1000)
    #: PostgreSQL schema holding Relay's tables (created if missing); lower case, as PostgreSQL
    #: folds unquoted names.
    database_schema: str = Field(default="public", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    #: How long a statement may wait for a lock or a pooled connection (SQLite busy timeout,
    #: PostgreSQL pool acquire and command timeout), in seconds.
    database_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    #: SQLite ``synchronous``: FULL also survives power loss; NORMAL (WAL) survives a crash of
    #: the process but may lose the last commits on power loss.
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "FULL"
    #: ``redis://host:port/db``; unset means in-process caches and rate limits.
    redis_url: str | None = None
    redis_max_connections: int = Field(default=50, ge=1, le=10_000)
    #: Prefix of every Redis key Relay writes (share one Redis between deployments or tests).
    redis_key_prefix: str = "relay:"

    # --- context engine ----------------------------------------------------------------------
    max_window_tokens: int = Field(default=128_000, ge=1)
    default_model: str = "gpt-4o"
    compression_algorithm: Literal["zstd", "lz4"] = "zstd"
    compression_level: int = 3
    ttl_seconds: int = Field(default=3600, ge=1)
    #: How often the engine purges expired sessions from the store (0 disables the sweep;
    #: expired sessions are invisible either way).
    session_sweep_interval_seconds: float = Field(default=60.0, ge=0)
    #: Largest message content accepted, in bytes of UTF-8.
    max_message_bytes: int = Field(default=1_000_000, ge=1)
    #: Hot context windows kept by the in-process cache (when Redis is not configured).
    context_cache_entries: int = Field(default=1024, ge=0)
    #: How long a cached context window lives (Redis or in-process), in seconds.
    context_cache_ttl_seconds: int = Field(default=300, ge=1)
    #: Context policy used when ``get_context`` is not given one: ``knapsack`` (value-optimal
    #: selection), ``recent`` (the tail) or ``summarize`` (the tail plus a summary of the rest).
    context_policy: Literal["knapsack", "recent", "summarize"] = "knapsack"
    #: ``recent`` policy: past this many tokens in a session, keep only the system prompt and
    #: the last ``recent_keep_messages`` messages.
    recent_threshold_tokens: int = Field(default=180_000, ge=1)
    recent_keep_messages: int = Field(default=7, ge=1)
    #: ``recent`` policy: a longer message is cut on a token boundary to this many tokens.
    max_message_tokens: int = Field(default=20_000, ge=16)
    #: Messages this similar (rapidfuzz ``ratio`` / 100) to a later one of the same role are
    #: collapsed into the later one; 1.0 collapses exact repeats only, above 1 disables.
    dedup_threshold: float = Field(default=0.95, gt=0.0, le=1.01)
    #: Topic drift compares the last ``drift_recent_messages`` messages with the
    #: ``drift_earlier_messages`` before them.
    drift_recent_messages: int = Field(default=6, ge=1)
    drift_earlier_messages: int = Field(default=24, ge=1)
    #: ``knapsack`` policy: a message's recency weight halves every this many messages.
    recency_half_life_messages: float = Field(default=20.0, gt=0)
    #: ``summarize`` policy: the summary of dropped turns takes at most this many tokens (and at
    #: most a quarter of the budget).
    summary_max_tokens: int = Field(default=1024, ge=16)
    #: ``subscribe`` re-reads the store this often when no notification arrives (the
    #: cross-process path without Redis), in seconds.
    subscribe_poll_seconds: float = Field(default=1.0, gt=0, le=3600)
    #: Owner recorded on sessions that ``add_message`` creates without an explicit ``owner``.
    default_owner: str = "anonymous"

    # --- security ------------------------------------------------------------------------------
    secret_key: SecretStr | None = None
    jwt_algorithm: Literal["HS256", "RS256"] = "HS256"
    jwt_expiration_minutes: int = Field(default=60, ge=1)
    rate_limit_requests: int = Field(default=100, ge=1)
    rate_limit_window_seconds: int = Field(default=60, ge=1)

    @field_validator("database_url", "redis_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @property
    def sqlite_path(self) -> Path:
        """The SQLite file used when ``database_url`` is unset or a ``sqlite:///`` URL."""
        url = self.database_url
        if url and url.startswith("sqlite:///"):
            return Path(url.removeprefix("sqlite:///"))
        return self.data_dir / "relay.db"

    @property
    def uses_postgres(self) -> bool:
        scheme = (self.database_url or "").split(":", 1)[0]
        return scheme.split("+", 1)[0] in ("postgres", "postgresql")


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings from the environment (cached)."""
    return Settings()
