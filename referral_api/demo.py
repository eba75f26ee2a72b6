"""`referral-api demo seed`: demo organisations, one OAuth client each, and an MGEC coordinator."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import click
import sqlalchemy as sa
from flask import current_app

from .access import ALL_SCOPES, CLIENT_CREDENTIALS_SCOPES, Actor, OrganisationRef, Role, Scope
from .auth import services as auth_services
from .auth.models import Client, User
from .commands import domain_command, emit, json_option
from .db import get_session, utcnow
from .errors import DomainError
from .organisations import services as org_services
from .organisations.models import Organisation, OrganisationKind
from .progress import for_command
from .referrals import services as referral_services
from .referrals.models import Referral
from .referrals.vocab import (
    Concern,
    ConsentMethod,
    ContactFamily,
    ExploitationType,
    Need,
    Province,
    SafetyRisk,
    Sex,
    Source,
    Urgency,
)

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


PARTNER_SCOPES = [
    Scope.REFERRALS_SUBMIT,
    Scope.REFERRALS_READ,
    Scope.CASES_READ,
    Scope.CASES_STATUS,
    Scope.CASES_UPDATE,
    Scope.WEBHOOKS_MANAGE,
]
DEMO_REDIRECT_URI = "http://127.0.0.1:8000/callback"
DEMO_COORDINATOR = "coordinator@mgec.example"
# `make run` serves on 127.0.0.1:5000; another address: `referral-api console register-client`.
DEMO_CONSOLE_CALLBACKS = ["http://127.0.0.1:5000/console/callback", "http://localhost:5000/console/callback"]
# Swagger UI at /docs: its public client; another origin: `referral-api clients docs-client --origin`.
DEMO_DOCS_ORIGINS = ["http://127.0.0.1:5000", "http://localhost:5000"]


def seed_clients(orgs: dict[str, Organisation]) -> dict[str, dict[str, Any]]:
    """One client per demo organisation; a new one's secret is returned once, an existing one's never."""
    session = get_session()
    out: dict[str, dict[str, Any]] = {}
    for kind, org in orgs.items():
        name = f"{org.name} (demo client)"
        client = session.scalar(
            sa.select(Client).where(Client.organisation_id == org.id, Client.name == name)
        )
        secret = None
        if client is None:
            if org.kind is OrganisationKind.MGEC:
                # MGEC's own first-party application: its systems and, by login, its people.
                issued = auth_services.create_client(
                    session,
                    organisation=str(org.id),
                    name=name,
                    scopes=sorted(ALL_SCOPES),
                    grant_types=["client_credentials", "authorization_code", "refresh_token"],
                    redirect_uris=[DEMO_REDIRECT_URI],
                )
            else:
                issued = auth_services.create_client(
                    session,
                    organisation=str(org.id),
                    name=name,
                    scopes=sorted(s.value for s in PARTNER_SCOPES if s.value in CLIENT_CREDENTIALS_SCOPES),
                )
            client, secret = issued.client, issued.client_secret
        out[kind] = {"client_id": client.client_id, "client_secret": secret, "name": client.name}
    return out


def seed_coordinator(mgec: Organisation) -> dict[str, Any]:
    """An MGEC coordinator; a new one's password and TOTP URI are returned once."""
    session = get_session()
    user = session.scalar(sa.select(User).where(User.email == DEMO_COORDINATOR))
    if user is not None:
        return {"email": user.email, "password": None, "totp_uri": None}
    password = secrets.token_urlsafe(12)
    issued = auth_services.create_user(
        session,
        organisation=str(mgec.id),
        email=DEMO_COORDINATOR,
        role=Role.MGEC_COORDINATOR,
        password=password,
        name="Demo coordinator",
    )
    return {"email": issued.user.email, "password": password, "totp_uri": issued.totp_uri}


def _seed_text(
    orgs: dict[str, Organisation], clients: dict[str, dict[str, Any]], coordinator: dict[str, Any]
) -> str:
    lines = []
    for kind, org in orgs.items():
        c = clients[kind]
        secret = c["client_secret"] or "(exists; its secret is not shown again)"
        lines.append(
            f"{kind:<8} {org.id}  {org.name}\n         client_id {c['client_id']}  client_secret {secret}"
        )
    if coordinator["password"]:
        lines.append(
            f"coordinator {coordinator['email']}  password {coordinator['password']}\n"
            f"            totp_uri {coordinator['totp_uri']}"
        )
    else:
        lines.append(f"coordinator {coordinator['email']} (exists; credentials not shown again)")
    lines.append("Secrets, passwords and TOTP URIs are shown only when created.")
    return "\n".join(lines)


@click.group("demo")
def demo_group() -> None:
    """Demo data for a first try on the embedded database (refused in production)."""


@demo_group.command("seed")
@click.option("--reissue-secrets", is_flag=True,
              help="Lost the demo credentials? Give every demo client a new secret and every demo person "
                   "a new password (and TOTP URI where they have one), and print them; the old ones stop "
                   "working.")
@json_option
@domain_command
def seed(reissue_secrets: bool, as_json: bool) -> None:
    """Create MGEC, an embassy, a foreign police force, an IOM mission and an NGO, one client each, an
    MGEC coordinator, an officer each at the embassy, the police and the NGO, three open referrals,
    shelters in Ulaanbaatar and Zamiin-Uud, and cases at several stages (idempotent; credentials printed
    only when created, or new with --reissue-secrets). Refused in production (REFERRAL_API_ENV)."""
    from .auth.docs_ui import docs_redirect_uri, register_docs_client
    from .console.oauth import register_client
    from .demo_cases import seed_cases, seed_shelters
    from .demo_people import officers_text, reissue_credentials, seed_officers

    if current_app.config["SETTINGS"].is_production:
        raise DomainError(
            "`demo seed` does not run in production (REFERRAL_API_ENV=production): it would add a client "
            "holding every scope, accounts with printed passwords and made-up referrals and cases."
        )
    with for_command("demo seed", as_json=as_json, unit="steps") as progress:
        progress.start(9)
        orgs = seed_organisations()
        progress.advance()
        clients = seed_clients(orgs)
        progress.advance()
        coordinator = seed_coordinator(orgs[OrganisationKind.MGEC.value])
        progress.advance()
        officers = seed_officers(orgs)
        progress.advance()
        referrals = seed_referrals(orgs, clients)
        progress.advance()
        shelters = seed_shelters()
        progress.advance()
        new_cases = seed_cases(orgs, coordinator["email"], shelters)
        progress.advance()
        console_client = register_client(get_session(), redirect_uris=DEMO_CONSOLE_CALLBACKS)
        progress.advance()
        docs_uris = [docs_redirect_uri(origin) for origin in DEMO_DOCS_ORIGINS]
        docs = register_docs_client(get_session(), redirect_uris=docs_uris,
                                    require_private_key_jwt=current_app.config["SETTINGS"].require_private_key_jwt)
        progress.advance()
    if reissue_secrets:
        reissue_credentials(clients, [coordinator, *officers.values()])
    payload = {
        "organisations": {kind: {"id": str(o.id), "name": o.name} for kind, o in orgs.items()},
        "clients": clients,
        "coordinator": coordinator,
        "officers": officers,
        "referrals": referrals,
        "shelters": {city: str(s.id) for city, s in shelters.items()},
        "cases_created": new_cases,
        "console": {"url": "http://127.0.0.1:5000/", "client_id": console_client.client_id},
        "docs": {"url": "http://127.0.0.1:5000/docs", "client_id": docs.client_id},
    }
    emit(
        payload,
        as_json=as_json,
        text=_seed_text(orgs, clients, coordinator) + "\n" + officers_text(officers)
        + "\nreferrals " + " ".join(referrals)
        + "\nconsole http://127.0.0.1:5000/ (sign in as the coordinator or an officer; TOTP URIs go into an"
        " authenticator app)"
        + f"\ndocs http://127.0.0.1:5000/docs (Authorize: a client's id and secret, or sign in through the"
        f" docs client {docs.client_id})",
    )


def _demo_referrals(today: date) -> list[tuple[str, dict[str, Any]]]:
    """Three referrals as partners send them (drawn from MGEC's work: Macau, Almaty, Zürich)."""

    def ago(days: int) -> date:
        return today - timedelta(days=days)

    consent = {"given": True, "obtained_on": ago(2), "method": ConsentMethod.WRITTEN, "language": "mn"}
    return [("police", _from_macau(ago, consent)), ("iom", _from_almaty(ago, consent)),
            ("ngo", _from_zurich(ago, consent))]


def _from_macau(ago: Callable[[int], date], consent: dict[str, Any]) -> dict[str, Any]:
    """The police referral of the demo."""
    return {
        "source": Source.POLICE,
        "external_reference": "PSP-MO-2026-0412",
        "concern": Concern.TRAFFICKING,
        "person": {
            "family_name": "Dorj",
            "given_name": "Oyunchimeg",
            "names_cyrillic": "Доржийн Оюунчимэг",
            "sex": Sex.FEMALE,
            "date_of_birth": date(2001, 3, 14),
            "nationality": "MN",
            "home_province": Province.DORNOGOVI,
            "languages": ["mn"],
        },
        "situation": {
            "identified_country": "MO",
            "identified_city": "Macau",
            "identified_on": ago(4),
            "exploitation_types": [ExploitationType.SEXUAL],
            "urgency": Urgency.URGENT,
            "narrative": "Recruited in Ulaanbaatar with an offer of hotel work; passport taken.",
            "needs": [Need.SHELTER, Need.TRAVEL_DOCUMENTS, Need.PSYCHOSOCIAL],
            "safety_risk": SafetyRisk.HIGH,
            "contact_family": ContactFamily.NO,
        },
        "consent": {**consent, "obtained_by": "Officer Leong", "share_with": ["embassy", "iom"]},
    }


def _from_almaty(ago: Callable[[int], date], consent: dict[str, Any]) -> dict[str, Any]:
    """The iom referral of the demo."""
    return {
        "source": Source.IOM,
        "external_reference": "IOM-KZ-26-118",
        "concern": Concern.TRAFFICKING,
        "person": {
            "family_name": "Ganbold",
            "given_name": "Tuvshinbayar",
            "sex": Sex.MALE,
            "estimated_age": 34,
            "nationality": "MN",
            "languages": ["mn", "ru"],
        },
        "situation": {
            "identified_country": "KZ",
            "identified_city": "Almaty",
            "identified_on": ago(10),
            "exploitation_types": [ExploitationType.FORCED_LABOUR],
            "urgency": Urgency.ROUTINE,
            "needs": [Need.TRAVEL_DOCUMENTS, Need.LEGAL_AID],
            "safety_risk": SafetyRisk.MEDIUM,
        },
        "consent": {**consent, "obtained_by": "IOM caseworker", "share_with": ["embassy", "iom"]},
    }


def _from_zurich(ago: Callable[[int], date], consent: dict[str, Any]) -> dict[str, Any]:
    """The ngo referral of the demo."""
    return {
        "source": Source.NGO,
        "external_reference": "FIZ-2026-031",
        "concern": Concern.TRAFFICKING,
        "person": {
            "given_name": "Enkhjargal",
            "sex": Sex.FEMALE,
            "date_of_birth": date(1996, 9, 2),
            "nationality": "MN",
            "languages": ["mn", "de"],
        },
        "situation": {
            "identified_country": "CH",
            "identified_city": "Zürich",
            "identified_on": ago(20),
            "exploitation_types": [ExploitationType.SEXUAL, ExploitationType.FORCED_MARRIAGE],
            "urgency": Urgency.ROUTINE,
            "needs": [Need.PSYCHOSOCIAL, Need.SHELTER],
        },
        "consent": {**consent, "obtained_by": "FIZ counsellor", "share_with": []},
    }


def seed_referrals(orgs: dict[str, Organisation], clients: dict[str, dict[str, Any]]) -> list[str]:
    """Demo referrals from the police, IOM and the NGO, once (skipped when their references exist)."""
    session = get_session()
    references = []
    for kind, data in _demo_referrals(utcnow().date()):
        existing = session.scalar(
            sa.select(Referral.reference).where(Referral.external_reference == data["external_reference"])
        )
        if existing is None:
            org = orgs[kind]
            actor = Actor(
                organisation=OrganisationRef(id=org.id, kind=org.kind.value),
                client_id=clients[kind]["client_id"],
                user_id=None,
                role=None,
                scopes=frozenset({Scope.REFERRALS_SUBMIT.value}),
            )
            existing = referral_services.submit(session, actor, data=data).reference
        references.append(existing)
    return references
