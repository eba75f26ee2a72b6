"""MGEC admins' actions on clients and people name the admin in the audit trail; TOTP is an organisation's
setting (an admin requires it for an organisation; an embassy always requires it), enforced at sign-in and
when a person is created."""

from __future__ import annotations

import re
from html import unescape

import pyotp
import pytest
import sqlalchemy as sa

from referral_api.access import Role
from referral_api.audit.actions import AuditAction
from referral_api.audit.models import AuditEvent
from referral_api.auth import services as auth_services
from referral_api.organisations.models import Organisation
from tests import console_helpers as c
from tests import oauth_helpers as h
from tests.partner_helpers import partners, sign_in_as  # noqa: F401  (the fixture)


def _by(session, action: AuditAction, resource_id) -> list[AuditEvent]:
    session.expire_all()
    return list(session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action == action.value, AuditEvent.resource_id == str(resource_id))))


def test_client_and_people_actions_name_the_signed_in_admin(app, session, partners):
    http = sign_in_as(app, session, partners, "admin")
    admin = partners.people["admin"][0]
    token = c.csrf_of(http.get("/console/admin/clients").get_data(as_text=True))
    made = http.post("/console/admin/clients", data={
        "csrf_token": token, "organisation": str(partners.orgs["police"].id), "name": "Macau police system",
        "scopes": "referrals:submit", "auth_method": "client_secret_basic"}).get_data(as_text=True)
    client_id = re.search(r'id="issued-client-id">([^<]+)<', made).group(1)
    pk = auth_services.find_client(session, client_id).id
    http.post(f"/console/admin/clients/{client_id}/rotate", data={"csrf_token": token})
    http.post(f"/console/admin/clients/{client_id}/revoke", data={"csrf_token": token})
    person = http.post("/console/admin/people", data={
        "csrf_token": token, "organisation": str(partners.orgs["embassy"].id),
        "email": "consul-3@example.org", "role": "partner_officer"})
    assert person.status_code == 201
    user = auth_services.find_user(session, "consul-3@example.org")
    http.post(f"/console/admin/people/{user.id}/reset-totp", data={"csrf_token": token})
    http.post(f"/console/admin/people/{user.id}/deactivate", data={"csrf_token": token})
    expected = {
        (AuditAction.AUTH_CLIENT_CREATE, pk): 1,
        (AuditAction.AUTH_CLIENT_ROTATE_SECRET, pk): 1,
        (AuditAction.AUTH_CLIENT_REVOKE, pk): 1,
        (AuditAction.AUTH_USER_CREATE, user.id): 1,
        (AuditAction.AUTH_TOTP_ENROL, user.id): 2,  # at creation (an embassy officer), then the reset
        (AuditAction.AUTH_USER_DEACTIVATE, user.id): 1,
    }
    for (action, resource_id), count in expected.items():
        events = _by(session, action, resource_id)
        assert len(events) == count, action
        who = {(e.user_id, e.organisation_id) for e in events}
        assert who == {(str(admin.id), admin.organisation_id)}, action


def test_the_command_line_stays_the_actor_of_its_own_actions(session, partners):
    issued = auth_services.create_client(session, organisation=str(partners.orgs["ngo"].id), name="CLI made",
                                         scopes=["referrals:submit"])
    (event,) = _by(session, AuditAction.AUTH_CLIENT_CREATE, issued.client.id)
    assert (event.user_id, event.organisation_id, event.client_id) == (None, None, None)


def _sign_in_refused(app, session, user) -> bool:
    """Whether the login form refuses `user` (password right, no code given)."""
    http = app.test_client()
    start = http.get("/console/login/start")
    form = http.get(start.headers["Location"]).get_data(as_text=True)
    fields = {k: unescape(v) for k, v in h.hidden_fields(form).items()}
    fields.update(email=user.email, password=h.PASSWORD, totp="")
    return http.post("/oauth/authorize", data=fields).status_code == 400


def test_an_admin_requires_totp_for_a_police_organisation(app, session, partners):
    police = partners.orgs["police"]
    officer = partners.people["police_officer"][0]
    assert not _sign_in_refused(app, session, officer)  # optional for the police until an admin says so
    http = sign_in_as(app, session, partners, "admin")
    page = http.get("/console/admin/organisations").get_data(as_text=True)
    token = c.csrf_of(page)
    assert http.post(f"/console/admin/organisations/{police.id}/require-totp",
                     data={"csrf_token": token}).status_code == 303
    session.expire_all()
    assert session.get(Organisation, police.id).totp_required is True
    (event,) = _by(session, AuditAction.ORGANISATION_REQUIRE_TOTP, police.id)
    assert event.user_id == str(partners.people["admin"][0].id) and event.details["totp_required"] is True
    assert "Required" in http.get("/console/admin/organisations").get_data(as_text=True).split(
        f'id="totp-{police.id}"', 1)[1].split("</td>", 1)[0]
    # enforced at sign-in: an officer enrolled before cannot skip the code; a reset enrols them
    assert _sign_in_refused(app, session, officer)
    reset = http.post(f"/console/admin/people/{officer.id}/reset-totp", data={"csrf_token": token})
    assert 'src="data:image/svg+xml' in reset.get_data(as_text=True)
    # enforced at creation: a new police officer enrols though the box was not ticked
    made = http.post("/console/admin/people", data={
        "csrf_token": token, "organisation": str(police.id), "email": "leong-3@example.org",
        "role": "partner_officer"})
    assert made.status_code == 201 and 'src="data:image/svg+xml' in made.get_data(as_text=True)
    # made optional again: a person without a code signs in without one
    http.post(f"/console/admin/organisations/{police.id}/totp-optional", data={"csrf_token": token})
    ngo_officer = partners.people["ngo_officer"][0]
    assert not _sign_in_refused(app, session, ngo_officer)
    plain = http.post("/console/admin/people", data={
        "csrf_token": token, "organisation": str(police.id), "email": "leong-4@example.org",
        "role": "partner_officer"}).get_data(as_text=True)
    assert "issued-password" in plain and "data:image/svg+xml" not in plain


def test_an_embassy_always_requires_totp(app, session, partners, run_cli):
    embassy = partners.orgs["embassy"]
    http = sign_in_as(app, session, partners, "admin")
    page = http.get("/console/admin/organisations").get_data(as_text=True)
    cell = page.split(f'id="totp-{embassy.id}"', 1)[1].split("</td>", 1)[0]
    assert "Always required" in cell and "<form" not in cell
    refused = http.post(f"/console/admin/organisations/{embassy.id}/totp-optional",
                        data={"csrf_token": c.csrf_of(page)})
    assert refused.status_code == 409 and "always sign in" in refused.get_data(as_text=True)
    assert _by(session, AuditAction.ORGANISATION_REQUIRE_TOTP, embassy.id) == []
    cli = run_cli("orgs", "require-totp", str(embassy.id), "--optional")
    assert cli.exit_code != 0
    assert auth_services.needs_totp(Role.PARTNER_OFFICER, session.get(Organisation, embassy.id))


@pytest.mark.parametrize("flag, expected", [("--required", True), ("--optional", False)])
def test_the_cli_sets_the_same_setting(session, partners, run_cli, flag, expected):
    answer = run_cli("orgs", "require-totp", str(partners.orgs["ngo"].id), flag,
                     "--json")
    assert answer.exit_code == 0, answer.output
    session.expire_all()
    assert session.get(Organisation, partners.orgs["ngo"].id).totp_required is expected
    (event,) = _by(session, AuditAction.ORGANISATION_REQUIRE_TOTP, partners.orgs["ngo"].id)
    assert event.user_id is None and event.details["totp_required"] is expected
    issued = auth_services.create_user(session, organisation=str(partners.orgs["ngo"].id),
                                       email=f"ngo-{expected}@example.org", role=Role.PARTNER_OFFICER,
                                       password=h.PASSWORD)
    assert (issued.totp_uri is not None) is expected
    if expected:
        assert pyotp.parse_uri(issued.totp_uri).now()
