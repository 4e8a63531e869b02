"""``CacheConfig``: the gateway's exact response cache, the ``cache:`` block of the YAML file's
``gateway:`` section (``GatewaySettings.cache``).

Off unless ``enabled``. Entries live in process (LRU, bounded by bytes) by default; on disk in
SQLite with ``persist: true`` (sealed: zstd then AES-256-GCM, ``encryption_keys`` required);
in Redis, shared by replicas, when the app has a ``REDIS_URL`` and ``redis`` is not turned off.
"""

from __future__ import annotations

import base64
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

#: AES-256 keys are 32 bytes.
KEY_BYTES = 32


class CacheOverride(BaseModel):
    """Per API key id or per model: turn the cache off, or another TTL."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    ttl_seconds: float | None = Field(default=None, gt=0)


class CacheConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    #: Whose entries a caller may read: its API key's (``key``), its team's (the key's owner:
    #: ``team``) or everyone's (``global``). Derived from the credential, never from the request.
    scope: Literal["key", "team", "global"] = "key"
    ttl_seconds: float = Field(default=3600.0, gt=0)
    #: The in-process store's bound (LRU eviction past it).
    memory_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    #: Larger answers are not stored.
    max_entry_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    #: SQLite on disk instead of memory.
    persist: bool = False
    path: str = "relay-gateway-cache.sqlite3"
    #: Base64 AES-256 keys: the first seals new entries, every one opens old ones (rotation).
    encryption_keys: list[SecretStr] = Field(default_factory=list)
    #: Use the app's ``REDIS_URL`` when there is one.
    redis: bool = True
    redis_connect_timeout_seconds: float = Field(default=0.2, gt=0, le=10)
    redis_socket_timeout_seconds: float = Field(default=0.2, gt=0, le=10)
    #: When Redis fails: answer without the cache (``bypass``) or use an in-process store
    #: until Redis is back (``memory``). Either way the request goes on at once.
    redis_outage: Literal["bypass", "memory"] = "bypass"
    #: After a Redis failure, how long to skip Redis before trying it again.
    redis_retry_seconds: float = Field(default=5.0, ge=0)
    keys: dict[str, CacheOverride] = Field(default_factory=dict)
    models: dict[str, CacheOverride] = Field(default_factory=dict)

    @field_validator("encryption_keys", mode="before")
    @classmethod
    def _one_key_or_many(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    @field_validator("encryption_keys")
    @classmethod
    def _keys_are_aes_256(cls, value: list[SecretStr]) -> list[SecretStr]:
        for n, key in enumerate(value):
            try:
                raw = base64.b64decode(key.get_secret_value(), validate=True)
            except ValueError as exc:
                raise ValueError(f"cache.encryption_keys[{n}] is not base64") from exc
            if len(raw) != KEY_BYTES:
                raise ValueError(
                    f"cache.encryption_keys[{n}] is {len(raw)} bytes; AES-256 needs {KEY_BYTES}"
                )
        return value

    @model_validator(mode="after")
    def _persist_needs_a_key(self) -> CacheConfig:
        if self.enabled and self.persist and not self.encryption_keys:
            raise ValueError(
                "cache.persist needs cache.encryption_keys (a base64 AES-256 key): entries on "
                "disk are always encrypted"
            )
        return self

    def raw_keys(self) -> list[bytes]:
        return [base64.b64decode(k.get_secret_value()) for k in self.encryption_keys]


__all__ = ["CacheConfig", "CacheOverride"]
