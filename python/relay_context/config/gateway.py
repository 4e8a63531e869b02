"""``GatewaySettings``: the LLM gateway's settings, one field (``Settings.gateway``) of Relay's.

From the environment (the names the official SDKs and the product briefs use):
``GATEWAY_AUTH`` (``keys`` | ``passthrough`` | ``open``), ``GATEWAY_CONTEXT_POLICY`` (``fit`` |
``truncate`` | ``reject`` | ``off``), ``OPENAI_API_KEY`` / ``OPENAI_BASE_URL``,
``ANTHROPIC_API_KEY`` / ``ANTHROPIC_BASE_URL``, ``GEMINI_API_KEY`` (or ``GOOGLE_API_KEY``) /
``GOOGLE_GEMINI_BASE_URL``, ``LLM_PROVIDER_URL`` / ``LLM_PROVIDER_KEY`` /
``LLM_DEFAULT_MODEL`` and the ``GATEWAY_*`` tuning knobs below. The YAML file's ``gateway:``
section adds ``providers`` and ``models`` (and may set any field here), hot-reloaded.
"""

from __future__ import annotations

import os
import re
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from relay_context.config.gateway_cache import CacheConfig

ProviderType = Literal["openai", "anthropic", "gemini"]
#: Providers that exist without configuration (``default`` is ``LLM_PROVIDER_URL``'s).
BUILT_IN_PROVIDERS = ("openai", "anthropic", "gemini", "default")
_ENV_REFERENCE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


class ProviderConfig(BaseModel):
    """One upstream: its wire format, base URL, key (or ``${ENV_VAR}``) and extra headers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: ProviderType
    base_url: str | None = None
    api_key: SecretStr | None = None
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("api_key", mode="before")
    @classmethod
    def _resolve_env_reference(cls, value: Any) -> Any:
        if isinstance(value, str):
            match = _ENV_REFERENCE.match(value.strip())
            if match:
                return os.environ.get(match.group(1)) or None
        return value


class RouteConfig(BaseModel):
    """One deployment of a model: a provider and the model name it knows it by."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    provider: str
    model: str | None = None
    #: Share of the traffic among the routes with a weight; routes without one are fallbacks.
    weight: float | None = Field(default=None, gt=0)


class ModelPrices(BaseModel):
    """USD per million tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: float = Field(default=0.0, ge=0)
    output: float = Field(default=0.0, ge=0)
    cached_input: float | None = Field(default=None, ge=0)
    cache_write: float | None = Field(default=None, ge=0)


class ModelConfig(BaseModel):
    """A client-facing model name: its ordered routes, window, output cap and prices.

    ``routes`` may be written as one string, ``provider`` or ``provider/upstream-model`` (the
    one-line model mapping)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    routes: list[RouteConfig]
    context_window: int | None = Field(default=None, ge=1)
    max_output_tokens: int | None = Field(default=None, ge=1)
    prices: ModelPrices | None = None

    @field_validator("routes", mode="before")
    @classmethod
    def _short_routes(cls, value: Any) -> Any:
        items = value if isinstance(value, list) else [value]
        out = []
        for item in items:
            if isinstance(item, str):
                provider, _, model = item.partition("/")
                out.append({"provider": provider, "model": model or None})
            else:
                out.append(item)
        return out


class BudgetConfig(BaseModel):
    """At most ``usd`` per ``period`` (UTC day, UTC month, or ever)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    usd: float = Field(gt=0)
    period: Literal["day", "month", "lifetime"] = "month"


class FuzzyCacheConfig(BaseModel):
    """The fuzzy cache (off by default): a request equal to a cached one but for a
    near-identical last user message may be answered from it when the guard agrees. Only these
    settings loosen the thresholds; no request header can."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    #: Normalised Levenshtein similarity the two messages need at least.
    min_similarity: float = Field(default=0.9, ge=0.5, le=1.0)
    #: Characters that may differ at most (after normalisation).
    max_edits: int = Field(default=8, ge=0, le=64)
    #: Shorter messages are never fuzzy-matched.
    min_chars: int = Field(default=16, ge=1)
    #: Texts the fuzzy index holds at most (oldest evicted first).
    max_entries: int = Field(default=100_000, ge=1)


class GatewaySettings(BaseSettings):
    """The gateway's settings (environment names in the module docstring)."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        populate_by_name=True,
        frozen=True,
    )

    auth: Literal["keys", "passthrough", "open"] = Field(
        default="keys", validation_alias=AliasChoices("gateway_auth", "auth")
    )
    #: Allow ``open`` auth on a non-loopback address (refused at start otherwise).
    allow_open_remote: bool = Field(
        default=False,
        validation_alias=AliasChoices("gateway_allow_open_remote", "allow_open_remote"),
    )
    context_policy: Literal["fit", "truncate", "reject", "off"] = Field(
        default="fit", validation_alias=AliasChoices("gateway_context_policy", "context_policy")
    )
    #: ``truncate``: past this many prompt tokens keep the system prompt + the last N messages.
    truncate_threshold_tokens: int = Field(
        default=180_000,
        ge=1,
        validation_alias=AliasChoices(
            "gateway_truncate_threshold_tokens", "truncate_threshold_tokens"
        ),
    )
    truncate_keep_messages: int = Field(
        default=7,
        ge=1,
        validation_alias=AliasChoices("gateway_truncate_keep_messages", "truncate_keep_messages"),
    )
    #: ``truncate``: a longer message is cut on a token boundary to this many tokens.
    truncate_message_tokens: int = Field(
        default=20_000,
        ge=16,
        validation_alias=AliasChoices("gateway_truncate_message_tokens", "truncate_message_tokens"),
    )

    #: ``fit``: cut old messages in steps of this share of the window, on boundaries that stay
    #: put as the conversation grows, so the kept prefix is byte-identical (and the provider's
    #: prompt cache keeps hitting) until the next step; off = the knapsack alone.
    context_fit_prefix_stable: bool = Field(
        default=True,
        validation_alias=AliasChoices(
            "gateway_context_fit_prefix_stable", "context_fit_prefix_stable"
        ),
    )
    context_fit_step_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        validation_alias=AliasChoices("gateway_context_fit_step_share", "context_fit_step_share"),
    )
    #: Anthropic upstreams: add ``cache_control`` breakpoints on the stable prefix when the
    #: client set none.
    anthropic_cache_breakpoints: bool = Field(
        default=True,
        validation_alias=AliasChoices(
            "gateway_anthropic_cache_breakpoints", "anthropic_cache_breakpoints"
        ),
    )
    #: Minimum cacheable prompt tokens per Anthropic model name prefix (longest prefix wins),
    #: over the shipped table.
    anthropic_cache_min_tokens: dict[str, int] = Field(
        default_factory=dict,
        validation_alias=AliasChoices(
            "gateway_anthropic_cache_min_tokens", "anthropic_cache_min_tokens"
        ),
    )
    #: OpenAI-format upstreams: send a ``prompt_cache_key`` derived from the caller and the
    #: conversation when the client set none.
    openai_prompt_cache_key: bool = Field(
        default=True,
        validation_alias=AliasChoices("gateway_openai_prompt_cache_key", "openai_prompt_cache_key"),
    )

    fuzzy_cache: FuzzyCacheConfig = Field(
        default_factory=FuzzyCacheConfig,
        validation_alias=AliasChoices("gateway_fuzzy_cache", "fuzzy_cache"),
    )

    openai_api_key: SecretStr | None = None
    openai_base_url: str = "https://api.openai.com/v1"
    anthropic_api_key: SecretStr | None = None
    anthropic_base_url: str = "https://api.anthropic.com"
    gemini_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("gemini_api_key", "google_api_key")
    )
    gemini_base_url: str = Field(
        default="https://generativelanguage.googleapis.com",
        validation_alias=AliasChoices("google_gemini_base_url", "gemini_base_url"),
    )
    #: One OpenAI-compatible upstream for every model not otherwise matched (brief 002).
    llm_provider_url: str | None = None
    llm_provider_key: SecretStr | None = None
    llm_default_model: str | None = None

    connect_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        validation_alias=AliasChoices("gateway_connect_timeout_seconds", "connect_timeout_seconds"),
    )
    #: Longest wait for the next bytes from the upstream (a reply or a stream chunk).
    read_timeout_seconds: float = Field(
        default=600.0,
        gt=0,
        validation_alias=AliasChoices("gateway_read_timeout_seconds", "read_timeout_seconds"),
    )
    max_connections: int = Field(
        default=512,
        ge=1,
        validation_alias=AliasChoices("gateway_max_connections", "max_connections"),
    )
    #: Attempts per deployment after the first (429/5xx/connection errors, nothing sent yet).
    max_retries: int = Field(
        default=2, ge=0, le=10, validation_alias=AliasChoices("gateway_max_retries", "max_retries")
    )
    retry_base_seconds: float = Field(
        default=0.25,
        ge=0,
        validation_alias=AliasChoices("gateway_retry_base_seconds", "retry_base_seconds"),
    )
    #: A ``retry-after`` longer than this moves on to the fallbacks instead of waiting.
    retry_max_wait_seconds: float = Field(
        default=10.0,
        ge=0,
        validation_alias=AliasChoices("gateway_retry_max_wait_seconds", "retry_max_wait_seconds"),
    )
    #: Largest request body the gateway reads, in bytes (413 in the provider's shape above).
    max_body_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=1,
        validation_alias=AliasChoices("gateway_max_body_bytes", "max_body_bytes"),
    )

    #: Circuit breaker per deployment: opens after this many failures in a row ...
    breaker_failure_threshold: int = Field(
        default=5,
        ge=1,
        validation_alias=AliasChoices(
            "gateway_breaker_failure_threshold", "breaker_failure_threshold"
        ),
    )
    #: ... stays open this long, then lets one probe through (half-open).
    breaker_cooldown_seconds: float = Field(
        default=30.0,
        gt=0,
        validation_alias=AliasChoices(
            "gateway_breaker_cooldown_seconds", "breaker_cooldown_seconds"
        ),
    )

    #: Per principal: requests and tokens per minute (0: unlimited).
    rpm: int = Field(default=0, ge=0, validation_alias=AliasChoices("gateway_rpm", "rpm"))
    tpm: int = Field(default=0, ge=0, validation_alias=AliasChoices("gateway_tpm", "tpm"))

    #: Every principal's budget unless ``budgets`` names it (0: none).
    budget_usd: float = Field(
        default=0.0, ge=0, validation_alias=AliasChoices("gateway_budget_usd", "budget_usd")
    )
    budget_period: Literal["day", "month", "lifetime"] = Field(
        default="month", validation_alias=AliasChoices("gateway_budget_period", "budget_period")
    )
    #: Budgets per principal (an API key's owner, a JWT's subject), from the YAML file.
    # The tables' environment names carry the GATEWAY_ prefix (MODELS is Relay's model table);
    # the YAML section and the constructor use the plain names.
    budgets: dict[str, BudgetConfig] = Field(
        default_factory=dict, validation_alias=AliasChoices("gateway_budgets", "budgets")
    )

    #: In-flight coalescing: concurrent identical requests share one upstream call.
    coalesce: bool = Field(
        default=True, validation_alias=AliasChoices("gateway_coalesce", "coalesce")
    )
    #: Bytes of one shared answer kept for late joiners; past it the call takes no new joiners
    #: and its first chunks are dropped once every waiter has them (a slow one holds the call).
    coalesce_max_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=1024,
        validation_alias=AliasChoices("gateway_coalesce_max_bytes", "coalesce_max_bytes"),
    )
    #: With Redis: the leader's lease on a shared call; a follower takes over a call whose
    #: lease ran out without an answer (a dead leader).
    coalesce_lease_seconds: float = Field(
        default=5.0,
        gt=0.2,
        le=300,
        validation_alias=AliasChoices("gateway_coalesce_lease_seconds", "coalesce_lease_seconds"),
    )

    providers: dict[str, ProviderConfig] = Field(
        default_factory=dict, validation_alias=AliasChoices("gateway_providers", "providers")
    )
    models: dict[str, ModelConfig] = Field(
        default_factory=dict, validation_alias=AliasChoices("gateway_models", "models")
    )
    #: The exact response cache (``config/gateway_cache.py``).
    cache: CacheConfig = Field(
        default_factory=CacheConfig, validation_alias=AliasChoices("gateway_cache", "cache")
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            _PrefixedTables(settings_cls, env_settings),
            _PrefixedTables(settings_cls, dotenv_settings),
            file_secret_settings,
        )

    @field_validator("models", mode="before")
    @classmethod
    def _one_line_mapping(cls, value: Any) -> Any:
        """``my-model: provider/upstream-model`` (or a list of them) is a whole entry."""
        if isinstance(value, dict):
            return {k: {"routes": v} if isinstance(v, str | list) else v for k, v in value.items()}
        return value

    @model_validator(mode="after")
    def _routes_name_known_providers(self) -> GatewaySettings:
        known = {*BUILT_IN_PROVIDERS, *self.providers}
        for name, model in self.models.items():
            for route in model.routes:
                if route.provider not in known:
                    raise ValueError(
                        f"model {name!r} routes to provider {route.provider!r}, which is not "
                        f"defined (known: {', '.join(sorted(known))})"
                    )
        return self


class _PrefixedTables(PydanticBaseSettingsSource):
    """An environment source without the plain ``MODELS`` / ``PROVIDERS`` / ``BUDGETS``
    variables (``MODELS`` is Relay's own model table): the gateway's tables come from
    ``GATEWAY_MODELS`` and the like, or from the YAML section."""

    PLAIN = frozenset({"models", "providers", "budgets", "cache"})

    def __init__(self, settings_cls: type[BaseSettings], inner: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self.inner = inner

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ asks the inner source

    def __call__(self) -> dict[str, Any]:
        return {k: v for k, v in self.inner().items() if k.lower() not in self.PLAIN}


__all__ = [
    "BudgetConfig",
    "GatewaySettings",
    "ModelConfig",
    "ModelPrices",
    "ProviderConfig",
    "ProviderType",
    "RouteConfig",
]
