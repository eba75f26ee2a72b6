"""Cases through HTTP with real tokens: the stage machine, the timeline, the status view, holds."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from referral_api.audit.models import AuditEvent
from referral_api.cases.models import Case, CaseEvent
from referral_api.cases.stages import MOVES, ORDER, Stage
from referral_api.events import OutboxEvent
from tests.case_helpers import (
    KEY_DATES,
    STATUS_KEYS,
    TODAY,
    add_participant,
    details_for,
    open_case,
    transition,
)
from tests.referral_data import referral_body

# Who records each move of the walk: the embassy the documents, IOM the travel, MGEC the rest.
WALK = [
    (Stage.TRAVEL_DOCUMENTS, "embassy", "embassy"),
    (Stage.TRAVEL_PLANNING, "embassy", "embassy"),
    (Stage.IN_TRANSIT, "iom", "iom"),
    (Stage.ARRIVED, "caseworker", "mgec"),
    (Stage.REHABILITATION, "caseworker", "mgec"),
    (Stage.REINTEGRATION, "caseworker", "mgec"),
    (Stage.FOLLOW_UP, "caseworker", "mgec"),
    (Stage.CLOSED, "coordinator", "mgec"),
]
KEY_DATE_SET_BY = {
    Stage.TRAVEL_PLANNING: "travel_document_issued_on",
    Stage.IN_TRANSIT: "departed_on",
    Stage.ARRIVED: "arrived_on",
}


def outbox_types(session, case_id):
    return [
        e.type.value
        for e in session.scalars(
            sa.select(OutboxEvent)
            .where(OutboxEvent.resource_id == uuid.UUID(case_id))
            .order_by(OutboxEvent.seq)
        )
    ]


def test_one_case_walks_every_stage_each_move_by_its_owner(client, world, session):
    case_id = open_case(client, world)
    add_participant(client, world, case_id, "embassy", "embassy")
    add_participant(client, world, case_id, "iom", "iom")
    status = client.get(f"/api/v1/cases/{case_id}/status", headers=world.headers("embassy")).get_json()
    assert status["stage"] == "verification" and status["key_dates"]["referred_at"]
    previous, set_dates = Stage.VERIFICATION, {"referred_at", "accepted_at"}
    for target, who, org in WALK:
        moved = transition(
            client,
            world,
            case_id,
            target.value,
            who=who,
            details=details_for(previous, target),
            note=f"Recorded by {who}.",
        )
        assert moved["stage"] == target.value
        timeline = client.get(f"/api/v1/cases/{case_id}/events", headers=world.headers("coordinator"))
        last = timeline.get_json()["items"][-1]
        assert (last["from_stage"], last["to_stage"]) == (previous.value, target.value)
        assert last["organisation_id"] == str(world.orgs[org].id) and last["note"] == f"Recorded by {who}."
        assert last["details"] == details_for(previous, target)
        status = client.get(f"/api/v1/cases/{case_id}/status", headers=world.headers("police")).get_json()
        assert set(status) == STATUS_KEYS and set(status["key_dates"]) == KEY_DATES
        assert status["stage"] == target.value and status["on_hold"] is False
        set_dates |= {KEY_DATE_SET_BY[target]} if target in KEY_DATE_SET_BY else set()
        set_dates |= {"closed_at"} if target is Stage.CLOSED else set()
        assert {k for k, v in status["key_dates"].items() if v} == set_dates
        previous = target
    assert status["key_dates"]["arrived_on"] == TODAY
    timeline = client.get(f"/api/v1/cases/{case_id}/events", headers=world.headers("coordinator")).get_json()
    assert [e["to_stage"] for e in timeline["items"]] == [s.value for s in ORDER]
    assert outbox_types(session, case_id)[-2:] == ["case.stage_changed", "case.closed"]
    assert outbox_types(session, case_id).count("case.stage_changed") == 7
    actions = session.scalars(sa.select(AuditEvent.action).where(AuditEvent.resource_id == case_id)).all()
    assert actions.count("cases:case:move") == 7 and actions.count("cases:case:close") == 1


def _set_stage(session, case_id, stage):
    case = session.get(Case, uuid.UUID(case_id))
    case.stage, case.closure_reason = stage, "other" if stage is Stage.CLOSED else None
    session.commit()


def test_every_pair_of_stages_allowed_moves_succeed_others_409_and_change_nothing(client, world, session):
    case_id = open_case(client, world)
    failures = []
    for source in ORDER:
        for target in ORDER:
            _set_stage(session, case_id, source)
            before = session.scalar(sa.select(sa.func.count()).select_from(CaseEvent))
            allowed = (source, target) in MOVES
            details = details_for(source, target) if allowed else {}
            response = client.post(
                f"/api/v1/cases/{case_id}/transitions",
                json={"to": target.value, "details": details, "note": "A cancelled flight."},
                headers=world.headers("admin"),
            )
            session.expire_all()
            stage = session.get(Case, uuid.UUID(case_id)).stage
            after = session.scalar(sa.select(sa.func.count()).select_from(CaseEvent))
            if allowed:
                ok = response.status_code == 200 and stage is target and after == before + 1
            else:
                body = response.get_json()
                ok = (
                    response.status_code == 409
                    and stage is source
                    and after == before
                    and body["allowed_stages"] == [t.value for t in ORDER if (source, t) in MOVES]
                )
            if not ok:
                failures.append((source.value, target.value, response.status_code))
    assert failures == []
    assert len(MOVES) == 7 * 2 + 2 + 8 + 8


def test_a_forbidden_move_names_the_allowed_ones(client, world):
    case_id = open_case(client, world)
    response = client.post(
        f"/api/v1/cases/{case_id}/transitions", json={"to": "arrived"}, headers=world.headers("coordinator")
    )
    assert response.status_code == 409
    body = response.get_json()
    assert body["current_stage"] == "verification"
    assert body["allowed_stages"] == ["travel_documents", "travel_planning", "closed"]


def test_details_are_validated_and_named(client, world):
    case_id = open_case(client, world)
    add_participant(client, world, case_id, "embassy", "embassy")
    missing = transition(
        client, world, case_id, "travel_documents", who="embassy", status=422, details={"method": "passport"}
    )
    assert set(missing["errors"]) == {"details.verified_on"}
    bad = transition(
        client,
        world,
        case_id,
        "travel_documents",
        who="embassy",
        status=422,
        details={"verified_on": "yesterday", "method": "telepathy", "colour": "red"},
    )
    assert set(bad["errors"]) == {"details.verified_on", "details.method", "details.colour"}
    skip = transition(
        client,
        world,
        case_id,
        "travel_planning",
        who="embassy",
        status=422,
        details={"verified_on": TODAY, "method": "passport"},
    )
    assert set(skip["errors"]) == {"details.document_type", "details.issued_on"}
    future = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    ahead = transition(
        client,
        world,
        case_id,
        "travel_documents",
        who="embassy",
        status=422,
        details={"verified_on": future, "method": "passport"},
    )
    assert set(ahead["errors"]) == {"details.verified_on"}


def test_occurred_at_may_be_past_but_not_before_the_previous_event_nor_future(client, world, session):
    case_id = open_case(client, world)
    opened = session.get(Case, uuid.UUID(case_id)).opened_at
    details = details_for(Stage.VERIFICATION, Stage.TRAVEL_DOCUMENTS)
    for when in (opened - timedelta(minutes=5), datetime.now(UTC) + timedelta(hours=1)):
        refused = transition(
            client,
            world,
            case_id,
            "travel_documents",
            status=422,
            details=details,
            occurred_at=when.isoformat(),
        )
        assert set(refused["errors"]) == {"occurred_at"}
    earlier = opened + timedelta(microseconds=1)
    moved = transition(
        client, world, case_id, "travel_documents", details=details, occurred_at=earlier.isoformat()
    )
    assert moved["stage_since"].startswith(earlier.isoformat()[:19])
    events = client.get(f"/api/v1/cases/{case_id}/events", headers=world.headers("coordinator")).get_json()
    assert events["items"][-1]["recorded_at"] > events["items"][-1]["occurred_at"]


def test_a_step_back_and_a_reopening_need_a_reason_and_reopening_is_an_admins(client, world):
    case_id = open_case(client, world)
    transition(
        client,
        world,
        case_id,
        "travel_planning",
        details=details_for(Stage.VERIFICATION, Stage.TRAVEL_PLANNING),
    )
    no_reason = transition(client, world, case_id, "travel_documents", status=422)
    assert set(no_reason["errors"]) == {"note"}
    transition(client, world, case_id, "travel_documents", note="The ETD was issued with a wrong name.")
    transition(client, world, case_id, "closed", details={"closure_reason": "remained_abroad"})
    transition(client, world, case_id, "travel_documents", who="coordinator", status=403, note="She called.")
    transition(client, world, case_id, "travel_documents", who="admin", status=422)
    reopened = transition(client, world, case_id, "travel_documents", who="admin", note="She called again.")
    assert reopened["stage"] == "travel_documents" and reopened["closure_reason"] is None


def test_a_participant_records_only_the_moves_of_its_role(client, world):
    case_id = open_case(client, world)
    add_participant(client, world, case_id, "iom", "iom")
    details = details_for(Stage.VERIFICATION, Stage.TRAVEL_DOCUMENTS)
    refused = transition(client, world, case_id, "travel_documents", who="iom", status=403, details=details)
    assert refused["allowed_roles"] == ["embassy", "mgec"]
    # the referring police is a participant too, but records no stage
    transition(client, world, case_id, "travel_documents", who="police", status=403, details=details)
    view = client.get(f"/api/v1/cases/{case_id}", headers=world.headers("iom")).get_json()
    assert view["role"] == "iom" and view["allowed_stages"] == []


def test_if_match_and_idempotency_key_on_moves(client, world, session):
    case_id = open_case(client, world)
    etag = client.get(f"/api/v1/cases/{case_id}", headers=world.headers("coordinator")).headers["ETag"]
    details = details_for(Stage.VERIFICATION, Stage.TRAVEL_DOCUMENTS)
    body = {"to": "travel_documents", "details": details}
    stale = client.post(
        f"/api/v1/cases/{case_id}/transitions",
        json=body,
        headers=world.headers("coordinator", **{"If-Match": '"0000"'}),
    )
    assert stale.status_code == 412
    key = {"Idempotency-Key": "move-1", "If-Match": etag}
    first = client.post(
        f"/api/v1/cases/{case_id}/transitions", json=body, headers=world.headers("coordinator", **key)
    )
    again = client.post(
        f"/api/v1/cases/{case_id}/transitions", json=body, headers=world.headers("coordinator", **key)
    )
    assert first.status_code == again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert first.headers["ETag"] != etag
    assert outbox_types(session, case_id).count("case.stage_changed") == 1


def test_hold_and_resume_keep_the_stage_and_seal_the_reason(client, world, session):
    case_id = open_case(client, world)
    held = client.post(
        f"/api/v1/cases/{case_id}/hold",
        json={"reason": "Witness in a trial in Macau."},
        headers=world.headers("coordinator"),
    )
    assert held.status_code == 200
    assert held.get_json()["on_hold"] is True and held.get_json()["stage"] == "verification"
    assert held.get_json()["hold_reason"] == "Witness in a trial in Macau."
    again = client.post(
        f"/api/v1/cases/{case_id}/hold", json={"reason": "x"}, headers=world.headers("coordinator")
    )
    assert again.status_code == 409
    status = client.get(f"/api/v1/cases/{case_id}/status", headers=world.headers("police")).get_json()
    assert status["on_hold"] is True and "hold_reason" not in status
    partner = client.post(f"/api/v1/cases/{case_id}/resume", json={}, headers=world.headers("police"))
    assert partner.status_code == 403
    resumed = client.post(f"/api/v1/cases/{case_id}/resume", json={}, headers=world.headers("coordinator"))
    assert resumed.status_code == 200 and resumed.get_json()["on_hold"] is False
    raw = session.execute(sa.text("SELECT note FROM case_events WHERE kind = 'held'")).scalar_one()
    assert b"Macau" not in raw
    assert outbox_types(session, case_id)[-2:] == ["case.on_hold", "case.resumed"]


def test_internal_trafficking_opens_at_rehabilitation(client, world):
    case_id = open_case(
        client,
        world,
        situation__identified_country="MN",
        situation__identified_city="Ulaanbaatar",
        external_reference="MN-POL-2026-31",
    )
    status = client.get(f"/api/v1/cases/{case_id}/status", headers=world.headers("coordinator")).get_json()
    assert status["stage"] == "rehabilitation"
    staff = client.get(f"/api/v1/cases/{case_id}", headers=world.headers("coordinator")).get_json()
    assert staff["internal"] is True


def test_the_referrer_finds_the_status_by_its_own_external_reference(client, world):
    case_id = open_case(client, world, external_reference="MO-PSP-2026-0999")
    found = client.get(
        "/api/v1/cases/status?external_reference=MO-PSP-2026-0999", headers=world.headers("police")
    )
    assert found.status_code == 200 and found.get_json()["id"] == case_id
    assert set(found.get_json()) == STATUS_KEYS
    for who in ("embassy", "coordinator"):
        other = client.get(
            "/api/v1/cases/status?external_reference=MO-PSP-2026-0999", headers=world.headers(who)
        )
        assert other.status_code == 404
    by_reference = client.get(
        f"/api/v1/cases/{found.get_json()['reference']}/status", headers=world.headers("police")
    )
    assert by_reference.status_code == 200


def test_the_referrer_finds_the_status_by_any_of_its_numbers_accepted_into_the_case(client, world):
    """A second referral of the referrer accepted into the same case finds it by its number too, but
    only for that organisation and only while it takes part; a referral not accepted finds nothing."""
    case_id = open_case(client, world, who="police", external_reference="MO-1")

    def status(number, who="police"):
        return client.get(f"/api/v1/cases/status?external_reference={number}", headers=world.headers(who))

    referred = {}
    for number in ("MO-2", "MO-3"):
        sent = client.post("/api/v1/referrals", json=referral_body(external_reference=number),
                           headers=world.headers("police"))
        assert sent.status_code == 201, sent.get_json()
        referred[number] = sent.get_json()["id"]
    assert status("MO-2").status_code == 404
    linked = client.post(f"/api/v1/referrals/{referred['MO-2']}/accept", json={"case_id": case_id},
                         headers=world.headers("coordinator"))
    assert linked.status_code == 200 and linked.get_json()["case_id"] == case_id
    for number in ("MO-1", "MO-2"):
        found = status(number)
        assert found.status_code == 200 and found.get_json()["id"] == case_id, (number, found.get_json())
    assert status("MO-3").status_code == 404  # submitted, not accepted
    assert status("MO-2", who="embassy").status_code == 404
    removed = client.delete(f"/api/v1/cases/{case_id}/participants/{world.orgs['police'].id}",
                            headers=world.headers("coordinator"))
    assert removed.status_code == 204
    assert status("MO-1").status_code == status("MO-2").status_code == 404


def test_case_list_filters_and_keyset_pages(client, world):
    ids = [open_case(client, world, external_reference=f"MO-L-{i}") for i in range(3)]
    client.post(
        f"/api/v1/cases/{ids[0]}/hold", json={"reason": "In hospital."}, headers=world.headers("coordinator")
    )
    add_participant(client, world, ids[1], "embassy", "embassy")
    seen, cursor = [], None
    while True:
        url = "/api/v1/cases?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url, headers=world.headers("coordinator")).get_json()
        seen += [c["id"] for c in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(ids))
    held = client.get("/api/v1/cases?on_hold=true", headers=world.headers("coordinator")).get_json()
    assert [c["id"] for c in held["items"]] == [ids[0]]
    with_embassy = client.get(
        f"/api/v1/cases?participant={world.orgs['embassy'].id}", headers=world.headers("coordinator")
    ).get_json()
    assert [c["id"] for c in with_embassy["items"]] == [ids[1]]
    embassy = client.get("/api/v1/cases?stage=verification", headers=world.headers("embassy")).get_json()
    assert [c["id"] for c in embassy["items"]] == [ids[1]] and embassy["items"][0]["role"] == "embassy"
    assert client.get("/api/v1/cases", headers=world.headers("ngo")).get_json()["items"] == []
    assert client.get("/api/v1/cases?stage=nowhere", headers=world.headers("ngo")).status_code == 422
