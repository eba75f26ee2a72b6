"""What a step back and a close do to a case's key dates and hold (docs/domain.md, Case)."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from referral_api.cases.models import Case, CaseEvent
from referral_api.cases.stages import Stage
from tests.case_helpers import TODAY, details_for, open_case, transition


def _walk_to(client, world, case_id, stages):
    here = Stage.VERIFICATION
    for there in stages:
        transition(client, world, case_id, there.value, details=details_for(here, there))
        here = there


def _key_dates(client, world, case_id):
    status = client.get(f"/api/v1/cases/{case_id}/status", headers=world.headers("police"))
    return status.get_json()["key_dates"]


def test_a_step_back_clears_the_key_date_of_the_stage_it_leaves(client, world, session):
    case_id = open_case(client, world)
    _walk_to(client, world, case_id, [Stage.TRAVEL_DOCUMENTS, Stage.TRAVEL_PLANNING, Stage.IN_TRANSIT,
                                      Stage.ARRIVED])
    dates = ("travel_document_issued_on", "departed_on", "arrived_on")
    assert [_key_dates(client, world, case_id)[d] for d in dates] == [TODAY, TODAY, TODAY]
    expected = {  # the stage stepped back to: which key dates remain
        "in_transit": [TODAY, TODAY, None],  # the flight was diverted: nobody arrived
        "travel_planning": [TODAY, None, None],  # the person did not leave
        "travel_documents": [None, None, None],  # the document is to be issued again
    }
    for back, remain in expected.items():
        moved = transition(client, world, case_id, back, note="Recorded in error")
        assert [moved["key_dates"][d] for d in dates] == remain, back
        assert [_key_dates(client, world, case_id)[d] for d in dates] == remain, back
    session.expire_all()
    case = session.get(Case, uuid.UUID(case_id))
    assert (case.travel_document_issued_on, case.departed_on, case.arrived_on) == (None, None, None)
    # the timeline keeps every move that recorded a date
    recorded = session.scalars(sa.select(CaseEvent.details).where(CaseEvent.case_id == case.id)).all()
    assert sum("arrived_on" in d for d in recorded) == 1
    # moving on again records the date again
    here = Stage.TRAVEL_DOCUMENTS
    for there in (Stage.TRAVEL_PLANNING, Stage.IN_TRANSIT, Stage.ARRIVED):
        transition(client, world, case_id, there.value, details=details_for(here, there))
        here = there
    assert [_key_dates(client, world, case_id)[d] for d in dates] == [TODAY, TODAY, TODAY]


def test_a_step_back_from_rehabilitation_keeps_the_arrival(client, world):
    case_id = open_case(client, world)
    _walk_to(client, world, case_id, [Stage.TRAVEL_DOCUMENTS, Stage.TRAVEL_PLANNING, Stage.IN_TRANSIT,
                                      Stage.ARRIVED, Stage.REHABILITATION])
    moved = transition(client, world, case_id, "arrived", note="The placement fell through")
    assert moved["key_dates"]["arrived_on"] == TODAY


def test_closing_a_case_on_hold_ends_the_hold_and_a_closed_case_is_not_resumed(client, world, session):
    from tests.test_cases import outbox_types

    case_id = open_case(client, world)
    held = client.post(f"/api/v1/cases/{case_id}/hold", json={"reason": "In hospital in Darkhan"},
                       headers=world.headers("coordinator"))
    assert held.status_code == 200
    closed = transition(client, world, case_id, "closed", details={"closure_reason": "lost_contact"})
    assert closed["stage"] == "closed" and closed["on_hold"] is False
    assert closed["hold_reason"] is None and closed["on_hold_since"] is None
    session.expire_all()
    case = session.get(Case, uuid.UUID(case_id))
    assert (case.on_hold, case.on_hold_since, case.hold_reason) == (False, None, None)
    kinds = session.execute(
        sa.select(CaseEvent.kind, CaseEvent.from_stage, CaseEvent.to_stage)
        .where(CaseEvent.case_id == case.id).order_by(CaseEvent.occurred_at, CaseEvent.recorded_at)
    ).all()
    assert [(k.value, f.value, t.value) for k, f, t in kinds[-2:]] == [
        ("resumed", "verification", "verification"), ("moved", "verification", "closed")]
    assert outbox_types(session, case_id)[-3:] == ["case.on_hold", "case.resumed", "case.closed"]
    resumed = client.post(f"/api/v1/cases/{case_id}/resume", json={}, headers=world.headers("coordinator"))
    assert resumed.status_code == 409 and resumed.get_json()["current_stage"] == "closed"
    again = client.post(f"/api/v1/cases/{case_id}/hold", json={"reason": "x"},
                        headers=world.headers("coordinator"))
    assert again.status_code == 409


def test_a_closed_case_left_on_hold_by_an_older_version_is_not_resumed(client, world, session):
    case_id = open_case(client, world)
    transition(client, world, case_id, "closed", details={"closure_reason": "lost_contact"})
    session.execute(sa.update(Case).where(Case.id == uuid.UUID(case_id)).values(on_hold=True))
    session.commit()
    resumed = client.post(f"/api/v1/cases/{case_id}/resume", json={}, headers=world.headers("coordinator"))
    assert resumed.status_code == 409, resumed.get_json()
