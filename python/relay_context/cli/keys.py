"""``relay keys create|list|revoke``: API keys, straight in the database (no server needed)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click
from pydantic import ValidationError

from relay_context.config.settings import Settings
from relay_context.errors import RelayError

if TYPE_CHECKING:
    from relay_context.security.api_keys import ApiKeyStore

_T = TypeVar("_T")
#: ``UserRole``'s values, spelled out so that ``relay --help`` does not import the JWT and
#: database libraries (tests/python/test_service_auth.py checks they agree).
ROLE_NAMES = ("admin", "user", "viewer")


def _run(action: Callable[[ApiKeyStore], Awaitable[_T]]) -> _T:
    from relay_context.engine.store import open_store
    from relay_context.security.api_keys import ApiKeyStore

    async def main() -> _T:
        store = await open_store(Settings())
        try:
            return await action(ApiKeyStore(store))
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except ValidationError as exc:
        raise click.ClickException(f"invalid settings: {exc}") from exc
    except RelayError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
def keys() -> None:
    """Manage API keys (in the database DATABASE_URL names, or SQLite in ~/.relay)."""


@keys.command("create")
@click.option(
    "--role",
    type=click.Choice(ROLE_NAMES),
    default="user",
    show_default=True,
    help="What the key may do.",
)
@click.option("--name", default="", help="A label (who or what uses the key).")
@click.option("--owner", default=None, help="Principal the key acts as (default: the key's id).")
@click.option(
    "--rpm", type=click.IntRange(1, 10_000_000), default=None, help="Gateway requests/minute."
)
@click.option("--tpm", type=click.IntRange(1, 10**12), default=None, help="Gateway tokens/minute.")
@click.option("--budget-usd", type=click.FloatRange(min=0, min_open=True), default=None)
@click.option("--budget-period", type=click.Choice(["day", "month", "lifetime"]), default="month")
@click.option("--models", default=None, help="Models the key may use: 'gpt-4o,claude-*'.")
@click.option(
    "--plan",
    default=None,
    help="Handoff relay plan of the key's owner (free, pro, team, ...; HANDOFF_PLANS).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def create(
    role: str,
    name: str,
    owner: str | None,
    rpm: int | None,
    tpm: int | None,
    budget_usd: float | None,
    budget_period: str,
    models: str | None,
    plan: str | None,
    as_json: bool,
) -> None:
    """Create a key and print it. It is shown only this once. --rpm, --tpm, --budget-usd,
    --budget-period and --models set its LLM-gateway limits, each counted for this key alone
    (docs/gateway.md); --plan the handoff relay plan of its owner (docs/handoff.md)."""
    from relay_context.security.auth import UserRole

    limited = any(x is not None for x in (rpm, tpm, budget_usd, models))
    handoff_settings = Settings().handoff if plan is not None else None
    if handoff_settings is not None and plan not in handoff_settings.plans:
        raise click.BadParameter(f"unknown plan; one of {', '.join(handoff_settings.plans)}")

    async def make(store: ApiKeyStore) -> tuple[Any, str, dict[str, object] | None]:
        record, plaintext = await store.create(role=UserRole(role), name=name, owner=owner)
        if handoff_settings is not None and plan is not None:
            from relay_context.handoff.quotas import Quotas
            from relay_context.handoff.schema import HANDOFF_MIGRATIONS

            store.database.register("handoff", HANDOFF_MIGRATIONS)
            await store.database.migrate()
            await Quotas(store.database, handoff_settings).set_plan(record.owner, plan)
        if not limited:
            return record, plaintext, None
        from relay_context.gateway.key_limits import KeyLimits, KeyLimitsStore, parse_models

        limits = KeyLimits(
            rpm=rpm,
            tpm=tpm,
            budget_usd=budget_usd,
            budget_period=budget_period,  # type: ignore[arg-type]
            models=parse_models(models),
        )
        await KeyLimitsStore(store.database).set(record.id, limits)
        return record, plaintext, limits.to_json()

    record, plaintext, gateway_limits = _run(make)
    if as_json:
        extra: dict[str, object] = {"plan": plan} if plan is not None else {}
        if gateway_limits is not None:
            extra["gateway_limits"] = gateway_limits
        click.echo(json.dumps({**record.to_json(), "key": plaintext, **extra}))
        return
    click.echo(plaintext)
    click.echo(
        f"id {record.id}, role {record.role.value}, owner {record.owner} "
        "(store the key now: it cannot be shown again)",
        err=True,
    )


@keys.command("list")
@click.option("--all", "include_revoked", is_flag=True, help="Include revoked keys.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_keys(include_revoked: bool, as_json: bool) -> None:
    """List keys (never their secrets)."""
    records = _run(lambda s: s.list(include_revoked=include_revoked))
    if as_json:
        click.echo(json.dumps([r.to_json() for r in records]))
        return
    if not records:
        click.echo("no API keys", err=True)
        return
    click.echo(f"{'ID':<21} {'PREFIX':<15} {'ROLE':<7} {'OWNER':<24} {'CREATED':<20} STATUS")
    for r in records:
        status = "revoked" if r.revoked_at else "active"
        click.echo(
            f"{r.id:<21} {r.prefix + '…':<15} {r.role.value:<7} {r.owner[:24]:<24} "
            f"{r.created_at:%Y-%m-%d %H:%M:%S} {status}"
        )


@keys.command("revoke")
@click.argument("key_id")
def revoke(key_id: str) -> None:
    """Revoke the key KEY_ID (from `relay keys list`); it stops working at once."""
    record = _run(lambda s: s.revoke(key_id))
    click.echo(f"revoked {record.id} ({record.prefix}…)")
