"""The gateway's one entry point, :meth:`Gateway.handle`, and the pipeline of one request, in
order: auth -> limits -> context fit -> coalescing (identical requests in flight share one
upstream call) -> route -> breaker -> provider (retries with backoff and jitter while nothing was
sent, then fallbacks) -> usage ledger.

A request to an upstream of the client's own format is forwarded as it came: the body is
re-encoded only when Relay changed it (another upstream model name, messages dropped by the
context fit, OpenAI's ``stream_options.include_usage`` asked for on the client's behalf, which is
spliced in without re-encoding when it is the only change). Every error, ours or the
upstream's, reaches the client in the shape of the API it called.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

from opentelemetry import trace
from opentelemetry.trace import Tracer
from prometheus_client import CollectorRegistry

from relay_context.config.gateway import BudgetConfig, GatewaySettings
from relay_context.core.ratelimit import SlidingWindowRateLimiter
from relay_context.gateway import prompt_cache
from relay_context.gateway import validation as v
from relay_context.gateway import wire_formats as wire
from relay_context.gateway.budgets import StreamBudget, check_budget
from relay_context.gateway.cache.entry import CachedAnswer
from relay_context.gateway.cache.exact_cache import CacheTicket, ExactCache
from relay_context.gateway.cache.fuzzy_guard import FuzzyContext, FuzzyThresholds
from relay_context.gateway.cache.fuzzy_index import FuzzyIndex, split_request
from relay_context.gateway.cache.fuzzy_shared import SharedFuzzyCandidates
from relay_context.gateway.cache.key import CacheKey, cache_scope, request_cache_key
from relay_context.gateway.cache.metrics import CacheMetrics
from relay_context.gateway.cache.recording import record_stream
from relay_context.gateway.cache.replay import stream_events, whole_body
from relay_context.gateway.call import Endpoint, GatewayCall, GatewayReply
from relay_context.gateway.circuit_breaker import STATE_VALUES, BreakerBoard
from relay_context.gateway.client_auth import Caller, ClientAuthenticator
from relay_context.gateway.coalescing import Coalescer, LocalCoalescer
from relay_context.gateway.coalescing_redis import RedisCoalescer
from relay_context.gateway.context_fit import (
    DEFAULT_RESERVED_OUTPUT,
    ContextFitter,
    FitLimits,
    FitResult,
)
from relay_context.gateway.costs import Prices
from relay_context.gateway.error_shapes import error_bytes, error_headers
from relay_context.gateway.errors import (
    AllRoutesOpenError,
    GatewayError,
    GatewayRateLimitError,
    InvalidRequestError,
    ModelNotAllowedError,
    RequestBodyTooLargeError,
    RoleNotAllowedError,
    UpstreamError,
    UpstreamUnavailableError,
)
from relay_context.gateway.key_limits import KeyLimits, KeyLimitsStore
from relay_context.gateway.metrics import GatewayMetrics
from relay_context.gateway.providers.anthropic import endpoint as anthropic_endpoint
from relay_context.gateway.providers.anthropic import messages_request as anthropic_request
from relay_context.gateway.providers.gemini import json_array_stream as gemini_array
from relay_context.gateway.providers.openai import chat_response as openai_response
from relay_context.gateway.providers.openai import endpoint as openai_endpoint
from relay_context.gateway.retry_policy import RetryPolicy
from relay_context.gateway.routing import Deployment, ResolvedModel, RoutingTable
from relay_context.gateway.savings import GatewayStats
from relay_context.gateway.schema import ChatRequest, ChatResponse, TextPart, ToolCallPart, Usage
from relay_context.gateway.streams import (
    forward_anthropic,
    forward_gemini,
    forward_openai,
    translate,
)
from relay_context.gateway.token_rate import TokensPerMinute
from relay_context.gateway.upstream_client import (
    PoolSettings,
    UpstreamAnswer,
    UpstreamPool,
    call_upstream,
)
from relay_context.gateway.usage_ledger import UsageLedger
from relay_context.gateway.wire_formats import WireFormat
from relay_context.lifecycle import AsyncResource
from relay_context.persistence import Database
from relay_context.security.api_keys import ApiKeyStore
from relay_context.security.auth import AuthService, UserRole

log = logging.getLogger(__name__)

FORMAT_OF: dict[Endpoint, WireFormat] = {
    "gemini_generate": "gemini",
    "gemini_stream": "gemini",
    "chat_completions": "openai",
    "embeddings": "openai",
    "responses": "openai",
    "models": "openai",
    "messages": "anthropic",
    "count_tokens": "anthropic",
}
CHAT_ENDPOINTS = frozenset({"chat_completions", "messages", "gemini_generate", "gemini_stream"})
#: Models whose encodings (o200k_base, cl100k_base) are loaded when the gateway opens.
WARM_MODELS = ("gpt-4o", "gpt-4")
SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


class _DeploymentFailedError(Exception):
    """This deployment is spent (retries exhausted or its circuit opened): try the next."""

    def __init__(self, error: GatewayError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass
class _Request:
    """What the pipeline learned about one request so far."""

    call: GatewayCall
    fmt: WireFormat
    caller: Caller | None = None
    model: str = ""
    deployment: Deployment | None = None
    fit: FitResult | None = None
    upstream_seconds: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    budget: StreamBudget | None = None
    limits: KeyLimits | None = None
    #: OpenAI's ``x-ratelimit-*`` headers of the tightest request and token limits that
    #: applied, sent on successful answers too (not only with a 429).
    rate_headers: dict[str, str] = field(default_factory=dict)
    #: Set when the exact cache looked the request up (a miss to be stored).
    cache: CacheTicket | None = None
    #: The request as the fuzzy cache indexes it, when that cache is on.
    fuzzy: tuple[FuzzyContext, str] | None = None
    #: Answered from another identical request's upstream call (costs nothing more).
    coalesced: bool = False
    #: The exact cache missed: counted as a miss once it is known not to be coalesced.
    cache_missed: bool = False

    def overhead_ms(self) -> float:
        return max(
            0.0, (time.perf_counter() - self.call.received_at - self.upstream_seconds) * 1000
        )


@dataclass(frozen=True)
class _Payload:
    path: str
    body: bytes
    headers: dict[str, str]


class Gateway(AsyncResource):
    """One per app. ``settings`` returns the gateway settings in force (they may be reloaded).
    :meth:`open` (the app's lifespan) loads the tokenizers and starts the ledger's writer;
    :meth:`close` writes the ledger's last rows and closes the upstream connections."""

    def __init__(
        self,
        settings: Callable[[], GatewaySettings],
        *,
        api_keys: ApiKeyStore,
        auth: AuthService,
        registry: CollectorRegistry,
        redis_url: str | None = None,
        redis_cluster: bool = False,
        redis_key_prefix: str = "relay:",
        database: Database,
        rng: random.Random | None = None,
        tracer: Tracer | None = None,
        redis: Any | None = None,
    ) -> None:
        self._settings = settings
        self.tracer = tracer or trace.get_tracer("relay_context.gateway")
        self.authenticator = ClientAuthenticator(api_keys, auth)
        self.metrics = GatewayMetrics(registry)
        #: Savings and traffic for the dashboard; the caches record their outcomes here.
        self.stats = GatewayStats(registry)
        self.fitter = ContextFitter()
        self.ledger = UsageLedger(database)
        self.key_limits = KeyLimitsStore(database)
        self.api_keys = api_keys
        #: Per-key requests- and tokens-per-minute limiters, one per distinct limit, counting
        #: by key id (each key has its own window, whoever owns it).
        self._key_rpm: dict[int, SlidingWindowRateLimiter] = {}
        self._key_tpm: dict[int, TokensPerMinute] = {}
        #: Work started off a request (token settlement); kept so it is not collected early.
        self._tasks: set[asyncio.Task[None]] = set()
        self.rng = rng or random.Random()
        self._redis_url = redis_url
        self._redis_key_prefix = redis_key_prefix
        self._redis = redis
        gs = settings()
        self._gs = gs
        self.table = RoutingTable.from_settings(gs)
        self.pool = UpstreamPool(self._pool_settings(gs))
        self.breakers = BreakerBoard(gs.breaker_failure_threshold, gs.breaker_cooldown_seconds)
        self.retry = RetryPolicy(gs.max_retries, gs.retry_base_seconds, gs.retry_max_wait_seconds)
        self._rpm: SlidingWindowRateLimiter | None = self._rpm_limiter(gs)
        self._tpm: TokensPerMinute | None = self._tpm_counter(gs)
        self._retired_limiters: list[SlidingWindowRateLimiter] = []
        self.cache = ExactCache(
            gs.cache,
            metrics=CacheMetrics(registry),
            redis_url=redis_url,
            redis_cluster=redis_cluster,
            redis_key_prefix=redis_key_prefix,
        )
        self.fuzzy = FuzzyIndex(max_entries=gs.fuzzy_cache.max_entries)
        #: Candidates shared by replicas when the exact cache's entries live in Redis.
        self.fuzzy_shared = SharedFuzzyCandidates(self.fuzzy, key_prefix=self._redis_key_prefix)
        self.coalescer: Coalescer = self._coalescer()

    # --- settings ------------------------------------------------------------------------------

    @staticmethod
    def _pool_settings(gs: GatewaySettings) -> PoolSettings:
        return PoolSettings(gs.connect_timeout_seconds, gs.read_timeout_seconds, gs.max_connections)

    def _rpm_limiter(self, gs: GatewaySettings) -> SlidingWindowRateLimiter | None:
        if not gs.rpm:
            return None
        return SlidingWindowRateLimiter(
            self._redis_url, gs.rpm, 60, key_prefix=self._redis_key_prefix + "gw:rpm:"
        )

    def _tpm_counter(self, gs: GatewaySettings) -> TokensPerMinute | None:
        if not gs.tpm:
            return None
        return TokensPerMinute(gs.tpm, self._redis, self._redis_key_prefix + "gw:tpm:")

    def _current(self) -> GatewaySettings:
        gs = self._settings()
        if gs is not self._gs:
            old, self._gs = self._gs, gs
            self.table = RoutingTable.from_settings(gs)
            self.pool.reconfigure(self._pool_settings(gs))
            self.breakers.configure(gs.breaker_failure_threshold, gs.breaker_cooldown_seconds)
            self.retry = RetryPolicy(
                gs.max_retries, gs.retry_base_seconds, gs.retry_max_wait_seconds
            )
            if gs.tpm != old.tpm:
                self._tpm = self._tpm_counter(gs)
            if gs.rpm != old.rpm:
                if self._rpm is not None:
                    self._retired_limiters.append(self._rpm)
                self._rpm = self._rpm_limiter(gs)
            self.cache.configure(gs.cache)
            self.fuzzy.max_entries = gs.fuzzy_cache.max_entries
            log.info("gateway settings reloaded")
        return gs

    async def open(self) -> None:
        """Loads the tokenizers of OpenAI's two chat encodings (a first request would otherwise
        pay for building them), off the event loop."""
        await asyncio.to_thread(lambda: [self.fitter.counter(m) for m in WARM_MODELS])
        self.ledger.start()

    async def close(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.coalescer.close()
        await self.ledger.close()
        await self.pool.close()
        await self.cache.close()
        for limiter in [self._rpm, *self._retired_limiters, *self._key_rpm.values()]:
            if limiter is not None:
                limiter.close()

    # --- the entry points ----------------------------------------------------------------------

    async def usage(
        self, *, group_by: str, since: float = 0.0, principal: str | None = None
    ) -> list[dict[str, object]]:
        """The usage ledger's totals (``GET /api/v1/gateway/usage``)."""
        return await self.ledger.report(group_by=group_by, since=since, principal=principal)

    def breaker_states(self) -> dict[str, str]:
        """Each deployment's circuit (``closed``, ``open``, ``half_open``), for ``/health``."""
        return self.breakers.states()

    def stats_report(self) -> dict[str, Any]:
        """``GET /api/v1/gateway/stats`` and the dashboard: :meth:`GatewayStats.snapshot` and
        each deployment's circuit (``breakers``)."""
        return {**self.stats.snapshot(), "breakers": self.breaker_states()}

    async def handle(self, call: GatewayCall) -> GatewayReply:
        """The answer to one gateway request; never raises for the client's or the upstream's
        errors (they are answers in the client's format)."""
        r = _Request(call, FORMAT_OF[call.endpoint])
        try:
            gs = self._current()
            r.caller = await self.authenticator.authenticate(call.headers, gs.auth, call.query)
            if call.endpoint == "models":
                return self._models(r)
            if r.caller.principal.role is UserRole.VIEWER:  # viewers read; calls spend
                raise RoleNotAllowedError(
                    "this credential has the viewer role, which may list models but not call "
                    "them; use a key with the user or admin role"
                )
            if len(call.body) > gs.max_body_bytes:
                raise RequestBodyTooLargeError(
                    f"request body of {len(call.body)} bytes exceeds the limit of "
                    f"{gs.max_body_bytes}"
                )
            body = v.parse_json_object(call.body)
            r.model = call.path_model or v.need_str(body, "model")
            resolved = self.table.resolve(r.model)
            await self._check_key_limits(r)
            await self._check_rpm(r)
            if call.endpoint in CHAT_ENDPOINTS:
                return await self._chat(r, gs, body, resolved)
            if call.endpoint == "count_tokens":
                return await self._count_tokens(r, body, resolved)
            return await self._forward_openai_only(r, body, resolved)
        except GatewayError as err:
            return self._error(r, err)

    # --- steps ---------------------------------------------------------------------------------

    async def _check_key_limits(self, r: _Request) -> None:
        """The limits the caller's API key carries: its models and requests per minute."""
        assert r.caller is not None
        key_id = r.caller.principal.key_id
        if key_id is None:
            return
        r.limits = await self.key_limits.get(key_id)
        if r.limits is None:
            return
        if not r.limits.allows(r.model):
            raise ModelNotAllowedError(
                f"this key may not use model {r.model!r} (allowed: "
                f"{', '.join(r.limits.models or ())})",
                param="model",
            )
        if r.limits.rpm is not None:
            limiter = self._key_rpm.get(r.limits.rpm)
            if limiter is None:
                limiter = SlidingWindowRateLimiter(
                    self._redis_url,
                    r.limits.rpm,
                    60,
                    key_prefix=f"{self._redis_key_prefix}gw:key-rpm:{r.limits.rpm}:",
                )
                self._key_rpm[r.limits.rpm] = limiter
            allowed, info = await limiter.is_allowed(key_id)
            if not allowed:
                self._refuse_rpm(info)
            self._note_requests(r, info)

    @staticmethod
    def _note_requests(r: _Request, info: Any) -> None:
        """Keeps the request limit with the fewest requests left for the answer's headers."""
        remaining = max(0, int(info["remaining"]))
        shown = r.rate_headers.get("x-ratelimit-remaining-requests")
        if shown is not None and int(shown) <= remaining:
            return
        reset = max(0.0, float(info["reset_at"]) - time.time())
        r.rate_headers["x-ratelimit-limit-requests"] = str(info["limit"])
        r.rate_headers["x-ratelimit-remaining-requests"] = str(remaining)
        r.rate_headers["x-ratelimit-reset-requests"] = f"{reset:.3f}s"

    @staticmethod
    def _note_tokens(r: _Request, limit: int, used: int, now: float) -> None:
        """Keeps the token limit with the fewest tokens left for the answer's headers."""
        remaining = max(0, limit - used)
        shown = r.rate_headers.get("x-ratelimit-remaining-tokens")
        if shown is not None and int(shown) <= remaining:
            return
        reset = TokensPerMinute.seconds_to_reset(now)
        r.rate_headers["x-ratelimit-limit-tokens"] = str(limit)
        r.rate_headers["x-ratelimit-remaining-tokens"] = str(remaining)
        r.rate_headers["x-ratelimit-reset-tokens"] = f"{reset:.3f}s"

    def _refuse_rpm(self, info: Any) -> None:
        self.metrics.rate_limit_rejections.labels("rpm").inc()
        raise GatewayRateLimitError(
            f"Rate limit reached: {info['limit']} requests per minute",
            retry_after=info["retry_after"],
            headers={
                "x-ratelimit-limit-requests": str(info["limit"]),
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": f"{info['retry_after']:.3f}s",
            },
        )

    def _key_tpm_counter(self, r: _Request) -> tuple[TokensPerMinute, str] | None:
        """The tokens-per-minute counter of the caller's API key and the key it counts by."""
        key_id = r.caller.principal.key_id if r.caller is not None else None
        if key_id is None or r.limits is None or r.limits.tpm is None:
            return None
        counter = self._key_tpm.get(r.limits.tpm)
        if counter is None:
            counter = TokensPerMinute(
                r.limits.tpm,
                self._redis,
                f"{self._redis_key_prefix}gw:key-tpm:{r.limits.tpm}:",
            )
            self._key_tpm[r.limits.tpm] = counter
        return counter, key_id

    async def _check_tpm(self, r: _Request, prompt_tokens: int) -> None:
        """Charges the exact prompt to the caller's tokens per minute — the API key's own limit
        and the settings' one per principal — (the output is added when the call is settled)."""
        counters: list[tuple[TokensPerMinute, str]] = []
        keyed = self._key_tpm_counter(r)
        if keyed is not None:
            counters.append(keyed)
        if self._tpm is not None and r.caller is not None:
            counters.append((self._tpm, r.caller.principal.id))
        for counter, key in counters:
            now = counter.clock()
            allowed, retry_after, used = await counter.check(key, prompt_tokens)
            if not allowed:
                self.metrics.rate_limit_rejections.labels("tpm").inc()
                raise GatewayRateLimitError(
                    f"Rate limit reached: {counter.limit} tokens per minute ({used} used, this "
                    f"request needs {prompt_tokens})",
                    retry_after=retry_after,
                    headers={
                        "x-ratelimit-limit-tokens": str(counter.limit),
                        "x-ratelimit-remaining-tokens": str(max(0, counter.limit - used)),
                        "x-ratelimit-reset-tokens": f"{retry_after:.0f}s",
                    },
                )
            self._note_tokens(r, counter.limit, used, now)

    async def set_key_limits(self, key_id: str, limits: KeyLimits) -> None:
        """Sets the gateway limits of an existing key (``ApiKeyNotFoundError`` otherwise)."""
        await self.api_keys.get(key_id)
        await self.key_limits.set(key_id, limits)

    async def get_key_limits(self, key_id: str) -> KeyLimits:
        await self.api_keys.get(key_id)
        return await self.key_limits.get(key_id) or KeyLimits()

    async def _check_rpm(self, r: _Request) -> None:
        if self._rpm is None or r.caller is None:
            return
        allowed, info = await self._rpm.is_allowed(r.caller.principal.id)
        if not allowed:
            self._refuse_rpm(info)
        self._note_requests(r, info)

    def _parse(self, r: _Request, body: dict[str, Any]) -> ChatRequest:
        request = wire.parse_request(r.fmt, body, r.model)
        if r.call.endpoint == "gemini_stream":
            request.stream = True  # Gemini says it in the method's name, not in the body
        return request

    def _fit(
        self,
        r: _Request,
        gs: GatewaySettings,
        body: dict[str, Any],
        resolved: ResolvedModel,
        first: Deployment,
    ) -> tuple[dict[str, Any], ChatRequest, FitResult]:
        request = self._parse(r, body)
        counter = self.fitter.counter(first.upstream_model)
        output_cap = resolved.max_output_tokens or DEFAULT_RESERVED_OUTPUT
        limits = FitLimits(
            policy=gs.context_policy,
            window=resolved.context_window,
            reserved_output=request.max_tokens or min(DEFAULT_RESERVED_OUTPUT, output_cap),
            truncate_threshold=gs.truncate_threshold_tokens,
            truncate_keep=gs.truncate_keep_messages,
            truncate_message_tokens=gs.truncate_message_tokens,
            stable_step=(
                max(1, int(gs.context_fit_step_share * resolved.context_window))
                if gs.context_fit_prefix_stable and resolved.context_window
                else None
            ),
        )
        truncated = 0
        if gs.context_policy == "truncate" and r.fmt != "gemini":
            body = {**body, "messages": list(body["messages"])}
            truncated = self.fitter.truncate_messages(
                r.fmt, body, counter, gs.truncate_message_tokens
            )
            if truncated:
                request = self._parse(r, body)
        fit = self.fitter.fit(r.fmt, body, request, counter, limits, truncated=truncated)
        if fit.kept is not None:
            keep = set(fit.kept)
            request.messages = [m for m in request.messages if m.source_index in keep]
            self.metrics.context_dropped.inc(fit.dropped)
        if fit.kept is not None or truncated:
            self.metrics.context_fits.labels(fit.policy).inc()
            log.info(
                "context fitted",
                extra={
                    "request_id": r.call.request_id,
                    "policy": fit.policy,
                    "tokens_before": fit.original_tokens,
                    "tokens_after": fit.prompt_tokens,
                    "messages_dropped": fit.dropped,
                    "messages_truncated": truncated,
                },
            )
        self.metrics.request_tokens.labels(r.model).observe(fit.prompt_tokens)
        r.headers["x-relay-prompt-tokens"] = str(fit.prompt_tokens)
        r.headers["x-relay-context-dropped"] = str(fit.dropped)
        r.headers["x-relay-context-policy"] = fit.policy
        return body, request, fit

    async def _chat(
        self, r: _Request, gs: GatewaySettings, body: dict[str, Any], resolved: ResolvedModel
    ) -> GatewayReply:
        cached = await self._cache_lookup(r, body, resolved)
        if cached is not None:
            return cached
        deployments = resolved.ordered(self.rng)
        body, request, fit = self._fit(r, gs, body, resolved, deployments[0])
        r.fit = fit
        assert r.caller is not None
        first = deployments[0]
        await self._check_tpm(r, fit.prompt_tokens)
        r.budget = await check_budget(
            self.ledger,
            r.caller.principal.id,
            gs,
            prices=self._prices(resolved, first),
            prompt_tokens=fit.prompt_tokens,
            max_output_tokens=request.max_tokens
            or min(DEFAULT_RESERVED_OUTPUT, resolved.max_output_tokens or DEFAULT_RESERVED_OUTPUT),
            counter=self.fitter.counter(first.upstream_model),
            key_budget=(
                BudgetConfig(usd=r.limits.budget_usd, period=r.limits.budget_period)
                if r.limits is not None and r.limits.budget_usd is not None
                else None
            ),
            key_id=r.caller.principal.key_id,
        )
        changed = fit.kept is not None or fit.truncated > 0

        def payload(d: Deployment) -> _Payload:
            return self._chat_payload(r, body, changed, request, resolved, d)

        response, deployment = await self._coalesced_dispatch(
            r, gs, body, resolved, deployments, payload, request.stream
        )
        upstream_format: WireFormat = deployment.provider.type
        if request.stream:
            return self._chat_stream(r, request, resolved, deployment, upstream_format, response)
        return self._chat_whole(r, request, resolved, deployment, upstream_format, response)

    def _chat_payload(
        self,
        r: _Request,
        body: dict[str, Any],
        changed: bool,
        request: ChatRequest,
        resolved: ResolvedModel,
        d: Deployment,
    ) -> _Payload:
        assert r.caller is not None
        target = wire.chat_target(
            d.provider.type,
            r.caller.upstream_key or d.provider.api_key,
            upstream_model=d.upstream_model,
            stream=request.stream,
            client_format=r.fmt,
            client_headers=r.call.headers,
            extra_headers=d.provider.headers,
        )
        if d.provider.type == r.fmt:
            body_bytes = self._forwarded_body(r, body, changed, request, d)
        else:
            n = body.get("n") if r.fmt == "openai" else 1
            out = wire.emit_request(
                d.provider.type,
                request,
                d.upstream_model,
                max_output_tokens=resolved.max_output_tokens,
                n=n if isinstance(n, int) else 1,
            )
            self._use_prompt_cache(r, d, out)
            body_bytes = wire.dumps(out)
        return _Payload(target.path, body_bytes, target.headers)

    def _prompt_cache_wanted(self, r: _Request, d: Deployment, body: dict[str, Any]) -> bool:
        """Whether a body bound for ``d`` gets prompt-cache marks
        (:mod:`~relay_context.gateway.prompt_cache`): the setting is on, the client set none and
        the prompt is long enough to be cached at all."""
        gs = self._gs
        prompt = r.fit.prompt_tokens if r.fit is not None else 0
        if d.provider.type == "anthropic":
            minimum = prompt_cache.min_cacheable_tokens(
                d.upstream_model, gs.anthropic_cache_min_tokens
            )
            return (
                gs.anthropic_cache_breakpoints
                and prompt >= minimum
                and not prompt_cache.has_breakpoints(body)
            )
        return (
            d.provider.type == "openai"
            and gs.openai_prompt_cache_key
            and r.caller is not None
            and prompt >= prompt_cache.OPENAI_MIN_CACHEABLE
            and "prompt_cache_key" not in body
        )

    def _use_prompt_cache(self, r: _Request, d: Deployment, out: dict[str, Any]) -> None:
        """Adds the marks :meth:`_prompt_cache_wanted` asks for to ``out``."""
        if not self._prompt_cache_wanted(r, d, out):
            return
        if d.provider.type == "anthropic":
            minimum = prompt_cache.min_cacheable_tokens(
                d.upstream_model, self._gs.anthropic_cache_min_tokens
            )
            counter = self.fitter.counter(d.upstream_model)
            prompt_cache.add_anthropic_breakpoints(out, counter, minimum)
        else:
            assert r.caller is not None
            out["prompt_cache_key"] = prompt_cache.openai_prompt_cache_key(
                r.caller.principal.id, d.upstream_model, out.get("messages")
            )

    def _forwarded_body(
        self, r: _Request, body: dict[str, Any], changed: bool, request: ChatRequest, d: Deployment
    ) -> bytes:
        raw = r.call.body
        need_usage = r.fmt == "openai" and request.stream and not request.stream_usage
        # Gemini names the model in the path, not the body.
        same_model = d.upstream_model == r.model or r.fmt == "gemini"
        marks = self._prompt_cache_wanted(r, d, body)
        if not changed and same_model and not need_usage and not marks:
            return raw
        if not changed and same_model and "stream_options" not in body and not marks:
            end = raw.rstrip().rfind(b"}")
            return raw[:end] + b',"stream_options":{"include_usage":true}}'
        out = dict(body)
        if r.fmt != "gemini":
            out["model"] = d.upstream_model
        if r.fit is not None and r.fit.kept is not None:
            key = wire.messages_key(r.fmt)
            out[key] = [body[key][i] for i in r.fit.kept]
        if need_usage:
            options = body.get("stream_options")
            out["stream_options"] = {
                **(options if isinstance(options, dict) else {}),
                "include_usage": True,
            }
        self._use_prompt_cache(r, d, out)
        return json.dumps(out, separators=(",", ":")).encode()

    # --- coalescing: identical requests in flight share one upstream call ---------------------

    def _coalescer(self) -> Coalescer:
        def max_bytes() -> int:
            return self._gs.coalesce_max_bytes

        if self._redis is None:
            return LocalCoalescer(max_bytes)
        return RedisCoalescer(
            self._redis,
            self._redis_key_prefix,
            max_bytes=max_bytes,
            lease_seconds=lambda: self._gs.coalesce_lease_seconds,
        )

    @staticmethod
    def _coalescing_key(
        r: _Request,
        gs: GatewaySettings,
        body: dict[str, Any],
        resolved: ResolvedModel,
        stream: bool,
    ) -> str:
        """The exact cache's key of the request (its canonical form and the caller's scope),
        with what makes the upstream call itself differ: streamed or not, the endpoint, the
        messages the context fit kept, and the upstream key a passthrough caller brought."""
        assert r.caller is not None
        cache_key = request_cache_key(
            r.fmt,
            body,
            upstream_model=resolved.name,
            scope=cache_scope(r.caller.principal, gs.cache.scope),
        )
        upstream_key = r.caller.upstream_key or ""
        parts = [
            cache_key.digest,
            r.call.endpoint,
            "stream" if stream else "whole",
            json.dumps(r.fit.kept if r.fit else None),
            hashlib.sha256(upstream_key.encode()).hexdigest(),
        ]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()

    async def _coalesced_dispatch(
        self,
        r: _Request,
        gs: GatewaySettings,
        body: dict[str, Any],
        resolved: ResolvedModel,
        deployments: list[Deployment],
        payload: Callable[[Deployment], _Payload],
        stream: bool,
    ) -> tuple[UpstreamAnswer, Deployment]:
        """``_dispatch``, shared by the identical requests in flight: the first one's call (run
        apart from its request) answers every one, each in its own protocol."""
        if not gs.coalesce:
            if r.cache_missed:
                self.stats.record_cache("miss")
            return await self._dispatch(r, resolved, deployments, payload, stream)

        async def start() -> tuple[UpstreamAnswer, str]:
            # A cache miss is this request's outcome only if it leads (else: coalesced).
            if r.cache_missed:
                self.stats.record_cache("miss")
            response, d = await self._dispatch(r, resolved, deployments, payload, stream)
            return response, d.key

        waited = time.perf_counter()
        joined = await self.coalescer.join(
            self._coalescing_key(r, gs, body, resolved, stream), stream=stream, start=start
        )
        by_key = {d.key: d for d in resolved.deployments}
        d = by_key.get(joined.deployment)
        if d is None:  # another process answered from a deployment this one does not know
            await joined.response.aclose()
            raise UpstreamUnavailableError(
                f"the shared call was answered by unknown deployment {joined.deployment!r}",
                provider="-",
            )
        if not joined.leader:
            r.coalesced = True
            r.cache = None  # the leader's answer is the one stored
            r.deployment = d
            r.upstream_seconds += time.perf_counter() - waited
            r.headers["x-relay-cache"] = "coalesced"  # counted when settled (_settle)
        return joined.response, d

    async def _dispatch(
        self,
        r: _Request,
        resolved: ResolvedModel,
        deployments: list[Deployment],
        payload: Callable[[Deployment], _Payload],
        stream: bool,
    ) -> tuple[UpstreamAnswer, Deployment]:
        last: GatewayError | None = None
        skipped: list[float] = []
        for n, d in enumerate(deployments):
            breaker = self.breakers.get(d.key)
            if not breaker.allow():
                skipped.append(breaker.retry_after())
                continue
            if n and last is not None:
                self.metrics.fallbacks.labels(resolved.name).inc()
            try:
                response = await self._attempt(r, d, payload(d), stream)
            except _DeploymentFailedError as failed:
                last = failed.error
                continue
            r.deployment = d
            return response, d
        if last is None:
            raise AllRoutesOpenError(
                f"every deployment of {resolved.name!r} has its circuit open",
                retry_after=min(skipped) if skipped else 1.0,
            )
        raise last

    async def _attempt(
        self, r: _Request, d: Deployment, p: _Payload, stream: bool
    ) -> UpstreamAnswer:
        breaker = self.breakers.get(d.key)
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                with self.tracer.start_as_current_span(
                    "gateway.upstream",
                    attributes={
                        "relay.upstream": d.key,
                        "relay.provider": d.provider.name,
                        "relay.attempt": attempt + 1,
                        "relay.stream": stream,
                    },
                ) as span:
                    response = await call_upstream(
                        self.pool, d.provider, p.path, p.body, p.headers, stream=stream
                    )
                    span.set_attribute("http.response.status_code", response.status_code)
            except (UpstreamError, UpstreamUnavailableError) as err:
                elapsed = time.perf_counter() - started
                r.upstream_seconds += elapsed
                self.metrics.upstream_latency.labels(d.provider.name).observe(elapsed)
                if isinstance(err, UpstreamError) and not err.retryable:
                    breaker.record_success()  # it answered: a client error, not an outage
                    self._publish_breaker(d)
                    raise
                breaker.record_failure()
                self._publish_breaker(d)
                attempt += 1
                delay = self.retry.delay(attempt, err.retry_after, self.rng)
                if delay is None or not breaker.allow():
                    raise _DeploymentFailedError(err) from err
                self.metrics.retries.labels(d.key).inc()
                wait_started = time.perf_counter()
                await asyncio.sleep(delay)
                r.upstream_seconds += time.perf_counter() - wait_started
                continue
            elapsed = time.perf_counter() - started
            r.upstream_seconds += elapsed
            self.metrics.upstream_latency.labels(d.provider.name).observe(elapsed)
            breaker.record_success()
            self._publish_breaker(d)
            return response

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _publish_breaker(self, d: Deployment) -> None:
        state = self.breakers.get(d.key).state
        self.metrics.breaker_state.labels(d.key).set(STATE_VALUES[state])

    # --- answers -------------------------------------------------------------------------------

    def _success_headers(self, r: _Request, d: Deployment) -> dict[str, str]:
        headers = dict(r.headers)
        headers.update(r.rate_headers)
        headers["x-relay-request-id"] = r.call.request_id
        headers["x-relay-model"] = d.upstream_model
        headers["x-relay-provider"] = d.provider.name
        return headers

    def _settle(
        self, r: _Request, resolved: ResolvedModel, d: Deployment, usage: Usage | None, status: int
    ) -> float:
        reported = usage is not None
        if usage is None:
            usage = Usage(
                input_tokens=r.fit.prompt_tokens if r.fit else 0,
                output_tokens=r.budget.output_tokens if r.budget else 0,
            )
        prices = self._prices(resolved, d)
        # A coalesced answer cost nothing: what it would have cost is what it saved (as for a
        # cache hit), when it succeeded.
        full_cost = prices.cost(usage) if prices else 0.0
        cost = 0.0 if r.coalesced else full_cost
        saved = full_cost if r.coalesced and status < 400 else 0.0
        principal = r.caller.principal.id if r.caller else "-"
        key_id = r.caller.principal.key_id if r.caller else None
        self.ledger.record(
            request_id=r.call.request_id,
            principal=principal,
            model=resolved.name,
            deployment=d.key,
            usage=usage,
            cost_usd=cost,
            status=status,
            reported=reported,
            key_id=key_id,
            saved_usd=saved,
            coalesced=r.coalesced,
        )
        if self._tpm is not None and r.caller is not None and usage.output_tokens:
            # Settled off the request: the answer is already out.
            self._background(self._tpm.add(r.caller.principal.id, usage.output_tokens))
        keyed = self._key_tpm_counter(r)
        if keyed is not None and usage.output_tokens:
            self._background(keyed[0].add(keyed[1], usage.output_tokens))
        self.metrics.requests.labels(resolved.name, d.provider.name, str(status)).inc()
        self.metrics.cost.labels(resolved.name).inc(cost)
        self.metrics.tokens.labels(resolved.name, "input").inc(usage.input_tokens)
        self.metrics.tokens.labels(resolved.name, "output").inc(usage.output_tokens)
        self.metrics.tokens.labels(resolved.name, "cached_input").inc(usage.cached_input_tokens)
        if r.coalesced:
            self.stats.record_cache("coalesced", saved_usd=saved)
        else:
            self.stats.record_request(
                provider=d.provider.name,
                model=resolved.name,
                status=status,
                usage=usage,
                cost_usd=cost,
                prices=prices,
            )
        return cost

    @staticmethod
    def _prices(resolved: ResolvedModel, d: Deployment) -> Prices | None:
        config = resolved.config
        return Prices.of(config.prices if config else None, resolved.info(d))

    def _chat_whole(
        self,
        r: _Request,
        request: ChatRequest,
        resolved: ResolvedModel,
        d: Deployment,
        upstream_format: WireFormat,
        response: UpstreamAnswer,
    ) -> GatewayReply:
        content = response.content
        try:
            upstream_body = json.loads(content)
        except ValueError as exc:
            raise UpstreamUnavailableError(
                f"upstream {d.provider.name} answered something that is not JSON",
                provider=d.provider.name,
            ) from exc
        usage = wire.parse_usage(upstream_format, upstream_body)
        if upstream_format != r.fmt:
            neutral = wire.parse_response(upstream_format, upstream_body)
            if neutral.usage is None:
                neutral.usage = self._counted_usage(r, d, neutral)
            content = wire.dumps(wire.emit_response(r.fmt, neutral, r.model))
        cost = self._settle(r, resolved, d, usage, response.status_code)
        if r.cache is not None and response.status_code == 200:
            answer = self._answer(r, d, "whole", usage, cost)
            answer.body = content
            self._background(self._cache_save(r.cache, answer, r.fuzzy))
        headers = self._success_headers(r, d)
        headers["x-relay-cost-usd"] = f"{cost:.8f}"
        headers["x-relay-overhead-ms"] = f"{r.overhead_ms():.3f}"
        self.metrics.overhead.observe(r.overhead_ms() / 1000)
        return GatewayReply(response.status_code, headers, content)

    def _counted_usage(self, r: _Request, d: Deployment, response: ChatResponse) -> Usage:
        """Usage Relay counts itself when the upstream reports none."""
        counter = self.fitter.counter(d.upstream_model)
        texts = [p.text for p in response.parts if isinstance(p, TextPart)]
        texts += [p.arguments for p in response.parts if isinstance(p, ToolCallPart)]
        output = sum(counter.count_batch(texts, num_threads=1)) if texts else 0
        return Usage(input_tokens=r.fit.prompt_tokens if r.fit else 0, output_tokens=output)

    def _chat_stream(
        self,
        r: _Request,
        request: ChatRequest,
        resolved: ResolvedModel,
        d: Deployment,
        upstream_format: WireFormat,
        response: UpstreamAnswer,
    ) -> GatewayReply:
        ended: list[tuple[Usage | None, GatewayError | None, float]] = []
        # A stream to cache keeps OpenAI's usage chunk (hidden from a client that did not ask).
        recording = r.cache is not None and r.cache.may_store

        def on_end(usage: Usage | None, error: GatewayError | None) -> None:
            # One shared call's failure counts once, for its leader.
            if isinstance(error, UpstreamError | UpstreamUnavailableError) and not r.coalesced:
                breaker = self.breakers.get(d.key)
                breaker.record_failure()
                self._publish_breaker(d)
                log.warning("stream from %s ended by an error: %s", d.key, error)
            cost = self._settle(r, resolved, d, usage, 200 if error is None else error.status)
            ended.append((usage, error, cost))

        prompt = r.fit.prompt_tokens if r.fit else 0
        if upstream_format == r.fmt == "openai":
            chunks = forward_openai(
                response,
                provider=d.provider.name,
                strip_usage_chunk=not request.stream_usage and not recording,
                on_end=on_end,
                budget=r.budget,
            )
        elif upstream_format == r.fmt == "anthropic":
            chunks = forward_anthropic(
                response, provider=d.provider.name, on_end=on_end, budget=r.budget
            )
        elif upstream_format == r.fmt:
            chunks = forward_gemini(
                response, provider=d.provider.name, on_end=on_end, budget=r.budget
            )
        else:
            chunks = translate(
                response,
                provider=d.provider.name,
                upstream_format=upstream_format,
                client_format=r.fmt,
                model=r.model,
                prompt_tokens=prompt,
                include_usage=request.stream_usage or recording,
                on_end=on_end,
                budget=r.budget,
            )
        if recording:
            assert r.cache is not None
            ticket = r.cache

            def complete(events: list[bytes]) -> None:
                usage, _, cost = ended[0]
                answer = self._answer(r, d, "stream", usage, cost)
                answer.events = events
                self._background(self._cache_save(ticket, answer, r.fuzzy))

            chunks = record_stream(
                chunks,
                hide_openai_usage=r.fmt == "openai" and not request.stream_usage,
                failed=lambda: not ended or ended[0][1] is not None,
                on_complete=complete,
            )
        media_type = "text/event-stream"
        if r.call.endpoint == "gemini_stream" and gemini_array.wants_json_array(r.call.query):
            chunks = gemini_array.as_json_array(chunks)
            media_type = gemini_array.MEDIA_TYPE
        headers = {**self._success_headers(r, d), **SSE_HEADERS}
        headers["x-relay-overhead-ms"] = f"{r.overhead_ms():.3f}"
        self.metrics.overhead.observe(r.overhead_ms() / 1000)
        return GatewayReply(200, headers, stream=chunks, media_type=media_type)

    # --- the exact cache (gateway/cache/) -------------------------------------------------------

    async def _cache_lookup(
        self, r: _Request, body: dict[str, Any], resolved: ResolvedModel
    ) -> GatewayReply | None:
        """The answer from the exact cache, or ``None`` (then ``r.cache`` holds the ticket the
        upstream's answer is stored under). Sets ``x-relay-cache`` and ``x-relay-cache-key``."""
        assert r.caller is not None
        upstream = "|".join(
            sorted({f"{d.provider.name}/{d.upstream_model}" for d in resolved.deployments})
        )
        ticket = self.cache.ticket(
            principal=r.caller.principal,
            family=r.fmt,
            model=resolved.name,
            upstream_model=upstream,
            body=body,
            headers=r.call.headers,
        )
        if ticket is None:
            r.headers["x-relay-cache"] = "bypass"
            return None
        r.headers["x-relay-cache-key"] = ticket.key.digest
        answer = await self.cache.lookup(ticket)
        r.headers["x-relay-cache"] = ticket.status
        if answer is None:
            answer = await self._fuzzy_lookup(r, body, upstream, ticket)
            if answer is not None:
                self.stats.record_cache("fuzzy", saved_usd=answer.cost_usd)
                return self._cached_reply(r, resolved, body, answer)
            r.cache_missed = ticket.status == "miss"
            r.cache = ticket if ticket.may_store else None
            return None
        self.stats.record_cache("exact", saved_usd=answer.cost_usd)
        return self._cached_reply(r, resolved, body, answer)

    async def _fuzzy_lookup(
        self, r: _Request, body: dict[str, Any], upstream: str, ticket: CacheTicket
    ) -> CachedAnswer | None:
        """The fuzzy cache (``fuzzy_cache``, off by default; :mod:`.cache.fuzzy_guard`): the
        entry of a request equal to this one but for a near-identical last user message that
        the guard accepts, or ``None``. Remembers how to index this request's answer."""
        fc = self._gs.fuzzy_cache
        if not fc.enabled or ticket.status == "bypass":
            return None
        r.fuzzy = split_request(r.fmt, body, upstream_model=upstream, scope=ticket.key.scope)
        if r.fuzzy is None or not ticket.may_read:
            return None
        shared = self.cache.shared_store()
        if shared is not None:  # what other replicas stored in this scope, since last time
            await self.fuzzy_shared.load(shared, ticket.key.scope)
        found = self.fuzzy.lookup(
            *r.fuzzy, FuzzyThresholds(fc.min_similarity, fc.max_edits, fc.min_chars)
        )
        for reason in found.refused:
            self.metrics.fuzzy_refusals.labels(reason).inc()
        if found.match is None:
            return None
        entry = CacheTicket(
            CacheKey(found.match.entry_key, ticket.key.scope), ticket.directives, ticket.ttl_seconds
        )
        answer = await self.cache.lookup(entry)
        if answer is None:  # expired or evicted from the store
            self.fuzzy.remove(found.match.entry_key)
            return None
        r.headers["x-relay-cache"] = "fuzzy-hit"
        r.headers["x-relay-cache-key"] = found.match.entry_key
        r.headers["x-relay-fuzzy-similarity"] = f"{found.match.verdict.similarity:.3f}"
        return answer

    def _cached_reply(
        self, r: _Request, resolved: ResolvedModel, body: dict[str, Any], answer: CachedAnswer
    ) -> GatewayReply:
        """A hit: costs 0 in the ledger, and what the first call cost counts as saved."""
        self.ledger.record(
            request_id=r.call.request_id,
            principal=r.caller.principal.id if r.caller else "-",
            model=resolved.name,
            deployment=answer.deployment,
            usage=answer.usage,
            cost_usd=0.0,
            status=200,
            reported=True,
            saved_usd=answer.cost_usd,
            cache_hit=True,
            key_id=r.caller.principal.key_id if r.caller else None,
        )
        self.metrics.requests.labels(resolved.name, answer.provider, "200").inc()
        headers = dict(r.headers)
        headers["x-relay-request-id"] = r.call.request_id
        headers["x-relay-model"] = answer.upstream_model
        headers["x-relay-provider"] = answer.provider
        headers["x-relay-cost-usd"] = "0.00000000"
        headers["x-relay-saved-usd"] = f"{answer.cost_usd:.8f}"
        headers["x-relay-overhead-ms"] = f"{r.overhead_ms():.3f}"
        self.metrics.overhead.observe(r.overhead_ms() / 1000)
        if body.get("stream") is True or r.call.endpoint == "gemini_stream":
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage") is True
            replay: AsyncIterator[bytes] = _one_write(
                b"".join(stream_events(answer, include_usage=include_usage))
            )
            media_type = "text/event-stream"
            # Entries keep a stream as SSE events whichever framing its first client asked
            # for; a Gemini client that asked for the JSON array gets that array.
            if r.call.endpoint == "gemini_stream" and gemini_array.wants_json_array(r.call.query):
                replay = gemini_array.as_json_array(replay)
                media_type = gemini_array.MEDIA_TYPE
            return GatewayReply(
                200, {**headers, **SSE_HEADERS}, stream=replay, media_type=media_type
            )
        return GatewayReply(200, headers, whole_body(answer))

    def _answer(
        self,
        r: _Request,
        d: Deployment,
        kind: Literal["whole", "stream"],
        usage: Usage | None,
        cost: float,
    ) -> CachedAnswer:
        return CachedAnswer(
            family=r.fmt,
            kind=kind,
            model=r.model,
            upstream_model=d.upstream_model,
            provider=d.provider.name,
            deployment=d.key,
            usage=usage or Usage(input_tokens=r.fit.prompt_tokens if r.fit else 0),
            cost_usd=cost,
        )

    async def _cache_save(
        self,
        ticket: CacheTicket,
        answer: CachedAnswer,
        fuzzy: tuple[FuzzyContext, str] | None = None,
    ) -> None:
        if await self.cache.save(ticket, answer) and fuzzy is not None:
            self.fuzzy.add(ticket.key.digest, *fuzzy)
            shared = self.cache.shared_store()
            if shared is not None:
                await self.fuzzy_shared.publish(
                    shared, ticket.key.digest, *fuzzy, ttl_seconds=ticket.ttl_seconds
                )

    async def _count_tokens(
        self, r: _Request, body: dict[str, Any], resolved: ResolvedModel
    ) -> GatewayReply:
        """Anthropic ``count_tokens``: exact for OpenAI-family models (Relay's tokenizer),
        forwarded for Anthropic ones."""
        request = anthropic_request.parse_messages_request(body, require_max_tokens=False)
        d = resolved.deployments[0]
        if d.provider.type == "openai":
            counter = self.fitter.counter(d.upstream_model)
            per_message, fixed = self.fitter.count("anthropic", body, request, counter)
            total = fixed + sum(per_message.values())
            headers = self._success_headers(r, d)
            headers["x-relay-overhead-ms"] = f"{r.overhead_ms():.3f}"
            return GatewayReply(200, headers, json.dumps({"input_tokens": total}).encode())
        assert r.caller is not None
        key = r.caller.upstream_key or d.provider.api_key
        headers = anthropic_endpoint.auth_headers(key, r.call.headers)
        headers.update(d.provider.headers)
        raw = r.call.body
        if d.upstream_model != r.model:
            raw = json.dumps({**body, "model": d.upstream_model}, separators=(",", ":")).encode()
        payload = _Payload(anthropic_endpoint.COUNT_TOKENS_PATH, raw, headers)
        response, d = await self._dispatch(r, resolved, [d], lambda _: payload, False)
        out = self._success_headers(r, d)
        out["x-relay-overhead-ms"] = f"{r.overhead_ms():.3f}"
        return GatewayReply(response.status_code, out, response.content)

    async def _forward_openai_only(
        self, r: _Request, body: dict[str, Any], resolved: ResolvedModel
    ) -> GatewayReply:
        """``/v1/embeddings`` and ``/v1/responses``: OpenAI-format upstreams only, forwarded."""
        if r.call.endpoint == "embeddings":
            v.check_embeddings_input(body)
        else:
            v.check_responses_input(body)
        path = (
            openai_endpoint.EMBEDDINGS_PATH
            if r.call.endpoint == "embeddings"
            else openai_endpoint.RESPONSES_PATH
        )
        deployments = [d for d in resolved.ordered(self.rng) if d.provider.type == "openai"]
        if not deployments:
            raise InvalidRequestError(
                f"{path.lstrip('/')} is not available for {r.model!r} (an Anthropic model)",
                param="model",
            )
        stream = r.call.endpoint == "responses" and body.get("stream") is True
        assert r.caller is not None
        caller = r.caller

        def payload(d: Deployment) -> _Payload:
            headers = openai_endpoint.auth_headers(caller.upstream_key or d.provider.api_key)
            headers.update(d.provider.headers)
            raw = r.call.body
            if d.upstream_model != r.model:
                raw = json.dumps(
                    {**body, "model": d.upstream_model}, separators=(",", ":")
                ).encode()
            return _Payload(path, raw, headers)

        response, d = await self._dispatch(r, resolved, deployments, payload, stream)
        if stream:

            def on_end(usage: Usage | None, error: GatewayError | None) -> None:
                self._settle(r, resolved, d, usage, 200 if error is None else error.status)

            chunks = forward_openai(
                response, provider=d.provider.name, strip_usage_chunk=False, on_end=on_end
            )
            headers = {**self._success_headers(r, d), **SSE_HEADERS}
            headers["x-relay-overhead-ms"] = f"{r.overhead_ms():.3f}"
            return GatewayReply(200, headers, stream=chunks, media_type="text/event-stream")
        usage = _openai_family_usage(response.content)
        cost = self._settle(r, resolved, d, usage, response.status_code)
        headers = self._success_headers(r, d)
        headers["x-relay-cost-usd"] = f"{cost:.8f}"
        headers["x-relay-overhead-ms"] = f"{r.overhead_ms():.3f}"
        return GatewayReply(response.status_code, headers, response.content)

    def _models(self, r: _Request) -> GatewayReply:
        names = self.table.model_names()
        if "anthropic-version" in r.call.headers:
            data: Any = {
                "data": [
                    {
                        "type": "model",
                        "id": n,
                        "display_name": n,
                        "created_at": "2025-01-01T00:00:00Z",
                    }
                    for n, _ in names
                ],
                "has_more": False,
                "first_id": names[0][0] if names else None,
                "last_id": names[-1][0] if names else None,
            }
        else:
            data = {
                "object": "list",
                "data": [
                    {"id": n, "object": "model", "created": 0, "owned_by": t} for n, t in names
                ],
            }
        return GatewayReply(
            200, {"x-relay-request-id": r.call.request_id}, json.dumps(data).encode()
        )

    def _error(self, r: _Request, err: GatewayError) -> GatewayReply:
        headers = error_headers(err)
        headers["x-relay-request-id"] = r.call.request_id
        headers["x-relay-overhead-ms"] = f"{r.overhead_ms():.3f}"
        headers.update({k: v for k, v in r.headers.items() if k.startswith("x-relay-")})
        provider = r.deployment.provider.name if r.deployment else "-"
        self.metrics.requests.labels(r.model or "-", provider, str(err.status)).inc()
        self.stats.record_refused(err.status)
        if err.status >= 500:
            log.warning("gateway error %d: %s", err.status, err.message)
        return GatewayReply(err.status, headers, error_bytes(r.fmt, err))


async def _one_write(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _openai_family_usage(content: bytes) -> Usage | None:
    """Usage of an embeddings or Responses answer."""
    try:
        body = json.loads(content)
    except ValueError:
        return None
    raw = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(raw, dict):
        return None
    if "input_tokens" in raw:
        details = raw.get("input_tokens_details") or {}
        return Usage(
            int(raw.get("input_tokens") or 0),
            int(raw.get("output_tokens") or 0),
            int(details.get("cached_tokens") or 0),
        )
    return openai_response.parse_usage(raw)


__all__ = ["FORMAT_OF", "Gateway"]
