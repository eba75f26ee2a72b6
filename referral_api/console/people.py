"""MGEC admins: people (create, deactivate, reset TOTP), through the service functions the CLI calls.

A new person's first password and an authenticator's enrolment (a QR code drawn here, on the server,
as SVG) are shown once, on the answer to the POST; they are never stored in the clear nor shown again.
"""

from __future__ import annotations

import secrets
from typing import Any

import segno
from flask import Response, redirect, url_for

from ..access import Role, Scope
from ..auth import services as auth_services
from ..db import get_session
from ..errors import Conflict, InvalidPayload
from ..organisations import services as org_services
from .forms import chosen, field_errors, one_line, posted
from .shell import actor, bp, page, render


def enrolment(totp_uri: str | None) -> str | None:
    """The TOTP provisioning URI as a QR code (an SVG data URI: CSP allows data: images)."""
    if not totp_uri:
        return None
    return segno.make(totp_uri, error="m").svg_data_uri(scale=5, border=2)


def people_page(
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    form: dict[str, Any] | None = None,
    issued: dict[str, Any] | None = None,
) -> Response:
    session = get_session()
    return render(
        "console/admin_people.html",
        status=status,
        active="admin_people",
        people=auth_services.list_users(session),
        names={o.id: o.name for o in org_services.list_all(session)},
        organisations=org_services.search(session),
        roles=list(Role),
        errors=errors or {},
        form=form or {},
        issued=issued,
    )


@bp.route("/admin/people")
@page(Scope.ADMIN)
def admin_people() -> Response:
    """Every person: organisation, role, whether they use TOTP, whether they are active."""
    return people_page()


@bp.route("/admin/people", methods=["POST"])
@page(Scope.ADMIN)
def admin_person_create() -> Response:
    """Create a person with a one-time first password (and an enrolment QR code where TOTP is used)."""
    session, form = get_session(), posted()
    password = secrets.token_urlsafe(12)
    try:
        one_line(form)
        if form.get("role") not in {r.value for r in Role}:
            raise InvalidPayload(errors={"role": ["Must be one of the roles."]})
        with chosen("organisation"):
            issued = auth_services.create_user(
                session,
                organisation=form.get("organisation", ""),
                email=form.get("email", ""),
                role=Role(form["role"]),
                password=password,
                name=form.get("name", ""),
                totp=form.get("totp") == "yes",
                actor=actor(),
            )
    except (InvalidPayload, Conflict) as refused:
        session.rollback()
        return people_page(status=refused.status, errors=field_errors(refused.errors), form=form)
    shown = {
        "user": issued.user,
        "password": password,
        "qr": enrolment(issued.totp_uri),
        "uri": issued.totp_uri,
    }
    return people_page(status=201, issued=shown)


@bp.route("/admin/people/<ref>/<action>", methods=["POST"])
@page(Scope.ADMIN)
def admin_person_action(ref: str, action: str) -> Response:
    """Deactivate a person (their tokens stop working), or give them a new TOTP secret (QR shown once)."""
    session = get_session()
    if action == "deactivate":
        auth_services.deactivate_user(session, ref, actor=actor())
        return redirect(url_for("console.admin_people"), code=303)
    if action == "reset-totp":
        issued = auth_services.reset_totp(session, ref, actor=actor())
        shown = {
            "user": issued.user,
            "password": None,
            "qr": enrolment(issued.totp_uri),
            "uri": issued.totp_uri,
        }
        return people_page(issued=shown)
    return people_page(status=404)
