"""``relay token``: a signed access token (JWT) for trying the API with curl."""

from __future__ import annotations

from datetime import timedelta

import click
from pydantic import ValidationError

from relay_context.cli.keys import ROLE_NAMES
from relay_context.config.settings import Settings
from relay_context.errors import RelayError


@click.command()
@click.argument("user_id")
@click.option(
    "--role",
    type=click.Choice(ROLE_NAMES),
    default="user",
    show_default=True,
)
@click.option(
    "--minutes", type=click.IntRange(min=1), default=None, help="Lifetime (JWT_EXPIRATION_MINUTES)."
)
def token(user_id: str, role: str, minutes: int | None) -> None:
    """Print an access token for USER_ID, signed with this machine's settings (SECRET_KEY, or
    the key generated in DATA_DIR; JWT_PRIVATE_KEY with RS256)."""
    from relay_context.security.auth import AuthService, UserRole

    try:
        auth = AuthService(Settings())
        click.echo(
            auth.create_access_token(
                user_id,
                UserRole(role),
                expires_delta=None if minutes is None else timedelta(minutes=minutes),
            )
        )
    except ValidationError as exc:
        raise click.ClickException(f"invalid settings: {exc}") from exc
    except RelayError as exc:
        raise click.ClickException(str(exc)) from exc
