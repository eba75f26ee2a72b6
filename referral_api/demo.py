"""`referral-api demo seed`: demo organisations (and, as parts arrive, their clients and people)."""

from __future__ import annotations

import click
import sqlalchemy as sa

from .cli import domain_command, emit, json_option
from .db import get_session
from .organisations import services as org_services
from .organisations.models import Organisation, OrganisationKind

DEMO_ORGANISATIONS: list[tuple[str, OrganisationKind, str]] = [
    ("Mongolian Gender Equality Center", OrganisationKind.MGEC, "MN"),
    ("Embassy of Mongolia in Seoul", OrganisationKind.EMBASSY, "KR"),
    ("Public Security Police Force of Macau", OrganisationKind.POLICE, "MO"),
    ("IOM Mission in Kazakhstan", OrganisationKind.IOM, "KZ"),
    ("FIZ Advocacy and Support for Migrant Women and Victims of Trafficking", OrganisationKind.NGO, "CH"),
]


def seed_organisations() -> dict[str, Organisation]:
    """Create the demo organisations that do not exist yet; return all of them by kind."""
    session = get_session()
    out: dict[str, Organisation] = {}
    for name, kind, country in DEMO_ORGANISATIONS:
        org = session.scalar(sa.select(Organisation).where(Organisation.name == name))
        if org is None:
            org = org_services.create(session, name=name, kind=kind, country=country)
        out[kind.value] = org
    return out


@click.group("demo")
def demo_group() -> None:
    """Demo data for a first try on the embedded database."""


@demo_group.command("seed")
@json_option
@domain_command
def seed(as_json: bool) -> None:
    """Create MGEC, an embassy, a foreign police force, an IOM mission and an NGO (idempotent)."""
    orgs = seed_organisations()
    payload = {"organisations": {kind: {"id": str(o.id), "name": o.name} for kind, o in orgs.items()}}
    emit(payload, as_json=as_json, text="\n".join(f"{k:<8} {o.id}  {o.name}" for k, o in orgs.items()))
