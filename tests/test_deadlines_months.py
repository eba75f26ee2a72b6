"""Follow-up visits are due whole calendar months after the clock (deadlines/table.py): the scan finds
each on its due day, also when the month it falls in is shorter than the one the clock started in."""

from __future__ import annotations

import bisect
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from referral_api.cases.models import Case
from referral_api.cases.stages import Stage
from referral_api.config import Settings
from referral_api.deadlines import evaluate
from referral_api.deadlines.table import TABLE, Deadline, add_months
from tests.case_helpers import details_for, open_case, transition


def _month_levels():
    return next(r for r in TABLE if r.deadline is Deadline.FOLLOW_UP).levels


def test_the_scan_of_a_month_level_takes_in_every_clock_due():
    """Each clock due at `now` is at or before the level's latest clock (those after it, two months of
    them, are checked: any later one is due later still)."""
    settings = Settings.from_env({})
    clocks = [datetime(2027, 1, 1, 10, tzinfo=UTC) + timedelta(days=d, hours=h)
              for d in range(0, 500) for h in (0, 6, 13)]
    nows = [datetime(2027, 1, 1, 16, tzinfo=UTC) + timedelta(days=d, hours=h)
            for d in range(0, 900) for h in (0, 7)]
    wrong = []
    for level in _month_levels()[:3]:
        for now in nows:
            latest = level.latest_clock(now, settings)
            after = clocks[bisect.bisect_right(clocks, latest):][:180]
            wrong += [(level.number, c, now) for c in after if level.due(c, settings) <= now]
    assert wrong[:5] == []


def _in_follow_up_since(client, world, session, clock: datetime) -> str:
    """A case moved through to follow-up, its clock set back to `clock`; its id."""
    case_id = open_case(client, world)
    here = Stage.VERIFICATION
    for there in (Stage.TRAVEL_PLANNING, Stage.IN_TRANSIT, Stage.ARRIVED, Stage.REHABILITATION,
                  Stage.REINTEGRATION, Stage.FOLLOW_UP):
        transition(client, world, case_id, there.value, details=details_for(here, there))
        here = there
    session.execute(sa.update(Case).where(Case.id == uuid.UUID(case_id))
                    .values(stage_since=clock, clock_since=clock, last_occurred_at=clock))
    session.commit()
    return case_id


def test_a_follow_up_visit_due_on_a_short_months_last_day_is_found_that_day(client, world, session, app):
    entered = datetime(2027, 1, 31, 10, 0, tzinfo=UTC)
    case_id = _in_follow_up_since(client, world, session, entered)
    settings = app.config["SETTINGS"]
    due = add_months(entered, settings.deadline_follow_up_months[0])
    assert due == datetime(2027, 4, 30, 10, 0, tzinfo=UTC)  # 31 April does not exist
    for now, levels in ((due - timedelta(seconds=1), []), (due, [1]), (due + timedelta(hours=12), [1])):
        found = evaluate.find(session, now=now, settings=settings)
        assert [f.level.number for f in found if str(f.subject_id) == case_id] == levels, now
    # a clock of 30 January 23:00 is due on 30 April 23:00: not at 16:00, though the day's scan takes it in
    later = datetime(2027, 1, 30, 23, 0, tzinfo=UTC)
    session.execute(sa.update(Case).where(Case.id == uuid.UUID(case_id))
                    .values(stage_since=later, clock_since=later))
    session.commit()
    for now, levels in ((datetime(2027, 4, 30, 16, 0, tzinfo=UTC), []),
                        (datetime(2027, 4, 30, 23, 0, tzinfo=UTC), [1])):
        found = evaluate.find(session, now=now, settings=settings)
        assert [f.level.number for f in found if str(f.subject_id) == case_id] == levels, now


def test_the_bound_is_the_same_whatever_offset_now_is_written_in():
    """Clocks are UTC: `now` written in Ulaanbaatar's +08:00 (or -10:00) is the same instant, and
    the month arithmetic of the bound was done in its offset, a day early: due visits were missed."""
    from datetime import timezone

    settings = Settings.from_env({})
    level = _month_levels()[0]
    clocks = [datetime(2027, 1, 25, tzinfo=UTC) + timedelta(hours=h) for h in range(0, 24 * 40, 5)]
    missed = []
    for hours in range(0, 24 * 40, 7):
        now = datetime(2027, 4, 25, 3, tzinfo=UTC) + timedelta(hours=hours)
        for offset in (8, -10):
            local = now.astimezone(timezone(timedelta(hours=offset)))
            latest = level.latest_clock(local, settings)
            missed += [(c, local) for c in clocks if level.due(c, settings) <= now and c > latest]
    assert missed[:3] == []


def test_a_deadlines_run_with_an_offset_now_raises_the_visit_due(client, world, session, run_cli):
    """The first visit, due 28 May 16:15 UTC, is raised by a run at 16:30 UTC written as +08:00."""
    _in_follow_up_since(client, world, session, datetime(2027, 2, 28, 16, 15, tzinfo=UTC))
    result = run_cli("deadlines", "run", "--now", "2027-05-29T00:30:00+08:00", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    answer = __import__("json").loads(result.output)
    assert answer["now"] == "2027-05-28T16:30:00+00:00"
    assert [r["deadline"] for r in answer["raised"] if r["deadline"] == "follow_up"] == ["follow_up"]
