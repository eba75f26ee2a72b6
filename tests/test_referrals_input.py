"""Bad input gets a problem+json answer naming the field, and nothing is written (docs/security.md)."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa

from referral_api.audit.models import AuditEvent
from referral_api.events import OutboxEvent
from referral_api.referrals.models import Referral
from referral_api.referrals.schemas import NARRATIVE_MAX
from referral_api.validators import LATEST_UTC_OFFSET
from tests.referral_data import DELETE, referral_body

# A day that is tomorrow everywhere on Earth: after today in UTC+14 (validators.not_in_future), not
# after the machine's today (from 10:00 UTC, that day is already today in Kiribati, and allowed).
TOMORROW = ((datetime.now(UTC) + LATEST_UTC_OFFSET).date() + timedelta(days=1)).isoformat()
IDENTIFIED = date.today() - timedelta(days=3)  # referral_body's situation.identified_on
ADULT_AGE = IDENTIFIED.year - 1999 - ((IDENTIFIED.month, IDENTIFIED.day) < (4, 12))
TOMORROW_OF_IDENTIFIED = (IDENTIFIED + timedelta(days=1)).isoformat()
A_CHILD_ON_CHILD_PROTECTION = {
    "person__date_of_birth": "2012-05-01", "consent": {"given": False}, "legal_basis": "child_protection"
}


def counts(session):
    return tuple(session.scalar(sa.select(sa.func.count()).select_from(m)) for m in (Referral, OutboxEvent))


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (referral_body(person__estimated_age="thirty"), "person.estimated_age"),
        (referral_body(situation__exploitation_types="sexual"), "situation.exploitation_types"),
        (referral_body(consent__given="perhaps"), "consent.given"),
        (referral_body(status="accepted"), "status"),
        (referral_body(person__approved_by="me"), "person.approved_by"),
        (referral_body(source="interpol"), "source"),
        (referral_body(situation__urgency="whenever"), "situation.urgency"),
        (referral_body(situation__exploitation_types=["slavery"]), "situation.exploitation_types.0"),
        (referral_body(situation__identified_country="XX"), "situation.identified_country"),
        (referral_body(person__nationality="mongolia"), "person.nationality"),
        (referral_body(situation__identified_on=TOMORROW), "situation.identified_on"),
        (referral_body(person__date_of_birth=TOMORROW), "person.date_of_birth"),
        (referral_body(consent={"given": False}), "legal_basis"),
        (referral_body(consent__method=DELETE), "consent.method"),
        (referral_body(situation__narrative="x" * (NARRATIVE_MAX + 1)), "situation.narrative"),
        (referral_body(person__national_id="AB12345678"), "person.national_id"),
        (referral_body(person__date_of_birth=DELETE), "person.date_of_birth"),
        (referral_body(person=DELETE), "person"),
        (referral_body(person__date_of_birth="2010-01-01"), "consent.method"),
        ([referral_body()], "body"),
        # a repeated item of a vocabulary's list (the reports would count it twice)
        (referral_body(situation__exploitation_types=["sexual", "sexual", "sexual"]),
         "situation.exploitation_types"),
        (referral_body(situation__needs=["shelter", "medical", "shelter"]), "situation.needs"),
        (referral_body(consent__share_with=["iom", "iom"]), "consent.share_with"),
        # a date of birth after the identification, or an estimated age that contradicts it
        (referral_body(person__date_of_birth=TOMORROW_OF_IDENTIFIED, consent__method="guardian"),
         "person.date_of_birth"),
        (referral_body(person__estimated_age=9), "person.estimated_age"),
        (referral_body(person__estimated_age=ADULT_AGE + 2), "person.estimated_age"),
        # child protection is a basis for a minor only, with or without consent
        (referral_body(consent={"given": False}, legal_basis="child_protection"), "legal_basis"),
        (referral_body(legal_basis="child_protection"), "legal_basis"),
        # names of spaces alone; a phone number without five digits
        (referral_body(person__given_name="   "), "person.given_name"),
        (referral_body(person__family_name=" \u00a0 "), "person.family_name"),
        (referral_body(person__aliases=["Bat", "  "]), "person.aliases.1"),
        (referral_body(person__phone="-- ( ) --"), "person.phone"),
        (referral_body(person__phone="+12-34"), "person.phone"),  # four digits
    ],
)
def test_invalid_submission_names_the_field_and_writes_nothing(client, world, session, body, field):
    headers = world.headers("police")
    before = counts(session)
    response = client.post("/api/v1/referrals", json=body, headers=headers)
    assert response.status_code == 422, response.get_json()
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert field in problem["errors"], problem["errors"]
    assert counts(session) == before


def test_malformed_json_is_400_and_writes_nothing(client, world, session):
    before = counts(session)
    response = client.post(
        "/api/v1/referrals",
        data='{"source": "police", "person": {',
        headers={**world.headers("police"), "Content-Type": "application/json"},
    )
    assert response.status_code == 400 and "body" in response.get_json()["errors"]
    assert counts(session) == before


def test_non_json_is_415(client, world, session):
    before = counts(session)
    response = client.post(
        "/api/v1/referrals",
        data="source=police",
        headers={**world.headers("police"), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 415
    assert counts(session) == before


def test_oversized_body_is_413(client, world, app):
    big = referral_body(situation__narrative="x" * app.config["MAX_CONTENT_LENGTH"])
    response = client.post("/api/v1/referrals", json=big, headers=world.headers("police"))
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=10000", "limit"),
        ("limit=0", "limit"),
        ("status=lost", "status"),
        ("identified_country=ZZ", "identified_country"),
        ("submitted_after=yesterday", "submitted_after"),
        ("colour=red", "colour"),
        ("cursor=" + "A" * 600, "cursor"),
    ],
)
def test_bad_list_parameters_are_422(client, world, query, field):
    response = client.get(f"/api/v1/referrals?{query}", headers=world.headers("coordinator"))
    assert response.status_code == 422 and field in response.get_json()["errors"]


@pytest.mark.parametrize(
    ("action", "body", "field"),
    [
        ("reject", {"reason": "bored", "note": "n"}, "reason"),
        ("reject", {"reason": "other"}, "note"),
        ("request-information", {}, "questions"),
        ("accept", {"case_id": 42}, "case_id"),
        ("accept", {"note": "n", "extra": 1}, "extra"),
    ],
)
def test_bad_move_bodies_are_422_and_move_nothing(client, world, session, action, body, field):
    rid = client.post("/api/v1/referrals", json=referral_body(), headers=world.headers("police")).get_json()[
        "id"
    ]
    audit_before = session.scalar(sa.select(sa.func.count()).select_from(AuditEvent))
    before = counts(session)
    response = client.post(
        f"/api/v1/referrals/{rid}/{action}", json=body, headers=world.headers("coordinator")
    )
    assert response.status_code == 422 and field in response.get_json()["errors"]
    assert counts(session) == before
    assert (
        session.scalar(sa.select(Referral.status).where(Referral.id == uuid.UUID(rid)))
        == "submitted"
    )
    assert session.scalar(sa.select(sa.func.count()).select_from(AuditEvent)) >= audit_before


def test_unknown_referral_is_404_not_500(client, world):
    for ref in ("REF-1999-000001", "00000000-0000-0000-0000-000000000000", "not-an-id"):
        assert client.get(f"/api/v1/referrals/{ref}", headers=world.headers("coordinator")).status_code == 404


def _forged_cursor(values) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


@pytest.mark.parametrize("path", ["/api/v1/referrals", "/api/v1/cases"])
@pytest.mark.parametrize(
    "values",
    [
        ["2026-01-01T00:00:00+00:00", 5],
        ["2026-01-01T00:00:00+00:00", ["00000000-0000-0000-0000-000000000000"]],
        ["2026-01-01T00:00:00+00:00", {"id": "00000000-0000-0000-0000-000000000000"}],
        [20260101, "00000000-0000-0000-0000-000000000000"],
        [None, None],
        [True, False],
        ["2026-01-01T00:00:00", "00000000-0000-0000-0000-000000000000"],  # no time zone
        ["0001-01-01T00:00:00+14:00", "00000000-0000-0000-0000-000000000000"],  # before year 1 in UTC
    ],
)
def test_a_forged_cursor_of_other_types_is_a_422_naming_it(client, world, path, values):
    """A cursor decodes to JSON: a number, list or object where the list gave out strings was an
    AttributeError, a 500; it is a 422 naming `cursor` like any damaged cursor."""
    response = client.get(f"{path}?cursor={_forged_cursor(values)}", headers=world.headers("police"))
    assert response.status_code == 422 and "cursor" in response.get_json()["errors"], response.get_json()


def test_blank_names_and_digitless_phones_are_refused_together(client, world):
    body = referral_body(person__given_name="   ", person__phone="-- ( ) --")
    response = client.post("/api/v1/referrals", json=body, headers=world.headers("police"))
    assert response.status_code == 422, response.get_json()
    errors = response.get_json()["errors"]
    assert "person.given_name" in errors and "person.phone" in errors, errors


@pytest.mark.parametrize(
    "overrides",
    [
        {"person__estimated_age": ADULT_AGE - 1},  # an estimate a year off the date of birth
        {"person__estimated_age": ADULT_AGE + 1},
        {"person__date_of_birth": IDENTIFIED.isoformat(), "consent__method": "guardian"},  # born that day
        {"person__phone": "+976 12345"},
        A_CHILD_ON_CHILD_PROTECTION,
    ],
)
def test_what_agrees_is_accepted(client, world, overrides):
    body = referral_body(**overrides)
    response = client.post("/api/v1/referrals", json=body, headers=world.headers("police"))
    assert response.status_code == 201, response.get_json()


def _asked(client, world, **overrides) -> str:
    rid = client.post("/api/v1/referrals", json=referral_body(**overrides), headers=world.headers("police")
                      ).get_json()["id"]
    asked = client.post(f"/api/v1/referrals/{rid}/request-information", json={"questions": "Her age?"},
                        headers=world.headers("coordinator"))
    assert asked.status_code == 200, asked.get_json()
    return rid


@pytest.mark.parametrize(
    ("overrides", "answer", "field"),
    [
        ({}, {"person": {"date_of_birth": TOMORROW_OF_IDENTIFIED}}, "person.date_of_birth"),
        ({}, {"situation": {"identified_on": "1998-01-01"}}, "situation.identified_on"),
        ({}, {"person": {"estimated_age": 9}}, "person.estimated_age"),
        ({}, {"person": {"date_of_birth": "1990-01-01", "estimated_age": 20}}, "person.estimated_age"),
        # an answer that makes a child-protection referral's person an adult leaves it without a basis
        (A_CHILD_ON_CHILD_PROTECTION, {"person": {"date_of_birth": "1990-05-01"}}, "legal_basis"),
    ],
)
def test_an_answer_is_checked_as_a_submission_is(client, world, session, overrides, answer, field):
    rid = _asked(client, world, **overrides)
    before = counts(session)
    response = client.post(f"/api/v1/referrals/{rid}/information", json={"answer": "Her age.", **answer},
                           headers=world.headers("police"))
    assert response.status_code == 422, response.get_json()
    assert response.mimetype == "application/problem+json"
    assert field in response.get_json()["errors"], response.get_json()["errors"]
    assert counts(session) == before
    assert session.scalar(sa.select(Referral.status).where(Referral.id == uuid.UUID(rid))) == (
        "information_requested")


def test_a_date_of_birth_answered_alone_replaces_an_estimate(client, world):
    rid = _asked(client, world, person__date_of_birth=DELETE, person__estimated_age=30)
    response = client.post(f"/api/v1/referrals/{rid}/information",
                           json={"answer": "Her passport says.", "person": {"date_of_birth": "1990-05-01"}},
                           headers=world.headers("police"))
    assert response.status_code == 200, response.get_json()
