"""Every answer that shows sealed text of a case is an audited read: the hold reasons of a list of
cases and the service notes of a case."""

from __future__ import annotations

import sqlalchemy as sa

from referral_api.audit.models import AuditEvent
from tests.case_helpers import add_participant, open_case


def _reads(session):
    return list(session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "cases:case:read").order_by(AuditEvent.seq)
        .execution_options(populate_existing=True)
    ))


def test_listing_cases_that_show_a_hold_reason_is_an_audited_read(client, world, session):
    held = open_case(client, world, external_reference="MO-H-1")
    plain = open_case(client, world, external_reference="MO-H-2")
    response = client.post(f"/api/v1/cases/{held}/hold", json={"reason": "Witness in a trial in Macau."},
                           headers=world.headers("coordinator"))
    assert response.status_code == 200
    before = len(_reads(session))
    listed = client.get("/api/v1/cases", headers=world.headers("coordinator"))
    assert listed.status_code == 200
    items = {c["id"]: c for c in listed.get_json()["items"]}
    assert items[held]["hold_reason"] == "Witness in a trial in Macau."
    assert items[plain]["hold_reason"] is None
    reads = _reads(session)[before:]
    assert len(reads) == 1
    assert reads[0].details["listed"] == [held] and reads[0].user_id == str(world.users["coordinator"].id)


def test_listing_services_with_notes_is_an_audited_read_for_staff_and_the_provider(client, world, session):
    # the provider reads the note while the person's consent covers NGOs (test_cases_care: not otherwise)
    case_id = open_case(client, world, consent__share_with=["embassy", "iom", "ngo"])
    add_participant(client, world, case_id, "ngo", "service_provider")
    created = client.post(
        f"/api/v1/cases/{case_id}/services",
        json={"kind": "psychosocial", "provider_id": str(world.orgs["ngo"].id),
              "note": "Speaks only Kazakh."},
        headers=world.headers("coordinator"),
    )
    assert created.status_code == 201, created.get_json()
    service_id = created.get_json()["id"]
    for who in ("coordinator", "ngo"):
        before = len(_reads(session))
        listed = client.get(f"/api/v1/cases/{case_id}/services", headers=world.headers(who))
        assert listed.status_code == 200
        assert [s["note"] for s in listed.get_json()["items"]] == ["Speaks only Kazakh."]
        reads = _reads(session)[before:]
        assert len(reads) == 1, who
        assert str(reads[0].resource_id) == case_id and reads[0].details == {"service_notes": [service_id]}
        assert reads[0].organisation_id == world.orgs["mgec" if who == "coordinator" else "ngo"].id
