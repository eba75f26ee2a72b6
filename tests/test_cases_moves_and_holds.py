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
