"""`demo seed`'s partner officers: one person each at the embassy, the police and the NGO, so that a
newcomer can sign in to each partner's view of the console (credentials printed once, when created)."""

from __future__ import annotations

import secrets
from typing import Any

import sqlalchemy as sa

from .access import Role
from .auth import services as auth_services
from .auth.models import User
from .db import get_session
from .organisations.models import Organisation

DEMO_OFFICERS = {
    "embassy": "consul@embassy-seoul.example",
    "police": "officer@psp-macau.example",
    "ngo": "caseworker@fiz.example",
}


def seed_officers(orgs: dict[str, Organisation]) -> dict[str, dict[str, Any]]:
    """A partner officer per kind; a new one's password (and TOTP URI, for the embassy) returned once."""
    session = get_session()
    out: dict[str, dict[str, Any]] = {}
    for kind, email in DEMO_OFFICERS.items():
        if session.scalar(sa.select(User.id).where(User.email == email)) is not None:
            out[kind] = {"email": email, "password": None, "totp_uri": None}
            continue
        password = secrets.token_urlsafe(12)
        issued = auth_services.create_user(
            session,
            organisation=str(orgs[kind].id),
            email=email,
            role=Role.PARTNER_OFFICER,
            password=password,
            name=f"Demo {kind} officer",
        )
        out[kind] = {"email": email, "password": password, "totp_uri": issued.totp_uri}
    return out


def officers_text(officers: dict[str, dict[str, Any]]) -> str:
    lines = []
    for kind, o in officers.items():
        if o["password"] is None:
            lines.append(f"{kind} officer {o['email']} (exists; credentials not shown again)")
            continue
        totp = f"\n            totp_uri {o['totp_uri']}" if o["totp_uri"] else " (no TOTP code)"
        lines.append(f"{kind} officer {o['email']}  password {o['password']}{totp}")
    return "\n".join(lines)


def reissue_credentials(clients: dict[str, dict[str, Any]], people: list[dict[str, Any]]) -> None:
    """`demo seed --reissue-secrets`: new secrets for the demo clients, new passwords (and TOTP URIs,
    where the person has a second factor) for the demo people, filled into the dicts `demo seed`
    prints. The old ones stop working at once; each change is audited as the admin commands' are."""
    session = get_session()
    for client in clients.values():
        client["client_secret"] = auth_services.rotate_secret(session, client["client_id"]).client_secret
    for person in people:
        person["password"] = auth_services.reset_password(session, person["email"])
        has_totp = auth_services.find_user(session, person["email"]).totp_secret is not None
        person["totp_uri"] = auth_services.reset_totp(session, person["email"]).totp_uri if has_totp else None
