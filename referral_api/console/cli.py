"""`referral-api console register-client`: the console's first-party OAuth client, for production."""

from __future__ import annotations

import click

from ..commands import domain_command, emit, json_option
from ..db import get_session
from . import oauth


@click.group("console")
def console_group() -> None:
    """The people's pages (the MGEC console)."""


@console_group.command("register-client")
@click.option(
    "--redirect-uri",
    "redirect_uris",
    multiple=True,
    required=True,
    help="https://<host>/console/callback (repeat for several host names)",
)
@json_option
@domain_command
def register_client(redirect_uris: tuple[str, ...], as_json: bool) -> None:
    """Register MGEC's console client, or add redirect URIs to it (its secret is derived, never shown)."""
    client = oauth.register_client(get_session(), redirect_uris=list(redirect_uris))
    emit(
        {"client_id": client.client_id, "redirect_uris": client.redirect_uris.split()},
        as_json=as_json,
        text=f"console client {client.client_id}  redirect URIs {client.redirect_uris}",
    )
