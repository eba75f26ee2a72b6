"""Every deadline of deadlines/table.py with time moved forward (`deadlines run --now`): raised exactly
once, not before its time, not while the case is on hold, cleared by the move that answers it, and
escalated once where the table has a second level."""

from __future__ import annotations

import dataclasses
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from referral_api.audit.models import AuditEvent
from referral_api.cases.models import Case
from referral_api.cases.stages import ORDER, Stage
from referral_api.config import ConfigError, Settings
from referral_api.deadlines.models import OverdueItem
from referral_api.events import OutboxEvent
from referral_api.webhooks import visibility as webhook_visibility
from tests.case_helpers import details_for, open_case, transition
from tests.referral_data import referral_body

H, D = timedelta(hours=1), timedelta(days=1)
PATH = {  # how a test walks a new case (at verification) to each stage
    Stage.TRAVEL_DOCUMENTS: [Stage.TRAVEL_DOCUMENTS],
    Stage.TRAVEL_PLANNING: [Stage.TRAVEL_DOCUMENTS, Stage.TRAVEL_PLANNING],
    Stage.IN_TRANSIT: [Stage.TRAVEL_PLANNING, Stage.IN_TRANSIT],
    Stage.REHABILITATION: [Stage.TRAVEL_PLANNING, Stage.IN_TRANSIT, Stage.ARRIVED, Stage.REHABILITATION],
    Stage.FOLLOW_UP: [
        Stage.TRAVEL_PLANNING,
        Stage.IN_TRANSIT,
        Stage.ARRIVED,
        Stage.REHABILITATION,
        Stage.REINTEGRATION,
        Stage.FOLLOW_UP,
    ],
}


def run(run_cli, after: timedelta) -> dict:
    result = run_cli("deadlines", "run", "--now", (datetime.now(UTC) + after).isoformat(), "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def raised(report: dict, reference: str) -> list[tuple[str, int]]:
    return [(r["deadline"], r["level"]) for r in report["raised"] if r["reference"] == reference]


def referral(client, world, *, urgency: str = "routine", then: tuple[str, ...] = (), number: int = 0) -> dict:
    body = referral_body(situation__urgency=urgency, external_reference=f"MO-PSP-2026-{number:04d}")
    answer = client.post("/api/v1/referrals", json=body, headers=world.headers("police")).get_json()
    for action in then:
        payload = {"questions": "Which city was she found in?"} if action == "request-information" else {}
        moved = client.post(
            f"/api/v1/referrals/{answer['id']}/{action}", json=payload, headers=world.headers("coordinator")
        )
        assert moved.status_code == 200, moved.get_json()
    return {"kind": "referrals", "id": answer["id"], "reference": answer["reference"]}


def case_at(client, world, stage: Stage) -> dict:
    case_id = open_case(client, world, who="police", situation__urgency="routine")
    here = Stage.VERIFICATION
    for there in PATH.get(stage, []):
        transition(client, world, case_id, there.value, details=details_for(here, there))
        here = there
    got = client.get(f"/api/v1/cases/{case_id}/status", headers=world.headers("coordinator")).get_json()
    assert got["stage"] == stage.value
    return {"kind": "cases", "id": case_id, "reference": got["reference"], "stage": stage}


def _move_on(client, world, subject: dict) -> None:
    here = subject["stage"]
    there = Stage.CLOSED if here is Stage.FOLLOW_UP else ORDER[ORDER.index(here) + 1]
    transition(client, world, subject["id"], there.value, details=details_for(here, there))


def _plan_service(client, world, subject: dict) -> None:
    answer = client.post(
        f"/api/v1/cases/{subject['id']}/services",
        headers=world.headers("coordinator"),
        json={"kind": "psychosocial", "status": "planned"},
    )
    assert answer.status_code == 201, answer.get_json()


def _referral_move(action: str, who: str, payload: dict) -> Callable:
    def answer(client, world, subject):
        moved = client.post(
            f"/api/v1/referrals/{subject['id']}/{action}", json=payload, headers=world.headers(who)
        )
        assert moved.status_code == 200, moved.get_json()

    return answer


@dataclass(frozen=True)
class Spec:
    deadline: str
    make: Callable
    early: timedelta  # still in time
    late: timedelta  # past level 1
    answer: Callable  # the move (or service) that ends the wait
    escalated: timedelta | None = None  # past level 2
    event: str = "case.overdue"
    marks_overdue: bool = True

    @property
    def is_case(self) -> bool:
        return self.event.startswith("case.")


SPECS = [
    Spec(
        "review",
        lambda c, w: referral(c, w),
        23 * H,
        25 * H,
        _referral_move("review", "coordinator", {}),
        event="referral.overdue",
    ),
    Spec(
        "review",
        lambda c, w: referral(c, w, urgency="urgent"),
        3 * H,
        5 * H,
        _referral_move("review", "coordinator", {}),
        event="referral.overdue",
    ),
    Spec(
        "review",
        lambda c, w: referral(c, w, urgency="emergency"),
        timedelta(minutes=30),
        2 * H,
        _referral_move("review", "coordinator", {}),
        event="referral.overdue",
    ),
    Spec(
        "decision",
        lambda c, w: referral(c, w, then=("review",)),
        71 * H,
        73 * H,
        _referral_move("accept", "coordinator", {}),
        event="referral.overdue",
    ),
    Spec(
        "information",
        lambda c, w: referral(c, w, then=("request-information",)),
        6 * D,
        8 * D,
        _referral_move("information", "police", {"answer": "Found in Macau, near the port."}),
        escalated=15 * D,
        event="referral.overdue",
    ),
    Spec("verification", lambda c, w: case_at(c, w, Stage.VERIFICATION), 13 * D, 15 * D, _move_on),
    Spec("travel_documents", lambda c, w: case_at(c, w, Stage.TRAVEL_DOCUMENTS), 13 * D, 15 * D, _move_on),
    Spec("travel_planning", lambda c, w: case_at(c, w, Stage.TRAVEL_PLANNING), 20 * D, 22 * D, _move_on),
    # departed today (the sample details): late from 3 days after the day of departure
    Spec("arrival", lambda c, w: case_at(c, w, Stage.IN_TRANSIT), 2 * D, 4 * D, _move_on),
    Spec("service_plan", lambda c, w: case_at(c, w, Stage.REHABILITATION), 6 * D, 8 * D, _plan_service),
    Spec(
        "follow_up",
        lambda c, w: case_at(c, w, Stage.FOLLOW_UP),
        85 * D,
        95 * D,
        _move_on,
        escalated=190 * D,
        event="case.follow_up_due",
        marks_overdue=False,
    ),
]
IDS = [f"{s.deadline}-{s.early}" for s in SPECS]


def _listed_overdue(client, world, subject: dict) -> bool:
    page = client.get(
        f"/api/v1/{subject['kind']}?overdue=true&limit=200", headers=world.headers("coordinator")
    )
    assert page.status_code == 200, page.get_json()
    return subject["id"] in {item["id"] for item in page.get_json()["items"]}


def _items(session, subject: dict) -> list[OverdueItem]:
    session.expire_all()
    return list(
        session.scalars(
            sa.select(OverdueItem)
            .where(OverdueItem.reference == subject["reference"])
            .order_by(OverdueItem.level)
        )
    )


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_each_deadline_is_raised_once_escalated_once_and_cleared_by_its_answer(
    spec, client, world, session, run_cli
):
    subject = spec.make(client, world)
    ref = subject["reference"]
    assert raised(run(run_cli, spec.early), ref) == []
    assert raised(run(run_cli, spec.late), ref) == [(spec.deadline, 1)]
    items = _items(session, subject)
    assert [(i.deadline.value, i.level) for i in items] == [(spec.deadline, 1)]
    for again in (spec.late, spec.late + timedelta(minutes=5)):
        assert raised(run(run_cli, again), ref) == []  # raised exactly once
    assert _listed_overdue(client, world, subject) is spec.marks_overdue
    outbox = session.scalars(sa.select(OutboxEvent).where(OutboxEvent.resource_id == items[0].id)).all()
    assert [(e.type.value, e.payload["deadline"], e.payload["level"]) for e in outbox] == [
        (spec.event, spec.deadline, 1)
    ]
    assert outbox[0].payload["late_by_seconds"] > 0
    audits = session.scalars(
        sa.select(AuditEvent).where(
            AuditEvent.action == "deadlines:item:raise", AuditEvent.resource_id == subject["id"]
        )
    ).all()
    assert len(audits) == 1
    if spec.escalated is not None:
        assert raised(run(run_cli, spec.escalated), ref) == [(spec.deadline, 2)]
        assert raised(run(run_cli, spec.escalated + H), ref) == []  # escalated once
        assert [i.level for i in _items(session, subject)] == [1, 2]
    spec.answer(client, world, subject)
    report = run(run_cli, timedelta(minutes=1))
    assert report["cleared"] >= 1
    assert all(i.cleared_at is not None for i in _items(session, subject))
    assert not _listed_overdue(client, world, subject)
    # the wait is over: not raised again (the next wait, of another deadline, may be)
    assert spec.deadline not in [d for d, _ in raised(run(run_cli, spec.escalated or spec.late), ref)]
    assert [
        (i.deadline.value, i.cleared_at is not None)
        for i in _items(session, subject)
        if i.deadline.value == spec.deadline
    ] == [(spec.deadline, True)] * (2 if spec.escalated else 1)


@pytest.mark.parametrize(
    "spec", [s for s in SPECS if s.is_case], ids=[i for s, i in zip(SPECS, IDS, strict=True) if s.is_case]
)
def test_a_case_on_hold_is_not_raised_until_resumed(spec, client, world, session, run_cli):
    subject = spec.make(client, world)
    held = client.post(
        f"/api/v1/cases/{subject['id']}/hold",
        json={"reason": "Witness in a trial abroad"},
        headers=world.headers("coordinator"),
    )
    assert held.status_code == 200, held.get_json()
    assert raised(run(run_cli, spec.escalated or spec.late), subject["reference"]) == []
    assert _items(session, subject) == []
    resumed = client.post(
        f"/api/v1/cases/{subject['id']}/resume", json={}, headers=world.headers("coordinator")
    )
    assert resumed.status_code == 200, resumed.get_json()
    assert raised(run(run_cli, spec.late), subject["reference"]) == [(spec.deadline, 1)]


def test_time_on_hold_pauses_the_clock_and_is_recorded(client, world, session, run_cli):
    subject = case_at(client, world, Stage.VERIFICATION)
    case = session.get(Case, uuid.UUID(subject["id"]))
    start = case.stage_since
    case.hold(reason="In hospital", occurred_at=start + 5 * D)
    case.resume(occurred_at=start + 15 * D)
    session.commit()
    assert case.held_seconds == 10 * 86400 and case.clock_since == start + 10 * D
    assert raised(run(run_cli, 20 * D), subject["reference"]) == []  # 14 days of clock: due at day 24
    assert raised(run(run_cli, 25 * D), subject["reference"]) == [("verification", 1)]
    (item,) = _items(session, subject)
    assert item.held_seconds == 10 * 86400
    assert item.due_at == start + 24 * D


def test_a_dry_run_raises_nothing(client, world, session, run_cli):
    subject = referral(client, world, urgency="emergency")
    result = run_cli(
        "deadlines", "run", "--dry-run", "--json", "--now", (datetime.now(UTC) + 2 * H).isoformat()
    )
    assert result.exit_code == 0, result.output
    assert raised(json.loads(result.output), subject["reference"]) == [("review", 1)]
    assert _items(session, subject) == []
    assert raised(run(run_cli, 2 * H), subject["reference"]) == [("review", 1)]


def test_a_bad_now_is_refused(run_cli):
    result = run_cli("deadlines", "run", "--now", "tomorrow")
    assert result.exit_code != 0 and "--now" in result.output


def test_the_overdue_filter_pages_by_keyset(client, world, run_cli):
    made = [referral(client, world, urgency="emergency", number=n) for n in range(3)]
    run(run_cli, 2 * H)
    seen, cursor = [], None
    while True:
        url = "/api/v1/referrals?overdue=true&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(url, headers=world.headers("coordinator")).get_json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(s["id"] for s in made)
    not_overdue = client.get(
        "/api/v1/referrals?overdue=false", headers=world.headers("coordinator")
    ).get_json()
    assert not {s["id"] for s in made} & {item["id"] for item in not_overdue["items"]}
    bad = client.get("/api/v1/referrals?overdue=maybe", headers=world.headers("coordinator"))
    assert bad.status_code == 422 and "overdue" in bad.get_json()["errors"]


def test_an_unanswered_question_reminds_the_partner_then_escalates_to_mgec_only(
    client, world, session, run_cli
):
    subject = referral(client, world, then=("request-information",))
    run(run_cli, 8 * D)
    run(run_cli, 15 * D)
    reminder, escalation = _items(session, subject)
    told = {
        i.level: webhook_visibility.audience(session, "overdue_item", i.id) for i in (reminder, escalation)
    }
    assert told == {1: {world.orgs["mgec"].id, world.orgs["police"].id}, 2: {world.orgs["mgec"].id}}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"DEADLINE_INFORMATION_ESCALATION_DAYS": "7"}, "DEADLINE_INFORMATION_ESCALATION_DAYS"),
        ({"DEADLINE_FOLLOW_UP_MONTHS": "6,3"}, "DEADLINE_FOLLOW_UP_MONTHS"),
        ({"DEADLINE_REVIEW_HOURS": "0"}, "DEADLINE_REVIEW_HOURS"),
    ],
)
def test_deadline_settings_are_checked(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_a_setting_moves_its_deadline(client, world, run_cli, app, monkeypatch):
    settings = dataclasses.replace(app.config["SETTINGS"], deadline_review_urgent_hours=10)
    monkeypatch.setitem(app.config, "SETTINGS", settings)
    subject = referral(client, world, urgency="urgent")
    assert raised(run(run_cli, 5 * H), subject["reference"]) == []
    assert raised(run(run_cli, 11 * H), subject["reference"]) == [("review", 1)]
