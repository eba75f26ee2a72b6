"""The partners' console over the Flask test client: embassy cases and moves, the web intake form,
answering and withdrawing, and the TOTP rule for partner officers."""

from __future__ import annotations

import json
import re
import uuid

import pyotp
import pytest
import sqlalchemy as sa

from referral_api.access import Role
from referral_api.auth import services as auth_services
from referral_api.cases.models import Case
from referral_api.cases.stages import Stage
from referral_api.referrals.models import Referral
from referral_api.referrals.states import ReferralStatus
from tests import console_helpers as c
from tests import oauth_helpers as h
from tests.partner_helpers import partners, sign_in_as  # noqa: F401  (the fixture)

GOOD_FORM = {
    "source": "ngo",
    "external_reference": "FIZ-2026-77",
    "person.given_name": "Oyuntsetseg",
    "person.family_name": "Bat",
    "person.sex": "female",
    "person.date_of_birth": "1996-02-03",
    "person.nationality": "MN",
    "person.passport_number": "E7654321",
    "situation.identified_country": "CH",
    "situation.identified_city": "Zürich",
    "situation.identified_on": "2026-11-20",
    "situation.exploitation_types": ["sexual", "forced_labour"],
    "situation.urgency": "urgent",
    "consent.given": "yes",
    "consent.obtained_on": "2026-11-21",
    "consent.method": "written",
    "consent.share_with": ["embassy"],
}


class _Guard:
    """No address is locked here: this test is about the second factor only."""

    def attempt(self, user_id):
        return True

    def locked(self, user_id):
        return False

    def succeeded(self, user_id):
        return None

    def slow_down(self):
        return None


def _ngo_referrals(session, world):
    ngo = world.orgs["ngo"].id
    return session.scalars(sa.select(Referral).where(Referral.submitted_by_organisation_id == ngo)).all()


def _form_page(http, path):
    html = http.get(path).get_data(as_text=True)
    key = re.search(r'name="idempotency_key" value="([^"]+)"', html)
    return html, (key.group(1) if key else "")


def test_embassy_officers_need_totp_police_may_have_it(app, session, world):
    with app.app_context():
        embassy = auth_services.create_user(
            session,
            organisation=str(world.orgs["embassy"].id),
            email="consul@example.org",
            role=Role.PARTNER_OFFICER,
            password=h.PASSWORD,
        )
        police = auth_services.create_user(
            session,
            organisation=str(world.orgs["police"].id),
            email="leong@example.org",
            role=Role.PARTNER_OFFICER,
            password=h.PASSWORD,
        )
        chosen = auth_services.create_user(
            session,
            organisation=str(world.orgs["ngo"].id),
            email="fiz@example.org",
            role=Role.PARTNER_OFFICER,
            password=h.PASSWORD,
            totp=True,
        )
        assert embassy.totp_uri and chosen.totp_uri and police.totp_uri is None
        guard = _Guard()
        for email in ("consul@example.org", "fiz@example.org"):
            with pytest.raises(auth_services.LoginFailed):
                auth_services.login(session, email=email, password=h.PASSWORD, guard=guard)
        code = pyotp.parse_uri(embassy.totp_uri).now()
        assert (
            auth_services.login(
                session, email="consul@example.org", password=h.PASSWORD, guard=guard, totp_code=code
            ).id
            == embassy.user.id
        )
        assert auth_services.login(session, email="leong@example.org", password=h.PASSWORD, guard=guard)


def test_embassy_officer_sees_own_cases_records_travel_documents_and_404s_the_other(app, session, partners):
    http = sign_in_as(app, session, partners, "embassy_officer")
    assert http.get("/console/").headers["Location"].endswith("/console/partner/cases")
    listing = http.get("/console/partner/cases").get_data(as_text=True)
    ours = session.get(Case, uuid.UUID(partners.ours))
    theirs = session.get(Case, uuid.UUID(partners.theirs))
    assert ours.reference in listing and theirs.reference not in listing
    assert "Travel documents: Embassy" in listing  # what the case waits for, and who records it
    assert http.get(f"/console/partner/cases/{partners.theirs}").status_code == 404
    page = http.get(f"/console/partner/cases/{partners.ours}").get_data(as_text=True)
    assert "E1234567" in page  # the person consented to share with embassies
    assert "Put on hold" not in page and "Organisations taking part" not in page  # staff's forms only
    refused = http.post(
        f"/console/partner/cases/{partners.ours}/move",
        data={
            "csrf_token": c.csrf_of(page),
            "version": c.version_of(page),
            "to": "travel_documents",
            "d.method": "passport",
        },
    )
    body = refused.get_data(as_text=True)
    assert refused.status_code == 422 and 'id="error-travel_documents-verified_on"' in body
    assert session.get(Case, uuid.UUID(partners.ours)).stage is Stage.VERIFICATION
    moved = http.post(
        f"/console/partner/cases/{partners.ours}/move",
        data={
            "csrf_token": c.csrf_of(page),
            "version": c.version_of(page),
            "to": "travel_documents",
            "d.verified_on": "2026-11-25",
            "d.method": "passport",
        },
    )
    assert moved.status_code == 303
    session.expire_all()
    assert session.get(Case, uuid.UUID(partners.ours)).stage is Stage.TRAVEL_DOCUMENTS
    timeline = http.get(f"/console/partner/cases/{partners.ours}").get_data(as_text=True)
    assert "Verification → Travel documents" in timeline and "Passport" in timeline
    # a move the embassy does not own (arrival is MGEC's) is not offered
    assert 'value="arrived"' not in timeline


def test_ngo_intake_keeps_what_was_typed_then_submits_once(app, session, partners):
    http = sign_in_as(app, session, partners, "ngo_officer", english=False)
    html, key = _form_page(http, "/console/partner/referrals/new")
    assert key and "Хүнийг ЖТБТ-д шилжүүлэх" in html and "Шилжүүлгийг ЖТБТ-д илгээх" in html
    wrong = {
        **GOOD_FORM,
        "person.passport_number": "!",
        "consent.obtained_on": "",
        "csrf_token": c.csrf_of(html),
        "idempotency_key": key,
    }
    refused = http.post("/console/partner/referrals/new", data=wrong)
    body = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert (
        'value="Oyuntsetseg"' in body
        and 'value="FIZ-2026-77"' in body
        and 'value="forced_labour" checked' in body
    )
    assert 'id="error-person.passport_number"' in body and 'id="error-consent.obtained_on"' in body
    assert 'class="error-summary"' in body and 'href="#field-person.passport_number"' in body
    assert _ngo_referrals(session, partners) == []  # nothing half-written
    good = {**GOOD_FORM, "csrf_token": c.csrf_of(body), "idempotency_key": key}
    first = http.post("/console/partner/referrals/new", data=good)
    again = http.post("/console/partner/referrals/new", data=good)  # a double click
    assert first.status_code == 303 and again.status_code == 303
    assert first.headers["Location"] == again.headers["Location"]
    mine = _ngo_referrals(session, partners)
    assert len(mine) == 1 and mine[0].external_reference == "FIZ-2026-77"
    listing = http.get("/console/partner/referrals").get_data(as_text=True)
    assert mine[0].reference in listing and partners.referral.reference not in listing


def test_minor_without_guardian_is_refused_as_by_the_api(app, session, partners):
    http = sign_in_as(app, session, partners, "ngo_officer")
    html, key = _form_page(http, "/console/partner/referrals/new")
    minor = {
        **GOOD_FORM,
        "person.date_of_birth": "2012-01-01",
        "csrf_token": c.csrf_of(html),
        "idempotency_key": key,
    }
    refused = http.post("/console/partner/referrals/new", data=minor)
    assert refused.status_code == 422
    assert "A minor&#39;s consent is given by a guardian" in refused.get_data(as_text=True)


@pytest.mark.parametrize("odd", [{"person": "x"}, {"consent": "yes"}, {"person.given_name.first": "Oyun"}])
def test_an_intake_form_with_a_field_named_as_a_group_is_refused_named(app, session, partners, odd):
    """A posted `person` beside `person.given_name` (or a field under a field) is a 422 with the form kept,
    never a 500; nothing is submitted."""
    http = sign_in_as(app, session, partners, "ngo_officer")
    html, key = _form_page(http, "/console/partner/referrals/new")
    data = {**odd, **GOOD_FORM, "csrf_token": c.csrf_of(html), "idempotency_key": key}
    refused = http.post("/console/partner/referrals/new", data=data)
    assert refused.status_code == 422 and 'value="Oyuntsetseg"' in refused.get_data(as_text=True)
    assert _ngo_referrals(session, partners) == []


def test_police_officer_answers_a_question_and_withdraws(app, client, session, partners):
    ref = str(partners.referral.id)
    asked = client.post(
        f"/api/v1/referrals/{ref}/request-information",
        json={"questions": "Her passport?"},
        headers=partners.headers("coordinator"),
    )
    assert asked.status_code == 200, asked.get_json()
    http = sign_in_as(app, session, partners, "police_officer")
    page = http.get(f"/console/partner/referrals/{ref}").get_data(as_text=True)
    assert "Her passport?" in page and "Answer MGEC" in page
    empty = http.post(
        f"/console/partner/referrals/{ref}/information",
        data={"csrf_token": c.csrf_of(page), "version": c.version_of(page), "answer": ""},
    )
    assert empty.status_code == 422 and 'id="error-answer"' in empty.get_data(as_text=True)
    answered = http.post(
        f"/console/partner/referrals/{ref}/information",
        data={
            "csrf_token": c.csrf_of(page),
            "version": c.version_of(page),
            "answer": "Held by the employer.",
        },
    )
    assert answered.status_code == 303
    page = http.get(f"/console/partner/referrals/{ref}").get_data(as_text=True)
    withdrawn = http.post(
        f"/console/partner/referrals/{ref}/withdraw",
        data={"csrf_token": c.csrf_of(page), "version": c.version_of(page), "note": "Went home"},
    )
    assert withdrawn.status_code == 303
    session.expire_all()
    assert session.get(Referral, partners.referral.id).status is ReferralStatus.WITHDRAWN
    other = sign_in_as(app, session, partners, "ngo_officer")
    assert other.get(f"/console/partner/referrals/{ref}").status_code == 404


def test_demo_seed_gives_each_partner_view_a_person(run_cli, app, session):
    first = run_cli("demo", "seed", "--json")
    assert first.exit_code == 0, first.output
    officers = json.loads(first.output)["officers"]
    assert set(officers) == {"embassy", "police", "ngo"}
    assert (
        officers["embassy"]["totp_uri"]
        and not officers["police"]["totp_uri"]
        and not officers["ngo"]["totp_uri"]
    )
    with app.app_context():
        c.register(session)
    http = app.test_client()
    user = auth_services.find_user(session, officers["embassy"]["email"])
    totp = pyotp.parse_uri(officers["embassy"]["totp_uri"])
    assert c.sign_in(http, session, user, totp, password=officers["embassy"]["password"]).status_code == 302
    listing = http.get("/console/partner/cases").get_data(as_text=True)
    assert listing.count("/console/partner/cases/") == 2  # the case it takes part in, and the one it referred
    case = session.scalar(sa.select(Case).where(Case.stage == Stage.TRAVEL_DOCUMENTS))
    assert 'value="travel_planning"' in http.get(f"/console/partner/cases/{case.id}").get_data(as_text=True)
    again = json.loads(run_cli("demo", "seed", "--json").output)["officers"]
    assert all(o["password"] is None for o in again.values())


@pytest.mark.parametrize(
    ("changes", "field", "said"),
    [
        ({"person.date_of_birth": "2026-11-21"}, "person.date_of_birth",
         "Төрсөн огноо нь хүнийг илрүүлсэн өдрөөс хойш байж болохгүй."),
        ({"person.estimated_age": "9"}, "person.estimated_age",
         "Тооцоолсон нас төрсөн огноотой зөрчилдөж байна"),
        ({"consent.given": "no", "legal_basis": "child_protection"}, "legal_basis",
         "Хүүхэд хамгааллын үндэслэл зөвхөн насанд хүрээгүй хүнд хамаарна"),
        ({"person.phone": "-- ( ) --"}, "person.phone", "Утасны дугаар дор хаяж 5 оронтой байна."),
    ],
)
def test_intake_refuses_what_the_api_refuses_in_mongolian(app, session, partners, changes, field, said):
    http = sign_in_as(app, session, partners, "ngo_officer", english=False)
    html, key = _form_page(http, "/console/partner/referrals/new")
    form = {**GOOD_FORM, **changes, "csrf_token": c.csrf_of(html), "idempotency_key": key}
    refused = http.post("/console/partner/referrals/new", data=form)
    body = refused.get_data(as_text=True)
    assert refused.status_code == 422 and f'id="error-{field}"' in body, body[-3000:]
    assert said in body
    assert _ngo_referrals(session, partners) == []
