"""A console form's text: several lines pass where the API's schema takes free text (a narrative typed
with Enter in the web intake form), are refused by name in a one-line field, and other control
characters are refused on every form before any view reads them."""

from __future__ import annotations

import sqlalchemy as sa

from referral_api import privacy
from referral_api.referrals.models import Referral
from tests import console_helpers as c
from tests.partner_helpers import partners, sign_in_as  # noqa: F401  (the fixture)
from tests.test_console_partner import GOOD_FORM, _form_page

NARRATIVE = "Worked in a café without pay.\r\nPassport kept by the employer."


def _posted(app, session, partners, **fields):
    http = sign_in_as(app, session, partners, "ngo_officer")
    html, key = _form_page(http, "/console/partner/referrals/new")
    data = {**GOOD_FORM, **fields, "csrf_token": c.csrf_of(html), "idempotency_key": key}
    return http.post("/console/partner/referrals/new", data=data)


def test_a_narrative_of_several_lines_is_taken_from_the_intake_form(app, session, partners):
    answer = _posted(app, session, partners, **{"situation.narrative": NARRATIVE})
    assert answer.status_code == 303, answer.get_data(as_text=True)[-400:]
    theirs = Referral.external_reference == GOOD_FORM["external_reference"]
    referral = session.scalar(sa.select(Referral).where(theirs))
    assert "Passport kept by the employer." in privacy.readable(referral, "narrative")


def test_a_line_break_in_a_one_line_field_is_named_and_what_was_typed_stays(app, session, partners):
    answer = _posted(app, session, partners, **{"person.given_name": "Oyun\ntsetseg",
                                                "situation.narrative": NARRATIVE})
    body = answer.get_data(as_text=True)
    assert answer.status_code == 422 and 'id="error-person.given_name"' in body
    assert "Passport kept by the employer." in body


def test_other_control_characters_are_refused_on_every_console_form(app, session, partners):
    answer = _posted(app, session, partners, **{"situation.narrative": "a\x00b"})
    assert answer.status_code == 400
    admin = sign_in_as(app, session, partners, "admin")
    token = c.csrf_of(admin.get("/console/admin/erasure").get_data(as_text=True))
    refused = admin.post("/console/admin/erasure", data={"csrf_token": token, "kind": "case",
                                                        "reference": "CASE\x07", "reason": "person_request"})
    assert refused.status_code == 400


def test_a_line_break_in_a_name_or_e_mail_of_the_admin_forms_is_refused_by_name(app, session, partners):
    """Forms no schema loads (people, clients) are one line in every field: nothing is stored."""
    from referral_api.auth.models import Client, User

    admin = sign_in_as(app, session, partners, "admin")
    police = str(partners.orgs["police"].id)
    token = c.csrf_of(admin.get("/console/admin/people").get_data(as_text=True))
    person = admin.post("/console/admin/people", data={
        "csrf_token": token, "organisation": police, "role": "partner_officer",
        "email": "leong\n@example.org", "name": "Leong\r\nKa Man"})
    body = person.get_data(as_text=True)
    assert person.status_code == 422 and 'id="error-email"' in body and 'id="error-name"' in body
    client = admin.post("/console/admin/clients", data={
        "csrf_token": token, "organisation": police, "name": "Macau\ncase system",
        "scopes": ["referrals:read"], "auth_method": "client_secret_basic"})
    assert client.status_code == 422 and 'id="error-name"' in client.get_data(as_text=True)
    session.expire_all()
    assert session.scalar(sa.select(User).where(User.email.like("leong%"))) is None
    assert session.scalar(sa.select(Client).where(Client.name.like("Macau%"))) is None
