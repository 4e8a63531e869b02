"""``HandoffSettings``: the handoff relay's knobs, one field (``handoff``) of ``Settings``.

Each is read from ``HANDOFF_<NAME>`` (``HANDOFF_AUTH=open``, ``HANDOFF_MAX_PAYLOAD_BYTES=...``)
when ``Settings`` is built from the environment, or from ``HANDOFF__<NAME>`` (the nested
spelling), or given as ``Settings(handoff={"auth": "open"})``. Limits are explicit settings so an
operator can see and change every bound the relay enforces.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIB = 1024 * 1024
GIB = 1024 * MIB


class HandoffPlan(BaseModel):
    """What one plan allows per calendar month (UTC) and at once; ``None``: no limit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pushes_per_month: int | None = Field(default=None, ge=0)
    #: Counted and shown; pulls are never refused.
    pulls_per_month: int | None = Field(default=None, ge=0)
    #: Bytes of the owner's live payloads (as pushed).
    bytes_stored: int | None = Field(default=None, ge=0)


def _default_plans() -> dict[str, HandoffPlan]:
    # The brief's Free / Pro / Team tiers.
    return {
        "free": HandoffPlan(pushes_per_month=1_000, pulls_per_month=10_000, bytes_stored=GIB),
        "pro": HandoffPlan(
            pushes_per_month=100_000, pulls_per_month=1_000_000, bytes_stored=10 * GIB
        ),
        "team": HandoffPlan(
            pushes_per_month=1_000_000, pulls_per_month=10_000_000, bytes_stored=100 * GIB
        ),
        "unlimited": HandoffPlan(),
    }


class HandoffSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HANDOFF_", extra="ignore", case_sensitive=False, validate_default=True
    )

    #: ``keys``: Relay API keys or JWTs, as the rest of the service; ``open``: no credentials
    #: needed (the self-host mode the published ContextRelay SDK talks to), callers are rate
    #: limited by client address.
    auth: Literal["keys", "open"] = "keys"
    #: Largest payload, in bytes as stored (plaintext or ciphertext); 413 above, decided while
    #: the body is read.
    max_payload_bytes: int = Field(default=25 * MIB, ge=1)
    #: Largest JSON envelope (``POST /push`` with ``{"data": ...}``): JSON escapes text (up to 6
    #: bytes per character), so the envelope may be larger than the payload it carries (whose
    #: own cap, ``max_payload_bytes``, applies too). The envelope is parsed as it streams in
    #: (the data goes to the spool piece by piece); raw bodies never count against this.
    max_json_body_bytes: int = Field(default=2 * 25 * MIB + MIB, ge=1)
    #: How long an upload's whole body may take to arrive (the service's
    #: ``body_read_timeout_seconds`` is meant for small JSON bodies).
    body_read_timeout_seconds: float = Field(default=600.0, gt=0, le=24 * 3600)
    #: Largest ``metadata`` object, as compact JSON.
    max_metadata_bytes: int = Field(default=64 * 1024, ge=2)
    default_ttl_seconds: int = Field(default=24 * 3600, ge=1)
    #: Longest TTL a push may ask for.
    max_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=1)
    #: Bytes per chunk when payloads stream in and out (and per row in the database store).
    chunk_bytes: int = Field(default=256 * 1024, ge=4096, le=16 * MIB)
    #: zstd level of stored payloads.
    compression_level: int = Field(default=3, ge=-7, le=22)
    #: Where compressed payloads live: ``files`` under ``DATA_DIR/handoff``, ``database`` rows
    #: (shared by every replica), ``auto``: the database on PostgreSQL, files on SQLite.
    blob_storage: Literal["auto", "files", "database"] = "auto"
    #: How often expired payloads and old channel events are purged (0: never; expired
    #: payloads answer 404 either way).
    sweep_interval_seconds: float = Field(default=60.0, ge=0)
    #: Channel events kept per channel for subscribers that resume with ``?after=<seq>``.
    channel_history_events: int = Field(default=1000, ge=1)
    #: ... and for at most this long.
    channel_retention_seconds: int = Field(default=3600, ge=1)
    #: Events queued for one subscriber before it is cut as too slow (close code 4008; it may
    #: reconnect with ``?after=`` and resume from the history).
    subscriber_queue_events: int = Field(default=256, ge=1)
    #: Seconds between heartbeats on an idle channel stream (WebSocket and SSE).
    heartbeat_seconds: float = Field(default=20.0, gt=0, le=3600)
    #: Quotas by plan name; a caller without a plan of its own (``relay keys create --plan``)
    #: is on ``default_plan``; callers of the open mode are on ``open_plan``, per client address.
    #: ADMIN principals are not limited.
    plans: dict[str, HandoffPlan] = Field(default_factory=_default_plans)
    default_plan: str = "free"
    open_plan: str = "free"
    #: Base of the pointer URLs handed out (``https://relay.example.com``); unset: the URL the
    #: request came to.
    public_url: str | None = None

    @model_validator(mode="after")
    def _plans_exist(self) -> HandoffSettings:
        for name in (self.default_plan, self.open_plan):
            if name not in self.plans:
                raise ValueError(f"handoff plan {name!r} is not one of {sorted(self.plans)}")
        return self


__all__ = ["HandoffPlan", "HandoffSettings"]
