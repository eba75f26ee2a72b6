"""`referral-api orgs ...`: manage organisations from the command line."""

from __future__ import annotations

import click

from ..commands import domain_command, emit, json_option
from ..db import get_session
from ..http import load
from . import services
from .models import OrganisationKind
from .schemas import OrganisationInSchema, OrganisationSchema

_out = OrganisationSchema()


@click.group("orgs")
def orgs_group() -> None:
    """Organisations: MGEC (exactly one) and its partners."""


@orgs_group.command("create")
@click.option("--name", required=True, help="Unique name, e.g. 'Embassy of Mongolia in Seoul'.")
@click.option("--kind", required=True, type=click.Choice([k.value for k in OrganisationKind]))
@click.option("--country", required=True, help="ISO 3166-1 alpha-2 code, e.g. KR.")
@json_option
@domain_command
def create(name: str, kind: str, country: str, as_json: bool) -> None:
    """Create an organisation."""
    data = load(OrganisationInSchema(), {"name": name, "kind": kind, "country": country.upper()})
    org = services.create(get_session(), **data)
    emit(_out.dump(org), as_json=as_json, text=f"{org.id}  {org.name}")


@orgs_group.command("list")
@json_option
@domain_command
def list_(as_json: bool) -> None:
    """List organisations."""
    orgs = services.list_all(get_session())
    rows = _out.dump(orgs, many=True)
    text = "\n".join(f"{o['id']}  {o['kind']:<16} {o['country']}  {o['status']:<9} {o['name']}" for o in rows)
    emit({"items": rows}, as_json=as_json, text=text or "(no organisations)")


@orgs_group.command("suspend")
@click.argument("org")
@json_option
@domain_command
def suspend(org: str, as_json: bool) -> None:
    """Suspend ORG (id or exact name): its tokens stop working within
    TOKEN_CACHE_SECONDS (default 5 s)."""
    o = services.suspend(get_session(), org)
    emit(_out.dump(o), as_json=as_json, text=f"suspended {o.name}")


@orgs_group.command("activate")
@click.argument("org")
@json_option
@domain_command
def activate(org: str, as_json: bool) -> None:
    """Re-activate a suspended ORG (id or exact name)."""
    o = services.activate(get_session(), org)
    emit(_out.dump(o), as_json=as_json, text=f"activated {o.name}")


@orgs_group.command("require-totp")
@click.argument("org")
@click.option("--required/--optional", default=True, show_default=True,
              help="Whether ORG's partner officers must sign in with a TOTP code (an embassy's always must).")
@json_option
@domain_command
def require_totp(org: str, required: bool, as_json: bool) -> None:
    """Make a TOTP code required (or optional) at sign-in for ORG's people (id or exact name)."""
    o = services.require_totp(get_session(), org, required)
    emit({**_out.dump(o), "totp_required": o.requires_totp}, as_json=as_json,
         text=f"{o.name}: TOTP {'required' if o.requires_totp else 'optional'}")
