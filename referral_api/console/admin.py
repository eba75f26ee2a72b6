"""MGEC admins: organisations (create, suspend, activate) and OAuth clients (create, revoke, rotate).

Each action calls the service function the CLI calls (organisations.services, auth.services), so that
it is checked and audited as the CLI's; a new secret is shown once, on the answer to the POST itself.
"""

from __future__ import annotations

import functools
from typing import Any

from flask import Response, current_app, redirect, url_for
from flask_babel import lazy_gettext as _l

from ..access import ALL_SCOPES, CLIENT_CREDENTIALS_SCOPES, Scope
from ..auth import services as auth_services
from ..auth.models import ClientAuthMethod
from ..db import get_session
from ..errors import Conflict, InvalidPayload
from ..organisations import services as org_services
from ..organisations.models import OrganisationKind
from ..organisations.schemas import OrganisationInSchema
from .forms import chosen, field_errors, load_form, one_line, posted
from .shell import actor, bp, page, render

TOTP_ALWAYS = _l("An embassy's officers always sign in with an authenticator code.")
MGEC_STAYS = _l("MGEC cannot be suspended: all of its people and systems, you too, would be locked out. "
                "Deactivate a person or revoke a client instead.")
CLIENT_FIELDS = ("organisation", "name", "scopes", "auth_method", "jwks_uri")


def organisations_page(
    *, status: int = 200, errors: dict[str, str] | None = None, form: dict[str, Any] | None = None
) -> Response:
    return render(
        "console/admin_organisations.html",
        status=status,
        active="admin_organisations",
        organisations=org_services.list_all(get_session()),
        kinds=[k for k in OrganisationKind if k is not OrganisationKind.MGEC],
        errors=errors or {},
        form=form or {},
    )


@bp.route("/admin/organisations")
@page(Scope.ADMIN)
def admin_organisations() -> Response:
    """Every organisation with its kind, country and status."""
    return organisations_page()


@bp.route("/admin/organisations", methods=["POST"])
@page(Scope.ADMIN)
def admin_organisation_create() -> Response:
    """Create an organisation (the CLI's schema and service, audited with the admin as actor)."""
    session, form = get_session(), posted()
    data = {**form, "country": form.get("country", "").upper()}
    try:
        org_services.create(session, **load_form(OrganisationInSchema(), data), actor=actor())
    except (InvalidPayload, Conflict) as refused:
        session.rollback()
        return organisations_page(status=refused.status, errors=field_errors(refused.errors), form=form)
    return redirect(url_for("console.admin_organisations"), code=303)


@bp.route("/admin/organisations/<ref>/<action>", methods=["POST"])
@page(Scope.ADMIN)
def admin_organisation_action(ref: str, action: str) -> Response:
    """Suspend (its tokens stop working) or activate an organisation; require a TOTP code at its people's
    sign-in, or make it optional (never for an embassy: 409)."""
    session = get_session()
    services = {
        "suspend": org_services.suspend,
        "activate": org_services.activate,
        "require-totp": functools.partial(org_services.require_totp, required=True),
        "totp-optional": functools.partial(org_services.require_totp, required=False),
    }
    if action not in services:
        return organisations_page(status=404)
    try:
        services[action](session, ref, actor=actor())
    except Conflict as refused:
        session.rollback()
        mgec = "status" in (refused.errors or {})
        said = {"status": str(MGEC_STAYS)} if mgec else {"totp_required": str(TOTP_ALWAYS)}
        return organisations_page(status=refused.status, errors=said)
    return redirect(url_for("console.admin_organisations"), code=303)


def clients_page(
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    form: dict[str, Any] | None = None,
    issued: auth_services.IssuedClient | None = None,
) -> Response:
    session = get_session()
    return render(
        "console/admin_clients.html",
        status=status,
        active="admin_clients",
        clients=auth_services.list_clients(session),
        names={o.id: o.name for o in org_services.list_all(session)},
        organisations=org_services.search(session, exclude_kinds=(OrganisationKind.MGEC,)),
        scopes=sorted(CLIENT_CREDENTIALS_SCOPES),
        methods=[m for m in ClientAuthMethod if m is not ClientAuthMethod.NONE],
        errors=errors or {},
        form=form or {"auth_method": ClientAuthMethod.CLIENT_SECRET_BASIC.value},
        issued=issued,
    )


@bp.route("/admin/clients")
@page(Scope.ADMIN)
def admin_clients() -> Response:
    """Every OAuth client: organisation, scopes, how it authenticates, whether it is revoked."""
    return clients_page()


def _client_args(form: dict[str, Any]) -> dict[str, Any]:
    scopes = form.get("scopes", [])
    scopes = [scopes] if isinstance(scopes, str) else scopes
    unknown = [s for s in scopes if s not in ALL_SCOPES]
    problems = {"scopes": ["unknown scopes"]} if unknown else {}
    if not form.get("name"):
        problems["name"] = ["Missing data for required field."]
    if not form.get("organisation"):
        problems["organisation"] = ["Missing data for required field."]
    if form.get("auth_method") not in {m.value for m in ClientAuthMethod}:
        problems["auth_method"] = ["Must be one of the methods."]
    if problems:
        raise InvalidPayload(errors=problems)
    return {
        "organisation": form["organisation"],
        "name": form["name"],
        "scopes": scopes,
        "auth_method": ClientAuthMethod(form["auth_method"]),
        "jwks_uri": form.get("jwks_uri") or None,
        "require_private_key_jwt": current_app.config["SETTINGS"].require_private_key_jwt,
    }


@bp.route("/admin/clients", methods=["POST"])
@page(Scope.ADMIN)
def admin_client_create() -> Response:
    """Register a client; its secret (for a secret client) is on this answer only."""
    session, form = get_session(), posted()
    form = {k: v for k, v in form.items() if k in CLIENT_FIELDS}
    try:
        with chosen("organisation"):
            issued = auth_services.create_client(session, **_client_args(one_line(form)), actor=actor())
    except (InvalidPayload, Conflict) as refused:
        session.rollback()
        return clients_page(status=refused.status, errors=field_errors(refused.errors), form=form)
    return clients_page(status=201, issued=issued)


@bp.route("/admin/clients/<client_id>/<action>", methods=["POST"])
@page(Scope.ADMIN)
def admin_client_action(client_id: str, action: str) -> Response:
    """Revoke a client (its tokens stop working), or rotate its secret (the new one shown once)."""
    session = get_session()
    if action == "revoke":
        auth_services.revoke_client(session, client_id, actor=actor())
        return redirect(url_for("console.admin_clients"), code=303)
    if action == "rotate":
        return clients_page(issued=auth_services.rotate_secret(session, client_id, actor=actor()))
    return clients_page(status=404)
