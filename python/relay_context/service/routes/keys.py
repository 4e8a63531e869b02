"""``/api/v1/keys``: API-key management, ADMIN only. The plaintext key is in the creation
response and nowhere else."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from relay_context.security.api_keys import MAX_NAME_CHARS, ApiKey
from relay_context.security.auth import UserRole
from relay_context.service.deps import AdminPrincipal, AuthFirstRoute, StateDep
from relay_context.service.openapi import AUTHENTICATED, WITH_ID, links_to

router = APIRouter(
    prefix="/api/v1/keys", tags=["api keys"], route_class=AuthFirstRoute, responses=AUTHENTICATED
)


class CreateKeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: UserRole = UserRole.USER
    name: str = Field(default="", max_length=MAX_NAME_CHARS)
    #: The principal the key acts as (owns its sessions); defaults to the key's id.
    owner: str | None = Field(default=None, min_length=1, max_length=256)


class KeyInfo(BaseModel):
    id: str
    prefix: str
    name: str
    role: UserRole
    owner: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def of(cls, key: ApiKey) -> KeyInfo:
        return cls(
            id=key.id,
            prefix=key.prefix,
            name=key.name,
            role=key.role,
            owner=key.owner,
            created_at=key.created_at,
            revoked_at=key.revoked_at,
            last_used_at=key.last_used_at,
        )


class CreatedKey(KeyInfo):
    #: The key itself: shown once, store it now.
    key: str


async def _publish_count(state: StateDep) -> None:
    state.metrics.api_keys_active.set(await state.api_keys.count_active())


@router.post(
    "",
    status_code=201,
    summary="Create an API key",
    operation_id="create_key",
    responses={
        201: {
            "description": "The key, shown once",
            "links": links_to(
                {"GetKey": "get_key", "RevokeKey": "revoke_key"}, "key_id", "$response.body#/id"
            ),
        }
    },
)
async def create_key(body: CreateKeyRequest, admin: AdminPrincipal, state: StateDep) -> CreatedKey:
    with state.tracer.start_as_current_span("db.api_key.create"):
        record, plaintext = await state.api_keys.create(
            role=body.role, name=body.name, owner=body.owner
        )
    await _publish_count(state)
    return CreatedKey(**KeyInfo.of(record).model_dump(), key=plaintext)


@router.get("", summary="List API keys", operation_id="list_keys")
async def list_keys(
    admin: AdminPrincipal,
    state: StateDep,
    include_revoked: bool = Query(default=True),
) -> list[KeyInfo]:
    with state.tracer.start_as_current_span("db.api_key.list"):
        keys = await state.api_keys.list(include_revoked=include_revoked)
    return [KeyInfo.of(k) for k in keys]


@router.get("/{key_id}", summary="One API key", operation_id="get_key", responses=WITH_ID)
async def get_key(key_id: str, admin: AdminPrincipal, state: StateDep) -> KeyInfo:
    return KeyInfo.of(await state.api_keys.get(key_id))


@router.delete(
    "/{key_id}", summary="Revoke an API key", operation_id="revoke_key", responses=WITH_ID
)
async def revoke_key(key_id: str, admin: AdminPrincipal, state: StateDep) -> KeyInfo:
    with state.tracer.start_as_current_span("db.api_key.revoke"):
        record = await state.api_keys.revoke(key_id)
    await _publish_count(state)
    return KeyInfo.of(record)
