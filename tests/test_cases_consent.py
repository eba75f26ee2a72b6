"""Consent changed or withdrawn: a participant no longer covered loses the person at once, and hears of it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from referral_api.audit.models import AuditEvent
from referral_api.events import OutboxEvent
from referral_api.webhooks import fanout, services
from referral_api.webhooks.models import WebhookDelivery
from tests.case_helpers import add_participant, open_case
from tests.webhook_helpers import Actor, align_cursor

URL = "https://hooks.partner.example/in"


@pytest.fixture(autouse=True)
def _public_dns(monkeypatch):
    import socket

    def getaddrinfo(host, port, *args, **kwargs):
        assert host == "hooks.partner.example"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def consent(client, world, case_id, share_with, who="coordinator"):
    return client.post(
        f"/api/v1/cases/{case_id}/consent", json={"share_with": share_with}, headers=world.headers(who)
    )


def test_withdrawn_consent_ends_the_embassys_view_at_once_and_it_hears_of_it(app, client, world, session):
    case_id = open_case(client, world)
    add_participant(client, world, case_id, "embassy", "embassy")
    embassy = world.orgs["embassy"]
    with app.app_context():
        align_cursor(session)
        sub, _secret = services.create(
            session,
            actor=Actor(embassy.id),
            url=URL,
            events=["case.consent_changed"],
            allow_http_loopback=True,
        )
        session.commit()
    before = client.get(f"/api/v1/cases/{case_id}", headers=world.headers("embassy")).get_json()
    assert before["person"]["family_name"] == "Dorj"

    changed = consent(client, world, case_id, ["iom"])
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["share_with"] == ["iom"]
    after = client.get(f"/api/v1/cases/{case_id}", headers=world.headers("embassy"))
    assert after.status_code == 200 and after.get_json()["person"] is None

    event = session.scalar(
        sa.select(OutboxEvent).where(
            OutboxEvent.resource_id == uuid.UUID(case_id), OutboxEvent.type == "case.consent_changed"
        )
    )
    assert event is not None and set(event.payload) <= {"id", "reference", "occurred_at"}
    with app.app_context():
        fanout.fan_out(session, now=datetime.now(UTC))
    delivered = session.scalars(
        sa.select(WebhookDelivery).where(WebhookDelivery.subscription_id == sub.id)
    ).all()
    assert [d.event_seq for d in delivered] == [event.seq]
    withdrawn = session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "cases:consent:withdraw"))
    assert withdrawn.details["kinds"] == ["embassy"]

    given = consent(client, world, case_id, ["iom", "embassy"])
    assert given.status_code == 200
    again = client.get(f"/api/v1/cases/{case_id}", headers=world.headers("embassy")).get_json()
    assert again["person"]["family_name"] == "Dorj"
    assert session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "cases:consent:give")) is not None


def test_only_mgec_staff_change_consent_and_only_to_known_kinds(client, world):
    case_id = open_case(client, world)
    add_participant(client, world, case_id, "embassy", "embassy")
    assert consent(client, world, case_id, [], who="embassy").status_code == 403
    assert consent(client, world, case_id, ["mgec"]).status_code == 422
    assert (
        client.post(
            f"/api/v1/cases/{case_id}/consent", json={}, headers=world.headers("coordinator")
        ).status_code
        == 422
    )
    assert consent(client, world, case_id, [], who="caseworker").status_code == 200


def test_the_reason_consent_changed_is_sealed_on_the_timeline_for_mgec_staff_only(client, world, session):
    case_id = open_case(client, world)
    add_participant(client, world, case_id, "embassy", "embassy")
    note = "Said on the phone to Oyunaa that her uncle works at the embassy."
    changed = client.post(
        f"/api/v1/cases/{case_id}/consent",
        json={"share_with": ["iom"], "note": note},
        headers=world.headers("coordinator"),
    )
    assert changed.status_code == 200, changed.get_json()
    staff = client.get(f"/api/v1/cases/{case_id}/events", headers=world.headers("caseworker")).get_json()
    entries = [e for e in staff["items"] if e["kind"] == "consent_changed"]
    assert len(entries) == 1
    assert entries[0]["note"] == note
    assert entries[0]["details"] == {"share_with": ["iom"], "withdrawn": ["embassy"], "given": []}
    # the participant sees the timeline without the consent entry at all
    seen = client.get(f"/api/v1/cases/{case_id}/events", headers=world.headers("embassy")).get_json()
    assert seen["items"] and all(e["kind"] != "consent_changed" for e in seen["items"])
    # sealed at rest: the column holds ciphertext, not the words
    raw = session.execute(
        sa.text("SELECT note FROM case_events WHERE kind = 'consent_changed'")
    ).scalar_one()
    assert raw and note.encode() not in bytes(raw) and b"uncle" not in bytes(raw)
    # without a note, the change is on the timeline all the same; a bad note names the field
    assert consent(client, world, case_id, ["iom", "embassy"]).status_code == 200
    bad = client.post(
        f"/api/v1/cases/{case_id}/consent",
        json={"share_with": [], "note": "x" * 5001},
        headers=world.headers("coordinator"),
    )
    assert bad.status_code == 422 and "note" in bad.get_json()["errors"]
    kinds = [e["kind"] for e in client.get(f"/api/v1/cases/{case_id}/events",
                                           headers=world.headers("coordinator")).get_json()["items"]]
    assert kinds.count("consent_changed") == 2


def test_a_case_shows_the_person_of_the_referral_that_opened_it_not_one_linked_later(client, world):
    """A referral submitted earlier (here without consent) and accepted into the case afterwards is
    not the case's person: participants see the opening referral's person under its consent."""
    from tests.referral_data import referral_body

    earlier = client.post("/api/v1/referrals", headers=world.headers("ngo"), json=referral_body(
        external_reference="FIZ-2026-77", source="ngo", person__given_name="Saraa",
        person__current_location="Hiding at a friend's flat, Zurich",
        consent={"given": False}, legal_basis="vital_interest",
    ))
    assert earlier.status_code == 201, earlier.get_json()
    case_id = open_case(client, world, who="police")  # consent: share_with embassy, iom
    add_participant(client, world, case_id, "iom", "iom")
    linked = client.post(f"/api/v1/referrals/{earlier.get_json()['id']}/accept", json={"case_id": case_id},
                         headers=world.headers("coordinator"))
    assert linked.status_code == 200 and linked.get_json()["case_id"] == case_id, linked.get_json()
    for who in ("iom", "coordinator"):
        person = client.get(f"/api/v1/cases/{case_id}", headers=world.headers(who)).get_json()["person"]
        assert person["given_name"] == "Batbayar", (who, person)
        assert "Zurich" not in (person["current_location"] or ""), (who, person)


def test_a_minors_case_is_shared_with_more_kinds_only_by_a_guardians_consent(client, world, session):
    """docs/domain.md: a minor's consent is a guardian's. The case knows the person is a minor from the
    referral that opened it; withdrawing consent needs nobody's."""
    from referral_api.cases.models import CaseEvent, CaseEventKind

    case_id = open_case(client, world, person__date_of_birth="2012-06-01", consent={"given": False},
                        legal_basis="child_protection")
    add_participant(client, world, case_id, "embassy", "embassy")

    def embassy_sees():
        return client.get(f"/api/v1/cases/{case_id}", headers=world.headers("embassy")).get_json()["person"]

    for body in ({"share_with": ["embassy"]}, {"share_with": ["embassy"], "method": "verbal"},
                 {"share_with": ["embassy"], "method": None}):
        refused = client.post(f"/api/v1/cases/{case_id}/consent", json=body,
                              headers=world.headers("caseworker"))
        assert refused.status_code == 422, refused.get_json()
        assert list(refused.get_json()["errors"]) == ["method"]
        assert embassy_sees() is None
    bad = client.post(f"/api/v1/cases/{case_id}/consent",
                      json={"share_with": ["embassy"], "method": "mother"},
                      headers=world.headers("caseworker"))
    assert bad.status_code == 422 and "method" in bad.get_json()["errors"]
    given = client.post(f"/api/v1/cases/{case_id}/consent",
                        json={"share_with": ["embassy"], "method": "guardian"},
                        headers=world.headers("caseworker"))
    assert given.status_code == 200, given.get_json()
    assert embassy_sees()["date_of_birth"] == "2012-06-01"
    assert consent(client, world, case_id, []).status_code == 200  # withdrawn: no method needed
    assert embassy_sees() is None
    entries = session.scalars(sa.select(CaseEvent.details).where(
        CaseEvent.case_id == uuid.UUID(case_id), CaseEvent.kind == CaseEventKind.CONSENT_CHANGED
    ).order_by(CaseEvent.recorded_at)).all()
    assert [e.get("consent_method") for e in entries] == ["guardian", None]
    given_audit = session.scalars(sa.select(AuditEvent.details).where(
        AuditEvent.action == "cases:consent:give", AuditEvent.resource_id == case_id)).all()
    assert given_audit == [{"kinds": ["embassy"], "share_with": ["embassy"], "method": "guardian"}]


def test_an_adults_consent_change_needs_no_method(client, world):
    case_id = open_case(client, world, consent__share_with=[])
    assert consent(client, world, case_id, ["embassy", "ngo"]).status_code == 200


def test_a_consent_changes_methods_are_a_referrals():
    from referral_api.cases.persons import ConsentMethod
    from referral_api.referrals.vocab import ConsentMethod as ReferralConsentMethod

    assert [m.value for m in ConsentMethod] == [m.value for m in ReferralConsentMethod]
