"""MGEC admins in the console: retention (dry run, then a confirmed run) and erasure on request with its
reason code, through the services the CLI and the API call, audited as theirs with the admin as actor."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from referral_api.audit.actions import AuditAction
from referral_api.audit.models import AuditEvent
from referral_api.cases.models import Case
from referral_api.referrals.models import Referral
from referral_api.reports.retention import REQUEST_REASONS
from tests import console_helpers as c
from tests.partner_helpers import partners, sign_in_as  # noqa: F401  (the fixture)
from tests.referral_data import referral_body


def _events(session, action: AuditAction) -> list[AuditEvent]:
    session.expire_all()
    return list(session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action.value)
                                .order_by(AuditEvent.seq)))


def _rejected_long_ago(client, world, session) -> dict:
    """A police referral rejected 100 days ago (past RETENTION_REJECTED_DAYS)."""
    made = client.post("/api/v1/referrals", json=referral_body(external_reference="OLD-1"),
                       headers=world.headers("police")).get_json()
    client.post(f"/api/v1/referrals/{made['id']}/review", json={}, headers=world.headers("coordinator"))
    rejected = client.post(f"/api/v1/referrals/{made['id']}/reject",
                           json={"reason": "outside_mandate", "note": "Weekly review."},
                           headers=world.headers("coordinator"))
    assert rejected.status_code == 200, rejected.get_json()
    session.execute(sa.update(Referral).where(Referral.id == uuid.UUID(made["id"]))
                    .values(status_changed_at=datetime.now(UTC) - timedelta(days=100)))
    session.commit()
    return made


def test_retention_shows_the_dry_run_and_runs_only_once_confirmed(app, client, session, partners):
    old = _rejected_long_ago(client, partners, session)
    http = sign_in_as(app, session, partners, "admin")
    page = http.get("/console/admin/retention").get_data(as_text=True)
    assert re.search(r'id="due-referrals">1<', page) and re.search(r'id="due-cases">0<', page)
    assert old["reference"] in page
    assert _events(session, AuditAction.PRIVACY_RETENTION_RUN) == []  # as the CLI's dry run
    token = c.csrf_of(page)
    unconfirmed = http.post("/console/admin/retention", data={"csrf_token": token})
    assert unconfirmed.status_code == 422 and 'id="error-confirm"' in unconfirmed.get_data(as_text=True)
    session.expire_all()
    assert session.get(Referral, uuid.UUID(old["id"])).erased_at is None
    ran = http.post("/console/admin/retention", data={"csrf_token": token, "confirm": "yes"})
    html = ran.get_data(as_text=True)
    assert ran.status_code == 200 and re.search(r'id="erased-referrals">1<', html)
    assert re.search(r'id="due-referrals">0<', html)
    session.expire_all()
    assert session.get(Referral, uuid.UUID(old["id"])).erased_at is not None
    admin_id = str(partners.people["admin"][0].id)
    (run,) = _events(session, AuditAction.PRIVACY_RETENTION_RUN)
    assert run.user_id == admin_id
    assert set(run.details) == {"now", "referrals", "cases", "keys_shredded"}
    assert (run.details["referrals"], run.details["cases"]) == (1, 0)
    erased = [e for e in _events(session, AuditAction.PRIVACY_RECORD_ERASE) if e.resource_id == old["id"]]
    assert [(e.user_id, e.details["reason"]) for e in erased] == [(admin_id, "retention")]


def test_erasure_on_request_asks_for_a_reason_code_and_a_confirmation(app, client, session, partners):
    http = sign_in_as(app, session, partners, "admin")
    page = http.get("/console/admin/erasure").get_data(as_text=True)
    assert sorted(re.findall(r'<option value="([a-z_]+)"', page)) == sorted(REQUEST_REASONS)
    token = c.csrf_of(page)
    ref = session.get(Case, uuid.UUID(str(partners.ours))).reference
    free_text = http.post("/console/admin/erasure",
                          data={"csrf_token": token, "kind": "case", "reference": ref, "reason": "because"})
    assert free_text.status_code == 422 and 'id="error-reason"' in free_text.get_data(as_text=True)
    request = {"csrf_token": token, "kind": "case", "reference": ref, "reason": "person_request"}
    asked = http.post("/console/admin/erasure", data=request)
    assert asked.status_code == 200 and 'id="confirm-erasure"' in asked.get_data(as_text=True)
    session.expire_all()
    assert session.get(Case, uuid.UUID(str(partners.ours))).erased_at is None  # not before the confirmation
    done = http.post("/console/admin/erasure", data={"csrf_token": token, "kind": "case", "reference": ref,
                                                    "reason": "person_request", "confirm": "yes"})
    assert done.status_code == 200 and re.search(rf'id="erased-case">{ref}<', done.get_data(as_text=True))
    session.expire_all()
    case = session.get(Case, uuid.UUID(str(partners.ours)))
    assert case.erased_at is not None and case.erasure_reason == "person_request"
    (event,) = [e for e in _events(session, AuditAction.PRIVACY_RECORD_ERASE) if e.resource_type == "case"]
    assert event.user_id == str(partners.people["admin"][0].id) and event.resource_id == str(case.id)
    assert event.details["reason"] == "person_request" and "keys_shredded" in event.details
    again = http.post("/console/admin/erasure", data={"csrf_token": token, "kind": "case", "reference": ref,
                                                     "reason": "person_request", "confirm": "yes"})
    assert again.status_code == 409 and 'id="error-reference"' in again.get_data(as_text=True)
    nobody = {**request, "kind": "referral", "reference": "MGEC-R-NOPE", "reason": "legal_obligation"}
    unknown = http.post("/console/admin/erasure", data={**nobody, "confirm": "yes"})
    assert unknown.status_code == 404 and 'id="error-reference"' in unknown.get_data(as_text=True)


def test_a_referral_erased_on_request_in_mongolian(app, session, partners):
    http = sign_in_as(app, session, partners, "admin", english=False)
    page = http.get("/console/admin/erasure").get_data(as_text=True)
    assert "Устгах" in page or "устгах" in page
    done = http.post("/console/admin/erasure", data={
        "csrf_token": c.csrf_of(page), "kind": "referral", "reference": partners.referral.reference,
        "reason": "consent_withdrawn", "confirm": "yes"})
    assert done.status_code == 200
    session.expire_all()
    assert session.get(Referral, partners.referral.id).erasure_reason == "consent_withdrawn"


def test_partners_and_coordinators_cannot_erase(app, session, partners):
    for who, home in (("coordinator", "/console/queue"), ("police_officer", "/console/partner/cases")):
        http = sign_in_as(app, session, partners, who)
        assert http.get("/console/admin/erasure").status_code == 403
        assert http.get("/console/admin/retention").status_code == 403
        token = c.csrf_of(http.get(home).get_data(as_text=True))
        answer = http.post("/console/admin/erasure", data={
            "csrf_token": token, "kind": "referral", "reference": partners.referral.reference,
            "reason": "person_request", "confirm": "yes"})
        assert answer.status_code == 403
        run = http.post("/console/admin/retention", data={"csrf_token": token, "confirm": "yes"})
        assert run.status_code == 403
    session.expire_all()
    assert session.get(Referral, partners.referral.id).erased_at is None
