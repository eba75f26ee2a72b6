"""What a record keeps of the deadlines raised for it (raised_deadline, raised_period, raised_level):
the evaluation skips raised waits by it, clears only the records whose move or erasure answered them,
and a record whose columns are lost or point to another period heals without raising anything twice."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa

from referral_api import dbmigrate
from referral_api.cases.models import Case
from referral_api.cases.stages import Stage
from referral_api.config import Settings
from referral_api.db import Database
from referral_api.deadlines import evaluate, kept
from referral_api.deadlines.models import OverdueItem
from referral_api.deadlines.table import TABLE, Deadline
from tests.case_helpers import details_for, open_case, transition
from tests.conftest import throwaway_database
from tests.test_deadlines import D, raised, run

ERASE = {"reason": "person_request"}


def _case(session, case_id: str) -> Case:
    session.expire_all()
    return session.get(Case, uuid.UUID(case_id))


def _open(session, case_id: str) -> list[tuple[str, int]]:
    items = session.scalars(
        sa.select(OverdueItem).where(
            OverdueItem.subject_id == uuid.UUID(case_id), OverdueItem.cleared_at.is_(None)
        )
    )
    return sorted((i.deadline.value, i.level) for i in items)


def _to_travel_documents(client, world, case_id: str) -> None:
    details = details_for(Stage.VERIFICATION, Stage.TRAVEL_DOCUMENTS)
    transition(client, world, case_id, "travel_documents", details=details)


def test_the_record_keeps_what_was_raised_and_its_move_lets_the_item_clear(client, world, session, run_cli):
    case_id = open_case(client, world, who="police", situation__urgency="routine")
    reference = _case(session, case_id).reference
    assert raised(run(run_cli, 15 * D), reference) == [("verification", 1)]
    case = _case(session, case_id)
    assert (case.raised_deadline, case.raised_period, case.raised_level) == (
        "verification",
        case.stage_since,
        1,
    )
    assert raised(run(run_cli, 15 * D + 1 * D), reference) == []  # skipped by the record's own columns

    _to_travel_documents(client, world, case_id)
    # one evaluation clears the answered item and raises the new stage's wait (14 days from now)
    report = run(run_cli, 15 * D)
    assert report["cleared"] == 1
    assert raised(report, reference) == [("travel_documents", 1)]
    assert _open(session, case_id) == [("travel_documents", 1)]
    case = _case(session, case_id)
    assert (case.raised_deadline, case.raised_period) == ("travel_documents", case.stage_since)
    assert case.overdue_since is not None
    assert raised(run(run_cli, 16 * D), reference) == []
    assert _open(session, case_id) == [("travel_documents", 1)]


def test_an_erased_case_has_its_items_cleared_and_nothing_raised_again(client, world, session, run_cli):
    case_id = open_case(client, world, who="police", situation__urgency="routine")
    reference = _case(session, case_id).reference
    assert raised(run(run_cli, 15 * D), reference) == [("verification", 1)]
    erased = client.post(f"/api/v1/cases/{case_id}/erase", json=ERASE, headers=world.headers("admin"))
    assert erased.status_code == 200, erased.get_json()
    report = run(run_cli, 16 * D)
    assert report["cleared"] == 1 and raised(report, reference) == []
    case = _case(session, case_id)
    assert (case.raised_deadline, case.raised_period, case.raised_level) == (None, None, None)
    assert _open(session, case_id) == []
    assert raised(run(run_cli, 17 * D), reference) == []


def test_lost_columns_heal_from_the_unique_items_without_raising_twice(client, world, session, run_cli):
    case_id = open_case(client, world, who="police", situation__urgency="routine")
    reference = _case(session, case_id).reference
    assert raised(run(run_cli, 15 * D), reference) == [("verification", 1)]
    session.execute(
        sa.update(Case)
        .where(Case.id == uuid.UUID(case_id))
        .values(raised_deadline=None, raised_period=None, raised_level=None)
    )
    session.commit()
    report = run(run_cli, 15 * D)  # found again: the unique constraint keeps it from a second item
    assert raised(report, reference) == []
    assert _open(session, case_id) == [("verification", 1)]
    case = _case(session, case_id)
    assert (case.raised_deadline, case.raised_period, case.raised_level) == (
        "verification",
        case.stage_since,
        1,
    )


def test_a_record_still_to_be_cleared_keeps_its_old_period_until_its_items_are(client, world, session):
    """An evaluation that raced a move (its clear ran before the other's item was committed) must not
    overwrite the old period on the record: the next evaluation would not find that item to clear."""
    case_id = open_case(client, world, who="police", situation__urgency="routine")
    now = datetime.now(UTC) + 15 * D
    settings = Settings.from_env({})
    evaluate.run(session, now=now, settings=settings)
    _to_travel_documents(client, world, case_id)
    case = _case(session, case_id)
    old_period = case.raised_period
    assert old_period is not None and old_period != case.stage_since
    rule = next(r for r in TABLE if r.deadline is Deadline.TRAVEL_DOCUMENTS)
    level = rule.levels[0]
    stale = evaluate.Found(rule, level, case.id, case.reference, case.stage_since, now, 0)
    kept.record(session, [stale])  # the racing evaluation's write: left alone
    session.commit()
    assert _case(session, case_id).raised_period == old_period
    report = evaluate.run(session, now=now, settings=settings)
    assert report["cleared"] == 1
    assert [(r["deadline"], r["level"]) for r in report["raised"]] == [("travel_documents", 1)]
    case = _case(session, case_id)
    assert _open(session, case_id) == [("travel_documents", 1)]
    assert (case.raised_deadline, case.raised_period) == ("travel_documents", case.stage_since)


def test_the_migration_writes_the_open_items_onto_their_records(backend, tmp_path):
    """0960 on a database with open items: each record keeps its latest period's highest level."""
    with throwaway_database(backend, tmp_path) as url:
        db = Database(url)
        try:
            dbmigrate.upgrade(db, "0930")
            at = datetime(2026, 3, 1, tzinfo=UTC)
            org, case_id = uuid.uuid4(), uuid.uuid4()
            key = (lambda u: u.hex) if backend == "sqlite" else (lambda u: u)
            with db.engine.begin() as conn:
                names = ("organisations", "cases", "overdue_items")
                orgs, cases, items = (sa.Table(n, sa.MetaData(), autoload_with=conn) for n in names)
                stamps = {"created_at": at, "updated_at": at}
                conn.execute(
                    orgs.insert(),
                    {"id": key(org), "name": "MGEC", "kind": "mgec", "country": "MN", "status": "active"}
                    | stamps,
                )
                conn.execute(
                    cases.insert(),
                    {"id": key(case_id), "reference": "CASE-M-1", "opened_at": at, "share_with": "[]",
                     "opened_by_organisation_id": key(org), "stage": "follow_up", "stage_since": at,
                     "clock_since": at, "held_seconds": 0, "internal": False, "on_hold": False, "version": 1,
                     **stamps},
                )
                for level, cleared in ((1, None), (2, None), (3, at)):
                    conn.execute(
                        items.insert(),
                        {"id": key(uuid.uuid4()), "subject": "case", "subject_id": key(case_id),
                         "reference": "CASE-M-1", "deadline": "follow_up", "level": level, "told": "case",
                         "period_start": at, "due_at": at, "held_seconds": 0, "raised_at": at,
                         "cleared_at": cleared},
                    )
            dbmigrate.upgrade(db)
            with db.sessionmaker() as session:
                kept = session.execute(
                    sa.select(Case.raised_deadline, Case.raised_period, Case.raised_level)
                ).one()
            assert tuple(kept) == ("follow_up", at, 2)
        finally:
            db.engine.dispose()
