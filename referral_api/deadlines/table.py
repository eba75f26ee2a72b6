"""The deadlines (issue 17) as one table: what waits, from when, how long, and who is told.

Each row: the record that waits (a referral in a status, a case in a stage), the event raised when the
wait is too long, and its levels: after how long (the setting that says so) and who is told. A later
level is an escalation: the same wait is raised once more, to whom that level names. A referral's clock
starts when it entered its status; a case's clock is `Case.clock_since` (when it entered its stage, or
for `in_transit` the day of departure), moved later by every hold, so a case on hold waits for nobody.

| deadline | waits in | after (setting: default) | told |
| --- | --- | --- | --- |
| review | referral `submitted` | DEADLINE_REVIEW_HOURS: 24, | MGEC |
| | | `urgent` DEADLINE_REVIEW_URGENT_HOURS: 4, | |
| | | `emergency` DEADLINE_REVIEW_EMERGENCY_HOURS: 1 | |
| decision | referral `under_review` | DEADLINE_DECISION_HOURS: 72 | MGEC |
| information | referral `information_requested` | DEADLINE_INFORMATION_REMINDER_DAYS: 7 | partner, MGEC |
| | (escalation) | DEADLINE_INFORMATION_ESCALATION_DAYS: 14 | MGEC |
| verification | case `verification` | DEADLINE_VERIFICATION_DAYS: 14 | case |
| travel_documents | case `travel_documents` | DEADLINE_TRAVEL_DOCUMENTS_DAYS: 14 | case |
| travel_planning | case `travel_planning` | DEADLINE_TRAVEL_PLANNING_DAYS: 21 | case |
| arrival | case `in_transit` (from `departed_on`) | DEADLINE_ARRIVAL_DAYS: 3 | case |
| service_plan | case `rehabilitation`, no service | DEADLINE_SERVICE_PLAN_DAYS: 7 | case |
| follow_up | case `follow_up` | DEADLINE_FOLLOW_UP_MONTHS: 3,6,12 (a visit each) | case |

"case": MGEC and every participant of the case.

A wait is answered by the move that ends it (any change of status or stage), and `service_plan` also
by a service recorded for the case. `follow_up` raises `case.follow_up_due`, a visit due, and does
not mark the case overdue.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from ..cases.stages import Stage
from ..config import Settings
from ..events import EventType
from ..referrals.states import ReferralStatus
from ..referrals.vocab import Urgency


class Deadline(StrEnum):
    REVIEW = "review"
    DECISION = "decision"
    INFORMATION = "information"
    VERIFICATION = "verification"
    TRAVEL_DOCUMENTS = "travel_documents"
    TRAVEL_PLANNING = "travel_planning"
    ARRIVAL = "arrival"
    SERVICE_PLAN = "service_plan"
    FOLLOW_UP = "follow_up"


class Subject(StrEnum):
    REFERRAL = "referral"
    CASE = "case"


class Told(StrEnum):
    """Who hears of an overdue item: always within who may see the record (docs/domain.md)."""

    MGEC = "mgec"
    SUBMITTER = "submitter"  # the referring partner, and MGEC
    CASE = "case"  # MGEC and every participant of the case


class Unit(StrEnum):
    HOURS = "hours"
    DAYS = "days"
    MONTHS = "months"


def add_months(at: datetime, months: int) -> datetime:
    """`at` moved by whole calendar months (the day kept, or the month's last day)."""
    index = at.month - 1 + months
    year, month = at.year + index // 12, index % 12 + 1
    return at.replace(year=year, month=month, day=min(at.day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True)
class Level:
    number: int
    setting: str  # the Settings field holding the length (for months: a list, one level per entry)
    unit: Unit
    told: Told

    def after(self, settings: Settings) -> int:
        value = getattr(settings, self.setting)
        return value[self.number - 1] if isinstance(value, tuple) else value

    def due(self, clock: datetime, settings: Settings) -> datetime:
        """When a wait whose clock started at `clock` reaches this level."""
        amount = self.after(settings)
        if self.unit is Unit.MONTHS:
            return add_months(clock, amount)
        return clock + timedelta(**{self.unit.value: amount})

    def latest_clock(self, now: datetime, settings: Settings) -> datetime:
        """A bound on the clock starts whose wait has reached this level at `now`: every clock whose
        `due` <= now is at or before it. For hours and days it is exact; for months, where `due` clamps
        to the month's end, a clock before it may still be due later the same day (31 January 10:00 is
        due on 30 April 10:00, 30 January 23:00 on 30 April 23:00): the scan checks `due` of each.
        Months and days are counted in UTC, as the clocks are: `now` written in another offset
        (29 May 00:30 +08:00 is 28 May 16:30 UTC) would move the bound by a day."""
        now = now.astimezone(UTC)
        amount = self.after(settings)
        if self.unit is Unit.MONTHS:
            latest = add_months(now, -amount)
            if now.day > latest.day:
                # clamped (29 May back to 28 February): that whole last day is due by now
                return latest.replace(hour=23, minute=59, second=59, microsecond=999_999)
            if now.day == calendar.monthrange(now.year, now.month)[1]:
                # on a month's last day (30 April) the later days of the earlier month (31 January)
                # are due too, up to the same time of day
                return latest.replace(day=calendar.monthrange(latest.year, latest.month)[1])
            return latest
        return now - timedelta(**{self.unit.value: amount})


@dataclass(frozen=True)
class Rule:
    deadline: Deadline
    subject: Subject
    state: ReferralStatus | Stage
    event: EventType
    levels: tuple[Level, ...]
    urgency: Urgency | None = None  # a referral rule for one urgency only
    needs_service: bool = False  # also answered by a service recorded for the case
    marks_overdue: bool = True  # sets `overdue_since` on the record (a visit due does not)

    def levels_in(self, settings: Settings) -> tuple[Level, ...]:
        """The levels the settings give (a list setting: as many as it has entries)."""
        return tuple(lv for lv in self.levels if lv.number <= _entries(getattr(settings, lv.setting)))


def _entries(value: int | tuple[int, ...]) -> int:
    return len(value) if isinstance(value, tuple) else 1_000_000


# Follow-up visits: one level per entry of DEADLINE_FOLLOW_UP_MONTHS (up to this many).
FOLLOW_UP_VISITS = 12


def _case(deadline: Deadline, stage: Stage, setting: str, **kw: bool) -> Rule:
    return Rule(
        deadline,
        Subject.CASE,
        stage,
        EventType.CASE_OVERDUE,
        (Level(1, setting, Unit.DAYS, Told.CASE),),
        **kw,
    )


def _review(setting: str, urgency: Urgency) -> Rule:
    level = Level(1, setting, Unit.HOURS, Told.MGEC)
    return Rule(
        Deadline.REVIEW,
        Subject.REFERRAL,
        ReferralStatus.SUBMITTED,
        EventType.REFERRAL_OVERDUE,
        (level,),
        urgency=urgency,
    )


TABLE: tuple[Rule, ...] = (
    _review("deadline_review_hours", Urgency.ROUTINE),
    _review("deadline_review_urgent_hours", Urgency.URGENT),
    _review("deadline_review_emergency_hours", Urgency.EMERGENCY),
    Rule(
        Deadline.DECISION,
        Subject.REFERRAL,
        ReferralStatus.UNDER_REVIEW,
        EventType.REFERRAL_OVERDUE,
        (Level(1, "deadline_decision_hours", Unit.HOURS, Told.MGEC),),
    ),
    Rule(
        Deadline.INFORMATION,
        Subject.REFERRAL,
        ReferralStatus.INFORMATION_REQUESTED,
        EventType.REFERRAL_OVERDUE,
        (
            Level(1, "deadline_information_reminder_days", Unit.DAYS, Told.SUBMITTER),
            Level(2, "deadline_information_escalation_days", Unit.DAYS, Told.MGEC),
        ),
    ),
    _case(Deadline.VERIFICATION, Stage.VERIFICATION, "deadline_verification_days"),
    _case(Deadline.TRAVEL_DOCUMENTS, Stage.TRAVEL_DOCUMENTS, "deadline_travel_documents_days"),
    _case(Deadline.TRAVEL_PLANNING, Stage.TRAVEL_PLANNING, "deadline_travel_planning_days"),
    _case(Deadline.ARRIVAL, Stage.IN_TRANSIT, "deadline_arrival_days"),
    _case(Deadline.SERVICE_PLAN, Stage.REHABILITATION, "deadline_service_plan_days", needs_service=True),
    Rule(
        Deadline.FOLLOW_UP,
        Subject.CASE,
        Stage.FOLLOW_UP,
        EventType.CASE_FOLLOW_UP_DUE,
        tuple(
            Level(n, "deadline_follow_up_months", Unit.MONTHS, Told.CASE)
            for n in range(1, FOLLOW_UP_VISITS + 1)
        ),
        marks_overdue=False,
    ),
)
