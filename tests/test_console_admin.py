"""MGEC admins in the console: organisations and OAuth clients, audited as the CLI's actions are."""

from __future__ import annotations

import re
from html import unescape

import pyotp
import pytest
import sqlalchemy as sa

from referral_api.audit.actions import AuditAction
from referral_api.audit.models import AuditEvent
from referral_api.auth import services as auth_services
from referral_api.auth.models import User
from referral_api.organisations.models import Organisation, OrganisationStatus
from tests import console_helpers as c
from tests import oauth_helpers as h
from tests.partner_helpers import partners, sign_in_as  # noqa: F401  (the fixture)


def _actions(session, action: AuditAction) -> list[AuditEvent]:
    return list(session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action)))


def test_admin_creates_a_police_client_sees_its_secret_once_then_revokes_it(app, client, session, partners):
    http = sign_in_as(app, session, partners, "admin")
    page = http.get("/console/admin/clients").get_data(as_text=True)
    police = str(partners.orgs["police"].id)
    refused = http.post(
        "/console/admin/clients",
        data={"csrf_token": c.csrf_of(page), "organisation": police, "auth_method": "client_secret_basic"},
    )
    body = refused.get_data(as_text=True)
    assert refused.status_code == 422 and 'id="error-name"' in body and 'id="error-scopes"' not in body
    created = http.post(
        "/console/admin/clients",
        data={
            "csrf_token": c.csrf_of(page),
            "organisation": police,
            "name": "Macau case system",
            "scopes": ["referrals:submit", "referrals:read"],
            "auth_method": "client_secret_basic",
        },
    )
    html = created.get_data(as_text=True)
    assert created.status_code == 201 and created.headers["Cache-Control"] == "no-store"
    client_id = re.search(r'id="issued-client-id">([^<]+)<', html).group(1)
    secret = re.search(r'id="issued-secret">([^<]+)<', html).group(1)
    assert secret not in http.get("/console/admin/clients").get_data(as_text=True)  # shown once
    token = client.post(
        "/oauth/token",
        headers=h.basic(client_id, secret),
        data={"grant_type": "client_credentials", "scope": "referrals:read"},
    )
    assert token.status_code == 200, token.get_json()
    bearer = {"Authorization": f"Bearer {token.get_json()['access_token']}"}
    assert client.get("/api/v1/referrals", headers=bearer).status_code == 200
    assert [
        e.details["client_id"]
        for e in _actions(session, AuditAction.AUTH_CLIENT_CREATE)
        if e.details.get("client_id") == client_id
    ]
    revoked = http.post(f"/console/admin/clients/{client_id}/revoke", data={"csrf_token": c.csrf_of(page)})
    assert revoked.status_code == 303
    assert client.get("/api/v1/referrals", headers=bearer).status_code == 401
    assert any(
        e.details.get("client_id") == client_id for e in _actions(session, AuditAction.AUTH_CLIENT_REVOKE)
    )


def test_admin_rotates_a_secret_shown_once(app, client, session, partners):
    http = sign_in_as(app, session, partners, "admin")
    page = http.get("/console/admin/clients").get_data(as_text=True)
    created = http.post(
        "/console/admin/clients",
        data={
            "csrf_token": c.csrf_of(page),
            "organisation": str(partners.orgs["ngo"].id),
            "name": "FIZ system",
            "scopes": "referrals:submit",
            "auth_method": "client_secret_post",
        },
    ).get_data(as_text=True)
    client_id = re.search(r'id="issued-client-id">([^<]+)<', created).group(1)
    old = re.search(r'id="issued-secret">([^<]+)<', created).group(1)
    rotated = http.post(f"/console/admin/clients/{client_id}/rotate", data={"csrf_token": c.csrf_of(page)})
    new = re.search(r'id="issued-secret">([^<]+)<', rotated.get_data(as_text=True)).group(1)
    assert new != old
    stale = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": old},
    )
    fresh = client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": new},
    )
    assert stale.status_code == 401 and fresh.status_code == 200


def test_admin_creates_suspends_and_activates_an_organisation(app, session, partners):
    http = sign_in_as(app, session, partners, "admin")
    page = http.get("/console/admin/organisations").get_data(as_text=True)
    token = c.csrf_of(page)
    taken = http.post(
        "/console/admin/organisations",
        data={"csrf_token": token, "name": "FIZ Zurich", "kind": "ngo", "country": "ch"},
    )
    assert taken.status_code == 409 and 'id="error-name"' in taken.get_data(as_text=True)
    made = http.post(
        "/console/admin/organisations",
        data={
            "csrf_token": token,
            "name": "Embassy of Mongolia in Tokyo",
            "kind": "embassy",
            "country": "jp",
        },
    )
    assert made.status_code == 303
    org = session.scalar(sa.select(Organisation).where(Organisation.name == "Embassy of Mongolia in Tokyo"))
    assert org.country == "JP"
    assert (
        http.post(f"/console/admin/organisations/{org.id}/suspend", data={"csrf_token": token}).status_code
        == 303
    )
    session.expire_all()
    assert session.get(Organisation, org.id).status is OrganisationStatus.SUSPENDED
    http.post(f"/console/admin/organisations/{org.id}/activate", data={"csrf_token": token})
    session.expire_all()
    assert session.get(Organisation, org.id).status is OrganisationStatus.ACTIVE
    admin_user = partners.people["admin"][0]
    events = _actions(session, AuditAction.ORGANISATION_SUSPEND)
    assert [e for e in events if e.resource_id == str(org.id) and e.user_id == str(admin_user.id)]


def test_mgec_itself_cannot_be_suspended_from_the_console(app, session, partners):
    """The page offers no Suspend for MGEC, and a POST made anyway is refused by the service: a 409 page
    saying why, in both languages; MGEC and the admin's own session go on."""
    http = sign_in_as(app, session, partners, "admin")
    token = c.csrf_of(http.get("/console/admin/organisations").get_data(as_text=True))
    mgec = partners.orgs["mgec"].id
    refused = http.post(f"/console/admin/organisations/{mgec}/suspend", data={"csrf_token": token})
    assert refused.status_code == 409 and "MGEC cannot be suspended" in refused.get_data(as_text=True)
    session.expire_all()
    assert session.get(Organisation, mgec).status is OrganisationStatus.ACTIVE
    assert not _actions(session, AuditAction.ORGANISATION_SUSPEND)
    assert http.get("/console/language/mn").status_code == 302
    again = http.post(f"/console/admin/organisations/{mgec}/suspend", data={"csrf_token": token})
    body = again.get_data(as_text=True)
    assert again.status_code == 409 and "MGEC cannot be suspended" not in body and "ЖТБТ" in body


@pytest.mark.parametrize("organisation", ["", "00000000-0000-4000-8000-000000000000"])
def test_a_person_or_client_of_no_known_organisation_names_the_field(app, session, partners, organisation):
    """The organisation left at 'Choose…' (or one unknown) is a 422 naming the field with the form kept, not
    the service's bare 404 page; nobody and nothing is created."""
    http = sign_in_as(app, session, partners, "admin")
    token = c.csrf_of(http.get("/console/admin/people").get_data(as_text=True))
    person = {"csrf_token": token, "organisation": organisation, "email": "new.officer@example.org",
              "name": "New Officer", "role": "partner_officer"}
    refused = http.post("/console/admin/people", data=person)
    body = refused.get_data(as_text=True)
    assert refused.status_code == 422 and 'id="error-organisation"' in body
    assert 'value="new.officer@example.org"' in body and "Please choose one of the options." in body
    client = {"csrf_token": token, "organisation": organisation, "name": "Macau case system",
              "scopes": ["referrals:read"], "auth_method": "client_secret_basic"}
    refused = http.post("/console/admin/clients", data=client)
    body = refused.get_data(as_text=True)
    assert refused.status_code == 422 and 'id="error-organisation"' in body and "Macau case system" in body
    session.expire_all()
    assert not session.scalar(sa.select(User).where(User.email == "new.officer@example.org"))


def test_a_partner_officer_gets_403_on_admin_actions(app, session, partners):
    http = sign_in_as(app, session, partners, "police_officer")
    page = http.get("/console/partner/cases").get_data(as_text=True)
    answer = http.post(
        "/console/admin/clients",
        data={"csrf_token": c.csrf_of(page), "name": "x", "organisation": str(partners.orgs["police"].id)},
    )
    assert answer.status_code == 403


def test_admin_adds_people_with_a_first_password_and_an_enrolment_qr_code_shown_once(app, session, partners):
    http = sign_in_as(app, session, partners, "admin")
    page = http.get("/console/admin/people").get_data(as_text=True)
    token = c.csrf_of(page)
    embassy = str(partners.orgs["embassy"].id)
    wrong = http.post(
        "/console/admin/people",
        data={"csrf_token": token, "organisation": embassy, "email": "consul-two", "role": "partner_officer"},
    )
    assert wrong.status_code == 422 and 'id="error-email"' in wrong.get_data(as_text=True)
    made = http.post(
        "/console/admin/people",
        data={
            "csrf_token": token,
            "organisation": embassy,
            "email": "consul-two@example.org",
            "role": "partner_officer",
        },
    )
    html = made.get_data(as_text=True)
    assert made.status_code == 201 and 'src="data:image/svg+xml' in html  # an embassy officer enrols
    password = re.search(r'id="issued-password">([^<]+)<', html).group(1)
    uri = unescape(re.search(r'id="issued-uri">([^<]+)<', html).group(1))
    user = auth_services.find_user(session, "consul-two@example.org")
    assert (
        auth_services.login(
            session,
            email=user.email,
            password=password,
            guard=_NoLock(),
            totp_code=pyotp.parse_uri(uri).now(),
        ).id
        == user.id
    )
    assert password not in http.get("/console/admin/people").get_data(as_text=True)
    police = http.post(
        "/console/admin/people",
        data={
            "csrf_token": token,
            "role": "partner_officer",
            "organisation": str(partners.orgs["police"].id),
            "email": "leong-two@example.org",
        },
    ).get_data(as_text=True)
    assert "issued-password" in police and "data:image/svg+xml" not in police  # no TOTP for the police
    reset = http.post(f"/console/admin/people/{user.id}/reset-totp", data={"csrf_token": token})
    assert 'src="data:image/svg+xml' in reset.get_data(as_text=True)
    assert (
        http.post(f"/console/admin/people/{user.id}/deactivate", data={"csrf_token": token}).status_code
        == 303
    )
    session.expire_all()
    assert not auth_services.find_user(session, user.email).active
    assert _actions(session, AuditAction.AUTH_USER_DEACTIVATE)[-1].resource_id == str(user.id)


class _NoLock:
    def attempt(self, user_id):
        return True

    def locked(self, user_id):
        return False

    def succeeded(self, user_id):
        return None

    def slow_down(self):
        return None


def test_a_name_over_200_characters_is_refused_on_the_form(app, session, partners):
    """Names are String(200): a longer one is a 422 naming it, not a database error (PostgreSQL)."""
    http = sign_in_as(app, session, partners, "admin")
    police = str(partners.orgs["police"].id)
    token = c.csrf_of(http.get("/console/admin/clients").get_data(as_text=True))
    client_form = {"csrf_token": token, "organisation": police, "name": "a" * 201,
                   "scopes": "referrals:submit", "auth_method": "client_secret_basic"}
    person_form = {"csrf_token": token, "organisation": police, "name": "a" * 201,
                   "email": "long-name@example.org", "role": "partner_officer"}
    for path, form in (("/console/admin/clients", client_form), ("/console/admin/people", person_form)):
        refused = http.post(path, data=form)
        assert refused.status_code == 422 and 'id="error-name"' in refused.get_data(as_text=True), path
    assert [cl for cl in auth_services.list_clients(session) if cl.name == "a" * 201] == []
    assert session.scalar(sa.select(sa.func.count()).select_from(User).where(User.name == "a" * 201)) == 0
