"""Erasure on request and the retention run: crypto-shredding that leaves the reports' facts."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from referral_api.audit import services as audit_services
from referral_api.audit.models import AuditEvent
from referral_api.cases.models import Case
from referral_api.events import OutboxEvent
from referral_api.referrals.models import Referral
from tests.case_helpers import add_participant, open_case, transition
from tests.referral_data import referral_body

ERASE = {"reason": "person_request"}


def submit(client, world, who="police", **overrides) -> dict:
    answer = client.post("/api/v1/referrals", json=referral_body(**overrides), headers=world.headers(who))
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()


def test_erasing_a_case_is_an_admins_alone_and_needs_a_reason(client, world):
    case_id = open_case(client, world)
    add_participant(client, world, case_id, "embassy", "embassy")
    url = f"/api/v1/cases/{case_id}/erase"
    assert client.post(url, json=ERASE, headers=world.headers("coordinator")).status_code == 403
    assert client.post(url, json=ERASE, headers=world.headers("embassy")).status_code == 403
    assert client.post(url, json=ERASE, headers=world.headers("police")).status_code == 403
    assert client.post(url, json={}, headers=world.headers("admin")).status_code == 422
    assert client.post(url, json={"reason": "because"}, headers=world.headers("admin")).status_code == 422
    before = client.get(f"/api/v1/cases/{case_id}", headers=world.headers("embassy")).get_json()
    assert before["person"]["family_name"] == "Dorj"


def test_after_erasing_a_case_reads_answer_with_erased_markers(client, world, session):
    case_id = open_case(client, world)
    add_participant(client, world, case_id, "embassy", "embassy")
    client.post(
        f"/api/v1/cases/{case_id}/hold",
        json={"reason": "Waiting for the family in Darkhan"},
        headers=world.headers("coordinator"),
    )
    answer = client.post(f"/api/v1/cases/{case_id}/erase", json=ERASE, headers=world.headers("admin"))
    assert answer.status_code == 200, answer.get_json()
    done = answer.get_json()
    assert done["keys_shredded"] == 1 and len(done["referrals"]) == 1 and done["reason"] == "person_request"
    for who in ("coordinator", "embassy"):
        case = client.get(f"/api/v1/cases/{case_id}", headers=world.headers(who))
        assert case.status_code == 200, case.get_json()
        assert case.get_json()["erased"] is True and case.get_json()["person"] is None
    staff = client.get(f"/api/v1/cases/{case_id}", headers=world.headers("coordinator")).get_json()
    assert staff["hold_reason"] is None and staff["stage"] == "verification"
    timeline = client.get(f"/api/v1/cases/{case_id}/events", headers=world.headers("coordinator"))
    assert timeline.status_code == 200
    assert client.get("/api/v1/cases", headers=world.headers("coordinator")).status_code == 200
    referral_id = str(session.scalar(sa.select(Referral.id).where(Referral.case_id == uuid.UUID(case_id))))
    referral = client.get(f"/api/v1/referrals/{referral_id}", headers=world.headers("coordinator"))
    assert referral.status_code == 200, referral.get_json()
    body = referral.get_json()
    assert body["erased"] is True and body["person"] is None and body["situation"]["narrative"] is None
    assert body["situation"]["identified_country"] == "MO"  # plain facts stay
    assert client.get("/api/v1/referrals", headers=world.headers("coordinator")).status_code == 200
    again = client.post(f"/api/v1/cases/{case_id}/erase", json=ERASE, headers=world.headers("admin"))
    assert again.status_code == 409
    event = session.scalar(
        sa.select(AuditEvent)
        .where(AuditEvent.action == "privacy:record:erase")
        .order_by(AuditEvent.seq.desc())
    )
    assert event.resource_type == "case" and "Dorj" not in json.dumps(event.details)
    assert audit_services.verify(session).ok is True


def test_erasing_a_submitted_referral(client, world):
    referral = submit(client, world)
    url = f"/api/v1/referrals/{referral['id']}/erase"
    assert client.post(url, json=ERASE, headers=world.headers("coordinator")).status_code == 403
    assert client.post(url, json=ERASE, headers=world.headers("police")).status_code == 403
    assert client.post(url, json={"note": "x"}, headers=world.headers("admin")).status_code == 422
    answer = client.post(url, json=ERASE, headers=world.headers("admin"))
    assert answer.status_code == 200 and answer.get_json()["case"] is None
    for who in ("coordinator", "police"):
        read = client.get(f"/api/v1/referrals/{referral['id']}", headers=world.headers(who))
        assert read.status_code == 200, read.get_json()
        assert read.get_json()["erased"] is True


def _settle(session, model, ref_id, **values):
    session.execute(sa.update(model).where(model.id == uuid.UUID(str(ref_id))).values(**values))
    session.commit()


def test_retention_run_erases_what_is_due_and_leaves_reports_and_the_rest(client, world, session, run_cli):
    now = datetime.now(UTC)
    old_rejected = submit(client, world)
    young_rejected = submit(client, world, external_reference="P-2")
    for referral in (old_rejected, young_rejected):
        client.post(
            f"/api/v1/referrals/{referral['id']}/review", json={}, headers=world.headers("coordinator")
        )
        rejected = client.post(
            f"/api/v1/referrals/{referral['id']}/reject",
            json={"reason": "outside_mandate", "note": "Weekly review."},
            headers=world.headers("coordinator"),
        )
        assert rejected.status_code == 200, rejected.get_json()
    old_case = open_case(client, world, external_reference="P-3")
    young_case = open_case(client, world, external_reference="P-4")
    open_one = open_case(client, world, external_reference="P-5")
    for case_id in (old_case, young_case):
        transition(client, world, case_id, "closed", details={"closure_reason": "declined_assistance"})
    _settle(session, Referral, old_rejected["id"], status_changed_at=now - timedelta(days=100))
    _settle(session, Referral, young_rejected["id"], status_changed_at=now - timedelta(days=80))
    _settle(session, Case, old_case, closed_at=now - timedelta(days=6 * 366))
    _settle(session, Case, young_case, closed_at=now - timedelta(days=4 * 365))
    report_before = client.get(
        "/api/v1/reports/summary?group_by=year,identified_country", headers=world.headers("coordinator")
    ).get_json()

    dry = run_cli("retention", "run", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    listed = json.loads(dry.output)
    assert (
        listed["dry_run"] is True
        and len(listed["cases"]) == 1
        and listed["referrals"] == [old_rejected["reference"]]
    )
    assert (
        client.get(
            f"/api/v1/referrals/{old_rejected['id']}", headers=world.headers("coordinator")
        ).get_json()["erased"]
        is False
    )

    result = run_cli("retention", "run", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["keys_shredded"] == 2
    staff = world.headers("coordinator")
    assert client.get(f"/api/v1/referrals/{old_rejected['id']}", headers=staff).get_json()["person"] is None
    assert client.get(f"/api/v1/cases/{old_case}", headers=staff).get_json()["erased"] is True
    young = client.get(f"/api/v1/referrals/{young_rejected['id']}", headers=staff).get_json()
    assert young["erased"] is False and young["person"]["family_name"] == "Dorj"
    for case_id in (young_case, open_one):
        case = client.get(f"/api/v1/cases/{case_id}", headers=staff).get_json()
        assert case["erased"] is False and case["person"]["family_name"] == "Dorj"
    report_after = client.get(
        "/api/v1/reports/summary?group_by=year,identified_country", headers=staff
    ).get_json()
    assert report_after == report_before
    assert audit_services.verify(session).ok is True
    again = run_cli("retention", "run", "--json")
    assert json.loads(again.output)["cases"] == [] and json.loads(again.output)["referrals"] == []
    later = run_cli("retention", "run", "--json", "--now", (now + timedelta(days=2 * 365)).isoformat())
    assert json.loads(later.output)["cases"] and json.loads(later.output)["referrals"]


def _erased(client, world, **overrides) -> str:
    rid = submit(client, world, **overrides)["id"]
    answer = client.post(f"/api/v1/referrals/{rid}/erase", json=ERASE, headers=world.headers("admin"))
    assert answer.status_code == 200, answer.get_json()
    return rid


MOVES = [
    ("coordinator", "review", {}),
    ("coordinator", "accept", {}),
    ("coordinator", "reject", {"reason": "duplicate", "note": "The same person as REF-1."}),
    ("coordinator", "request-information", {"questions": "Her passport?"}),
    ("police", "information", {"answer": "Held by the employer."}),
    ("police", "withdraw", {}),
]


@pytest.mark.parametrize(("who", "move", "body"), MOVES, ids=[m for _w, m, _b in MOVES])
def test_no_move_is_made_on_an_erased_referral(client, world, session, who, move, body):
    """An erased referral was still open, and a coordinator could accept it: a live case opened on a
    shredded key (reject answered 410 only because its note could not be sealed)."""
    rid = _erased(client, world)
    before = session.scalar(sa.select(Referral.version).where(Referral.id == uuid.UUID(rid)))
    answer = client.post(f"/api/v1/referrals/{rid}/{move}", json=body, headers=world.headers(who))
    assert answer.status_code == 410, answer.get_json()
    assert answer.mimetype == "application/problem+json"
    assert answer.get_json()["type"].endswith("/data_erased")
    assert session.scalar(sa.select(sa.func.count()).select_from(Case)) == 0
    session.expire_all()
    assert session.scalar(sa.select(Referral.version).where(Referral.id == uuid.UUID(rid))) == before


def test_an_open_referral_erased_is_withdrawn_audited_and_announced(client, world, session):
    rid = submit(client, world)["id"]
    asked = client.post(f"/api/v1/referrals/{rid}/request-information", json={"questions": "Her age?"},
                        headers=world.headers("coordinator"))
    assert asked.status_code == 200
    erased = client.post(f"/api/v1/referrals/{rid}/erase", json={"reason": "consent_withdrawn"},
                         headers=world.headers("admin"))
    assert erased.status_code == 200, erased.get_json()
    for who in ("coordinator", "police"):
        seen = client.get(f"/api/v1/referrals/{rid}", headers=world.headers(who)).get_json()
        assert seen["status"] == "withdrawn" and seen["erased"] is True and not seen.get("allowed_actions")
    queue = client.get("/api/v1/referrals", query_string={"status": "information_requested"},
                       headers=world.headers("coordinator")).get_json()["items"]
    assert rid not in [item["id"] for item in queue]
    moved = session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "referrals:referral:withdraw",
                                                        AuditEvent.resource_id == rid)).all()
    assert [e.details for e in moved] == [{"move": "withdraw", "from": "information_requested",
                                           "to": "withdrawn", "erasure": "consent_withdrawn"}]
    announced = session.scalars(sa.select(OutboxEvent).where(OutboxEvent.resource_id == uuid.UUID(rid),
                                                             OutboxEvent.type == "referral.withdrawn")).all()
    assert len(announced) == 1 and not announced[0].payload.get("external_reference")
    assert audit_services.verify(session).ok is True


def test_a_decided_referral_erased_keeps_its_status(client, world, session):
    rid = submit(client, world)["id"]
    rejected = client.post(f"/api/v1/referrals/{rid}/reject", json={"reason": "not_mongolian", "note": "KZ."},
                           headers=world.headers("coordinator"))
    assert rejected.status_code == 200
    _ = client.post(f"/api/v1/referrals/{rid}/erase", json=ERASE, headers=world.headers("admin"))
    seen = client.get(f"/api/v1/referrals/{rid}", headers=world.headers("coordinator")).get_json()
    assert (seen["status"], seen["reject_reason"], seen["erased"]) == ("rejected", "not_mongolian", True)


def test_a_referral_erased_open_by_an_earlier_version_is_withdrawn_by_the_next_retention_run(
        client, world, session, run_cli, monkeypatch):
    """An earlier version's erasure left an open referral open; every move on it is a 410 now, so it
    would sit in the coordinators' queue for good. The next retention run withdraws it, audited with
    its erasure's reason (the old erasure is reproduced by switching the withdrawal off for it)."""
    from referral_api.reports import retention

    rid = submit(client, world)["id"]
    with monkeypatch.context() as old_version:
        old_version.setattr(retention.referral_services, "withdraw_erased", lambda *a, **k: None)
        erased = client.post(f"/api/v1/referrals/{rid}/erase", json={"reason": "person_request"},
                             headers=world.headers("admin"))
        assert erased.status_code == 200, erased.get_json()
    assert session.scalar(sa.select(Referral.status).where(Referral.id == uuid.UUID(rid))) == "submitted"
    ran = run_cli("retention", "run", "--json")
    assert ran.exit_code == 0, ran.output
    session.expire_all()
    assert session.scalar(sa.select(Referral.status).where(Referral.id == uuid.UUID(rid))) == "withdrawn"
    moved = session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "referrals:referral:withdraw",
                                                        AuditEvent.resource_id == rid)).all()
    assert [e.details for e in moved] == [{"move": "withdraw", "from": "submitted", "to": "withdrawn",
                                           "erasure": "person_request"}]
    again = run_cli("retention", "run", "--json")
    assert again.exit_code == 0 and session.scalar(
        sa.select(sa.func.count()).select_from(AuditEvent)
        .where(AuditEvent.action == "referrals:referral:withdraw", AuditEvent.resource_id == rid)) == 1
