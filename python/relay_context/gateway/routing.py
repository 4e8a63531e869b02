"""Which deployments serve a model name: the YAML ``gateway.models`` table first, then
``provider/model`` names, then model families by name (``gpt-*``, ``o1/o3/o4*``, ``chatgpt-*``,
``text-embedding-*`` -> openai; ``claude-*`` -> anthropic), then the one OpenAI-compatible
``LLM_PROVIDER_URL`` upstream for everything else. Built once per settings object."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from relay_context.config.gateway import GatewaySettings, ModelConfig, ProviderType
from relay_context.gateway.errors import ModelNotFoundError
from relay_context.gateway.model_table import ModelInfo, model_info

PUBLIC_BASE_URLS: dict[ProviderType, str] = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
}
FAMILY_PREFIXES: tuple[tuple[str, str], ...] = (
    ("gpt-", "openai"),
    ("chatgpt-", "openai"),
    ("text-embedding-", "openai"),
    ("o1", "openai"),
    ("o3", "openai"),
    ("o4", "openai"),
    ("davinci-", "openai"),
    ("babbage-", "openai"),
    ("claude-", "anthropic"),
    ("gemini-", "gemini"),
)
DEFAULT_PROVIDER = "default"


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    type: ProviderType
    base_url: str
    api_key: str | None
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def configured(self) -> bool:
        """Whether someone set this provider up (a key, or a base URL of their own)."""
        return self.api_key is not None or self.base_url != PUBLIC_BASE_URLS[self.type]


@dataclass(frozen=True, slots=True)
class Deployment:
    provider: Provider
    upstream_model: str
    weight: float | None = None

    @property
    def key(self) -> str:
        """The circuit breaker's and the metrics' name of this deployment."""
        return f"{self.provider.name}/{self.upstream_model}"


@dataclass(frozen=True, slots=True)
class ResolvedModel:
    name: str
    deployments: tuple[Deployment, ...]
    context_window: int | None
    max_output_tokens: int | None
    config: ModelConfig | None = None

    def info(self, deployment: Deployment) -> ModelInfo | None:
        return model_info(deployment.upstream_model) or model_info(self.name)

    def ordered(self, rng: random.Random) -> list[Deployment]:
        """Weighted routes first (one drawn by weight, then the others by weight), then the
        fallbacks in their written order."""
        weighted = [d for d in self.deployments if d.weight is not None]
        rest = [d for d in self.deployments if d.weight is None]
        if len(weighted) > 1:
            first = rng.choices(weighted, weights=[d.weight or 0.0 for d in weighted])[0]
            others = sorted((d for d in weighted if d is not first), key=lambda d: -(d.weight or 0))
            weighted = [first, *others]
        return weighted + rest


def _normalise_openai_compatible(url: str) -> str:
    """``https://api.together.xyz`` -> ``.../v1`` (the brief's LLM_PROVIDER_URL has no path)."""
    stripped = url.rstrip("/")
    scheme_end = stripped.find("://")
    path = stripped[scheme_end + 3 :].partition("/")[2] if scheme_end >= 0 else ""
    return stripped if path else stripped + "/v1"


@dataclass
class RoutingTable:
    providers: dict[str, Provider]
    models: dict[str, ModelConfig]
    default_model: str | None
    passthrough: bool = False
    _cache: dict[str, ResolvedModel] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, gs: GatewaySettings) -> RoutingTable:
        def secret(value: object) -> str | None:
            get = getattr(value, "get_secret_value", None)
            return str(get()) if get is not None else None

        providers = {
            "openai": Provider(
                "openai", "openai", gs.openai_base_url.rstrip("/"), secret(gs.openai_api_key)
            ),
            "anthropic": Provider(
                "anthropic",
                "anthropic",
                gs.anthropic_base_url.rstrip("/"),
                secret(gs.anthropic_api_key),
            ),
            "gemini": Provider(
                "gemini", "gemini", gs.gemini_base_url.rstrip("/"), secret(gs.gemini_api_key)
            ),
        }
        if gs.llm_provider_url:
            providers[DEFAULT_PROVIDER] = Provider(
                DEFAULT_PROVIDER,
                "openai",
                _normalise_openai_compatible(gs.llm_provider_url),
                secret(gs.llm_provider_key),
            )
        for name, p in gs.providers.items():
            providers[name] = Provider(
                name,
                p.type,
                (p.base_url or PUBLIC_BASE_URLS[p.type]).rstrip("/"),
                secret(p.api_key),
                tuple(sorted(p.headers.items())),
            )
        return cls(providers, dict(gs.models), gs.llm_default_model, gs.auth == "passthrough")

    def resolve(self, model: str) -> ResolvedModel:
        found = self._cache.get(model)
        if found is None:
            found = self._resolve(model)
            if len(self._cache) < 4096:
                self._cache[model] = found
        return found

    def _resolve(self, model: str) -> ResolvedModel:
        config = self.models.get(model)
        if config is not None:
            deployments = []
            for route in config.routes:
                provider = self.providers.get(route.provider)
                if provider is None:
                    raise ModelNotFoundError(
                        f"model {model!r} routes to unknown provider {route.provider!r}",
                        param="model",
                    )
                deployments.append(Deployment(provider, route.model or model, route.weight))
            info = model_info(deployments[0].upstream_model) or model_info(model)
            return ResolvedModel(
                model,
                tuple(deployments),
                config.context_window or (info.context_window if info else None),
                config.max_output_tokens or (info.max_output_tokens if info else None),
                config,
            )
        provider_name, slash, bare = model.partition("/")
        if slash and provider_name in self.providers and bare:
            return self._single(model, self.providers[provider_name], bare)
        default = self.providers.get(DEFAULT_PROVIDER)
        for prefix, family in FAMILY_PREFIXES:
            if model.startswith(prefix):
                provider = self.providers[family]
                if provider.configured or self.passthrough or default is None:
                    return self._single(model, provider, model)
                break
        if default is not None:
            return self._single(model, default, self.default_model or model)
        raise ModelNotFoundError(
            f"The model `{model}` does not exist or you do not have access to it.", param="model"
        )

    @staticmethod
    def _single(name: str, provider: Provider, upstream_model: str) -> ResolvedModel:
        info = model_info(upstream_model) or model_info(name)
        return ResolvedModel(
            name,
            (Deployment(provider, upstream_model),),
            info.context_window if info else None,
            info.max_output_tokens if info else None,
        )

    def model_names(self) -> list[tuple[str, ProviderType]]:
        """(client-facing name, provider type) of every configured model."""
        out = [
            (
                name,
                self.providers[c.routes[0].provider].type
                if c.routes[0].provider in self.providers
                else "openai",
            )
            for name, c in self.models.items()
        ]
        if self.default_model and DEFAULT_PROVIDER in self.providers:
            out.append((self.default_model, "openai"))
        return out


__all__ = ["Deployment", "Provider", "ResolvedModel", "RoutingTable"]
