"""``Settings``: every knob of Relay in one pydantic-settings class.

Values come from (highest first) constructor arguments, environment variables (``APP_NAME``,
``DATABASE_URL``, ``REDIS_URL``, ``TTL_SECONDS``, ...; case-insensitive), a ``.env`` file in the
working directory, then the defaults below. With neither ``DATABASE_URL`` nor ``REDIS_URL`` set,
Relay runs on embedded defaults: SQLite in ``data_dir`` and in-process caches and limits.

The settings are flat (one env var per field). The product docs' nested spelling is accepted too:
environment variables and ``.env`` lines ``SECURITY__SECRET_KEY=...``, ``LLM__OPENAI_API_KEY=...``
(``<section>__<field>``, sections ``app``, ``database``, ``redis``, ``context``, ``security``,
``llm``, ``service``, ``telemetry``) and constructor arguments
``Settings(security__secret_key=...)`` or ``Settings(security={"secret_key": ...})`` set
``secret_key``; when both spellings are given (anywhere) the flat one wins. An optional YAML
file (``CONFIG_FILE``) may override the limits and the model table; the service reloads it when
it changes (see ``relay_context.config.live``).
"""

from __future__ import annotations

import enum
import functools
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from relay_context.config.gateway import GatewaySettings
from relay_context.config.handoff import HandoffSettings

#: Shortest ``SECRET_KEY`` accepted in production (characters).
MIN_PRODUCTION_SECRET_LENGTH = 32
#: Settings a YAML config file may set, and that the service reloads without a restart.
RELOADABLE_FIELDS = frozenset(
    {
        "rate_limit_requests",
        "rate_limit_window_seconds",
        "max_window_tokens",
        "max_sessions_per_user",
        "max_message_bytes",
        "max_request_bytes",
        "jwt_expiration_minutes",
        "ttl_seconds",
        "models",
        "gateway",
    }
)


class Environment(str, enum.Enum):
    DEVELOPMENT = "development"
    TESTING = "testing"
    STAGING = "staging"
    PRODUCTION = "production"


def _default_data_dir() -> Path:
    return Path.home() / ".relay"


class ModelLimits(BaseModel):
    """One row of the model table: what Relay assumes about a model's window."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    context_window: int = Field(ge=1)
    max_output_tokens: int | None = Field(default=None, ge=1)
    #: Tokenizer encoding (``o200k_base``, ``cl100k_base``); ``None`` uses the built-in map.
    encoding: str | None = None


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
    #: Group commit of appends: concurrent appends (to any sessions) share one transaction and
    #: one flush to disk, at most this many message rows per transaction (bounds how long one
    #: batch holds the write lock; 1 commits every append alone).
    append_batch_max_rows: int = Field(default=512, ge=1, le=100_000)
    #: How long the group commit waits for more appends before it starts a batch, in seconds.
    #: 0 adds no latency: a batch is whatever queued while the previous one was committing.
    append_batch_wait_seconds: float = Field(default=0.0, ge=0, le=1)
    #: ``redis://host:port/db``; unset means in-process caches and rate limits.
    redis_url: str | None = None
    #: ``redis_url`` names one node of a Redis Cluster (or Valkey cluster): clients discover
    #: the rest and follow its redirections (docs/deploy.md).
    redis_cluster: bool = False
    redis_max_connections: int = Field(default=50, ge=1, le=10_000)
    #: Every Redis client gives up after these (seconds): connecting, and waiting for a reply.
    #: A stalled Redis then degrades exactly as one that is down (the fallback policies).
    redis_connect_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
    redis_socket_timeout_seconds: float = Field(default=2.0, gt=0, le=60)
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
    #: Bytes of windows the in-process cache holds at most (its LRU evicts past either bound).
    context_cache_max_bytes: int = Field(default=64 * 1024 * 1024, ge=0)
    #: How long a cached context window lives (Redis or in-process), in seconds.
    context_cache_ttl_seconds: int = Field(default=300, ge=1)
    #: Bytes (estimated) of sessions the engine keeps in memory between windows: their messages,
    #: plans and near-duplicate indexes, least recently used evicted first; an evicted session is
    #: read from the store again. The session in use is kept even if alone larger.
    context_memory_max_bytes: int = Field(default=128 * 1024 * 1024, ge=0)
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

    #: Per-model windows (YAML-reloadable); models not listed use the built-in table.
    models: dict[str, ModelLimits] = Field(default_factory=dict)

    # --- security ------------------------------------------------------------------------------
    #: Signs JWTs (HS256). Unset outside production: generated once and kept in
    #: ``data_dir/secret_key``. Production requires one of at least 32 characters.
    secret_key: SecretStr | None = None
    jwt_algorithm: Literal["HS256", "RS256"] = "HS256"
    #: RS256 only: the PEM private key (or a path to it) signing tokens; ``jwt_public_key``
    #: (PEM or path) verifies them and defaults to the private key's public half.
    jwt_private_key: SecretStr | None = None
    jwt_public_key: str | None = None
    jwt_issuer: str = "relay-context"
    jwt_audience: str = "relay-context-api"
    jwt_expiration_minutes: int = Field(default=60, ge=1)
    #: Clock skew tolerated when checking ``exp``/``nbf``/``iat``, in seconds.
    jwt_leeway_seconds: int = Field(default=5, ge=0, le=300)
    rate_limit_requests: int = Field(default=100, ge=1)
    rate_limit_window_seconds: int = Field(default=60, ge=1)
    #: Live sessions a USER principal may own at once (ADMIN is not limited).
    max_sessions_per_user: int = Field(default=100, ge=1)

    # --- HTTP service ----------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    #: Origins allowed by CORS (``["*"]`` for any; empty: no CORS headers). JSON list in env.
    cors_origins: list[str] = Field(default_factory=list)
    #: Largest request body accepted, in bytes (413 above).
    max_request_bytes: int = Field(default=4 * 1024 * 1024, ge=1)
    #: Largest request head (request line and headers) answered normally, in bytes (431 above).
    max_header_bytes: int = Field(default=32 * 1024, ge=1024, le=16 * 1024 * 1024)
    #: ``relay serve``: seconds a connection has to send a complete request head, from its
    #: opening or from the first byte of a later request (slowloris); then it is closed.
    header_read_timeout_seconds: float = Field(default=10.0, gt=0, le=3600)
    #: Seconds within which a request's whole body must arrive, from the app's first read
    #: (408 and the connection closed after).
    body_read_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    #: ``relay serve``: seconds an idle kept-alive connection stays open after a response.
    keep_alive_timeout_seconds: float = Field(default=5.0, gt=0, le=3600)
    #: ``relay serve``: open connections per worker process; one more is answered 503 and closed.
    max_connections: int = Field(default=1000, ge=1, le=1_000_000)
    #: YAML file overriding the limits and the model table; reloaded when it changes.
    config_file: Path | None = None
    #: How often (at most) the service looks at ``config_file``'s modification time, in seconds.
    config_reload_interval_seconds: float = Field(default=2.0, ge=0)
    #: OTLP/HTTP endpoint for traces (``http://collector:4318``); unset: no export.
    otel_exporter_otlp_endpoint: str | None = None
    otel_service_name: str = "relay-context"
    #: Seconds between heartbeat comments on an idle SSE stream (context and dashboard).
    sse_heartbeat_seconds: float = Field(default=15.0, gt=0, le=3600)
    #: Seconds between two snapshots on the dashboard's stream.
    dashboard_interval_seconds: float = Field(default=2.0, gt=0, le=3600)
    #: Seconds uvicorn waits for open connections (SSE streams) at shutdown before closing them.
    shutdown_grace_seconds: int = Field(default=5, ge=0, le=600)
    #: Seconds between two ``malloc_trim`` calls handing the C heap's free pages back to the
    #: OS (glibc only; 0 disables): without them a fragmented heap keeps RSS creeping up.
    heap_trim_interval_seconds: float = Field(default=30.0, ge=0, le=86400)
    #: Freeze the objects built at start-up out of the garbage collector's walks (``relay
    #: serve`` only; service/gc_freeze.py): a full collection then takes ~0 ms, not ~90 ms.
    gc_freeze: bool = True

    # --- handoff relay -----------------------------------------------------------------------
    #: The handoff relay's settings (``HANDOFF_*`` variables; see ``config/handoff.py``).
    handoff: HandoffSettings = Field(default_factory=HandoffSettings)

    # --- LLM providers (used by the gateway) ---------------------------------------------------
    openai_api_key: SecretStr | None = None
    anthropic_api_key: SecretStr | None = None
    #: The LLM gateway (``config/gateway.py``; its own environment names, YAML ``gateway:``).
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The nested spelling of environment variables (SECURITY__SECRET_KEY) and of the .env
        # file, below the flat ones of the same place; _accept_nested_spelling maps them.
        return (
            init_settings,
            env_settings,
            _NestedEnvSource(settings_cls, from_dotenv=False),
            dotenv_settings,
            _NestedEnvSource(settings_cls, from_dotenv=True),
            file_secret_settings,
        )

    @model_validator(mode="before")
    @classmethod
    def _accept_nested_spelling(cls, data: Any) -> Any:
        """``security__secret_key=...`` / ``security={"secret_key": ...}`` (the product docs'
        nested form) map to the flat fields; a flat value given as well wins."""
        if not isinstance(data, dict):
            return data
        flat: dict[str, Any] = {}
        nested: dict[str, Any] = {}
        for key, value in data.items():
            name = key.lower() if isinstance(key, str) else key
            if isinstance(name, str) and "__" in name:
                nested[name.rsplit("__", 1)[1]] = value
            elif (
                isinstance(name, str)
                and name in _SECTIONS
                and isinstance(value, dict)
                and name not in cls.model_fields
            ):
                for sub_key, sub_value in value.items():
                    nested[str(sub_key).lower()] = sub_value
            else:
                flat[key] = value
        for name, value in nested.items():
            if name in cls.model_fields and name not in flat:
                flat[name] = value
        return flat

    @field_validator(
        "database_url", "redis_url", "config_file", "otel_exporter_otlp_endpoint", mode="before"
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _production_needs_a_secret(self) -> Settings:
        if self.environment is Environment.PRODUCTION:
            key = self.secret_key.get_secret_value() if self.secret_key else ""
            if len(key) < MIN_PRODUCTION_SECRET_LENGTH:
                raise ValueError(
                    "SECRET_KEY is required in production and must have at least "
                    f"{MIN_PRODUCTION_SECRET_LENGTH} characters (got "
                    f"{'none' if not key else f'{len(key)} characters'})"
                )
        if (
            self.jwt_algorithm == "RS256"
            and self.jwt_private_key is None
            and not (self.jwt_public_key)
        ):
            raise ValueError("JWT_ALGORITHM=RS256 needs JWT_PRIVATE_KEY and/or JWT_PUBLIC_KEY")
        return self

    def resolved_secret_key(self) -> SecretStr:
        """``secret_key``, or (outside production) the one generated once and kept in
        ``data_dir/secret_key`` (mode 0600), so tokens survive restarts."""
        if self.secret_key is not None:
            return self.secret_key
        path = self.data_dir / "secret_key"
        try:
            text = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            text = ""
        if not text:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            text = secrets.token_urlsafe(48)
            # O_EXCL: two processes starting at once agree on one key (the loser reads it).
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                text = path.read_text(encoding="utf-8").strip()
            else:
                with os.fdopen(fd, "w", encoding="utf-8") as out:
                    out.write(text + "\n")
        return SecretStr(text)

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


#: Section names of the nested spelling (``security__secret_key``, ``redis={...}``, ...).
_SECTIONS = frozenset(
    {"app", "database", "redis", "context", "security", "llm", "service", "telemetry"}
)


class _NestedEnvSource(PydanticBaseSettingsSource):
    """``<SECTION>__<FIELD>`` variables (``SECURITY__SECRET_KEY``, ``LLM__OPENAI_API_KEY``), from
    the environment or from the ``.env`` file, as ``section__field`` keys: the model validator
    maps them to the flat field unless the flat one is set too. Only the known sections count, so
    unrelated ``X__Y`` variables are ignored; names are case-insensitive."""

    def __init__(self, settings_cls: type[BaseSettings], *, from_dotenv: bool) -> None:
        super().__init__(settings_cls)
        self.from_dotenv = from_dotenv

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ reads every variable at once

    def _variables(self) -> Mapping[str, str | None]:
        if not self.from_dotenv:
            return os.environ
        env_file = self.config.get("env_file")
        if not isinstance(env_file, str | os.PathLike) or not Path(env_file).is_file():
            return {}
        return dotenv_values(env_file, encoding=self.config.get("env_file_encoding"))

    def __call__(self) -> dict[str, Any]:
        fields = self.settings_cls.model_fields
        found: dict[str, Any] = {}
        for key, value in self._variables().items():
            section, delimiter, name = key.lower().partition("__")
            if not delimiter or section not in _SECTIONS or name not in fields or value is None:
                continue
            field = fields[name]
            found[f"{section}__{name}"] = (
                self.decode_complex_value(name, field, value)
                if self.field_is_complex(field)
                else value
            )
        return found


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings from the environment (cached)."""
    return Settings()
