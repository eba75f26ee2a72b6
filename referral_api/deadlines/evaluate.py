"""`deadlines run`: find the waits past a level of their deadline, raise each once, clear the answered.

One evaluation is a few set-based statements, all committed together:
- find: one SELECT (a UNION ALL over every row and level of the table) of the records past a level,
  index ranges on status or stage and clock. Each record keeps what was raised last for it
  (`raised_deadline`, `raised_period`, `raised_level`; kept.py), so a wait raised up to its level in
  this period is skipped without looking at the items; the same statement looks for anything to
  clear (the partial indexes of kept.py), and the next two steps run only if there is;
- lock, in one order, the records found and those whose raised wait was answered (their period is
  no longer the record's own, or they were erased: a small partial index), so that evaluations
  running at once and the moves of those records take turns;
- clear the open items of the answered records and those a service answered (service_plan), and
  reset what those records keep;
- INSERT ... ON CONFLICT DO NOTHING RETURNING of the items found (in chunks), then record them on
  their records. The unique constraint is what raises each item once: only the items this
  evaluation inserted are published and audited (several workers on PostgreSQL).
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from .. import audit, events
from ..audit.actions import AuditAction
from ..cases.models import Case, CaseService, ServiceStatus
from ..config import Settings
from ..db import UTCDateTime
from ..referrals.models import Referral
from . import kept
from .models import OverdueItem
from .table import TABLE, Level, Rule, Subject

RESOURCE = "overdue_item"
_INSERT_CHUNK = 1000
_UNIQUE = ("subject_id", "deadline", "level", "period_start")


@dataclass(frozen=True)
class Found:
    """A wait found past a level of its deadline: the record, its waiting period, and when it was due."""

    rule: Rule
    level: Level
    subject_id: uuid.UUID
    reference: str
    period_start: datetime
    due_at: datetime
    held_seconds: int


def _planned_service() -> sa.Exists:
    return sa.exists().where(CaseService.case_id == Case.id, CaseService.status != ServiceStatus.DECLINED)


def _waiting(rule: Rule, level: Level, latest: sa.BindParameter) -> sa.Select:
    """The records waiting in the rule's state past `level` (clock at `latest` or before), not raised at
    it (or higher) in this period."""
    if rule.subject is Subject.REFERRAL:
        model, period, clock, held = (
            Referral,
            Referral.status_changed_at,
            Referral.status_changed_at,
            sa.literal(0),
        )
        where = [Referral.status == rule.state, clock <= latest]
        if rule.urgency is not None:
            where.append(Referral.urgency == rule.urgency)
    else:
        model, period, clock, held = Case, Case.stage_since, Case.clock_since, Case.held_seconds
        where = [Case.stage == rule.state, Case.on_hold.is_(False), clock <= latest]
        if rule.needs_service:
            where.append(~_planned_service())
    # raised already: this deadline, this period, this level or higher (the columns go together)
    not_raised = sa.or_(
        model.raised_period.is_(None),
        model.raised_deadline != rule.deadline.value,
        model.raised_period != period,
        model.raised_level < level.number,
    )
    return sa.select(
        model.id, model.reference, period.label("period"), clock.label("clock"), held.label("held")
    ).where(*where, model.erased_at.is_(None), not_raised)


@dataclass(frozen=True)
class _Scan:
    found: list[Found]
    to_clear: bool  # some record's raised wait was answered, or a service answered an open item


_MOVED_ON = {Subject.REFERRAL: -3, Subject.CASE: -2}
_SERVICED = -1


def _to_clear() -> list[sa.Select]:
    """The arms of the scan that find what waits to be cleared (partial indexes: few rows, none mostly)."""
    item = OverdueItem
    open_serviced = item.cleared_at.is_(None) & kept.serviced()
    arms = [(item.subject_id, item.reference, item.period_start, _SERVICED, open_serviced)]
    for subject, step in _MOVED_ON.items():
        model, period = kept.records(subject)
        arms.append((model.id, model.reference, period, step, kept.moved_on_where(model, period)))
    selects = []
    for key, reference, period, step, where in arms:
        names = ("id", "reference", "period", "clock", "held", "step")
        values = (key, reference, period, period, sa.literal(0), sa.literal(step))
        arm = sa.select(*(v.label(n) for v, n in zip(values, names, strict=True)))
        selects.append(arm.where(where))
    return selects


def _steps(settings: Settings) -> tuple[tuple[Rule, Level], ...]:
    """Every row and level of the table the settings give; of a rule's levels, the highest first."""
    return tuple((rule, level) for rule in TABLE for level in reversed(rule.levels_in(settings)))


@functools.lru_cache(maxsize=8)
def _statement(steps: tuple[tuple[Rule, Level], ...]) -> sa.Select:
    """The scan for these steps, built once (the latest clock of step i: bound as `latest_i`)."""
    selects = [
        _waiting(rule, level, sa.bindparam(f"latest_{i}", type_=UTCDateTime()))
        .add_columns(sa.literal(i).label("step"))
        .order_by(None)
        for i, (rule, level) in enumerate(steps)
    ]
    return sa.union_all(*_to_clear(), *selects).order_by("step", "id")


def _scan(session: Session, *, now: datetime, settings: Settings) -> _Scan:
    """One statement, a UNION ALL: the waits of every row and level of the table, and whether anything
    waits to be cleared. Of a wait past several levels, the highest."""
    steps = _steps(settings)
    latest = {f"latest_{i}": level.latest_clock(now, settings) for i, (_rule, level) in enumerate(steps)}
    rows = session.execute(_statement(steps), latest).all()
    found: list[Found] = []
    seen: set[tuple[int, uuid.UUID]] = set()
    for row in rows:
        if row.step < 0:
            continue
        rule, level = steps[row.step]
        if (id(rule), row.id) in seen or level.due(row.clock, settings) > now:
            # past a higher level of the same rule (that one is raised), or a month level's wait due
            # later today (Level.latest_clock): its lower level, if due, is the next row
            continue
        seen.add((id(rule), row.id))
        found.append(
            Found(
                rule, level, row.id, row.reference, row.period, level.due(row.clock, settings), int(row.held)
            )
        )
    return _Scan(found, any(row.step < 0 for row in rows))


def find(session: Session, *, now: datetime, settings: Settings) -> list[Found]:
    """Every wait past a level of its deadline not raised yet; of a wait past several levels, the highest."""
    return _scan(session, now=now, settings=settings).found


def _insert(session: Session, found: list[Found], *, now: datetime) -> dict[uuid.UUID, Found]:
    """Insert the items; those another evaluation inserted first are skipped. The new ones, by item id."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    new: dict[uuid.UUID, Found] = {}
    found = sorted(found, key=lambda f: f.subject_id.bytes)  # one lock order for all evaluations: no deadlock
    for start in range(0, len(found), _INSERT_CHUNK):
        chunk = {uuid.uuid4(): f for f in found[start : start + _INSERT_CHUNK]}
        rows = [
            {
                "id": item_id,
                "subject": f.rule.subject,
                "subject_id": f.subject_id,
                "reference": f.reference,
                "deadline": f.rule.deadline,
                "level": f.level.number,
                "told": f.level.told,
                "period_start": f.period_start,
                "due_at": f.due_at,
                "held_seconds": f.held_seconds,
                "raised_at": now,
            }
            for item_id, f in chunk.items()
        ]
        stmt = (
            dialect.insert(OverdueItem)
            .values(rows)
            .on_conflict_do_nothing(index_elements=list(_UNIQUE))
            .returning(OverdueItem.id)
        )
        new.update({item_id: chunk[item_id] for item_id in session.scalars(stmt)})
    return new


def _mark(session: Session, new: dict[uuid.UUID, Found], *, now: datetime) -> None:
    """Mark the records overdue (still in the state that waits: a move may have just answered)."""
    for rule in {f.rule for f in new.values() if f.rule.marks_overdue}:
        table = (Referral if rule.subject is Subject.REFERRAL else Case).__table__
        state = table.c.status if rule.subject is Subject.REFERRAL else table.c.stage
        ids = [f.subject_id for f in new.values() if f.rule is rule]
        session.execute(
            sa.update(table)
            .where(table.c.id.in_(ids), table.c.overdue_since.is_(None), state == rule.state)
            .values(overdue_since=now)
        )


def _announce(session: Session, new: dict[uuid.UUID, Found], *, now: datetime) -> None:
    """One thin event and one audit event per new item (the audit chain locked once for all)."""
    entries = []
    for item_id, f in new.items():
        late = int((now - f.due_at).total_seconds())
        subject = f.rule.subject.value
        events.publish(
            session,
            f.rule.event,
            resource_type=RESOURCE,
            resource_id=item_id,
            occurred_at=now,
            data={
                "reference": f.reference,
                f"{subject}_id": f.subject_id,
                "status" if f.rule.subject is Subject.REFERRAL else "stage": f.rule.state.value,
                "deadline": f.rule.deadline.value,
                "level": f.level.number,
                "due_at": f.due_at,
                "late_by_seconds": late,
            },
        )
        entries.append(
            {
                "actor": None,
                "action": AuditAction.DEADLINE_RAISE,
                "resource_type": subject,
                "resource_id": f.subject_id,
                "details": {
                    "item_id": str(item_id),
                    "deadline": f.rule.deadline.value,
                    "level": f.level.number,
                    "late_by_seconds": late,
                },
            }
        )
    audit.record_many(session, entries)


def _describe(f: Found, *, now: datetime) -> dict[str, Any]:
    return {
        "subject": f.rule.subject.value,
        "reference": f.reference,
        "deadline": f.rule.deadline.value,
        "level": f.level.number,
        "event": f.rule.event.value,
        "due_at": f.due_at.isoformat(),
        "late_by_seconds": int((now - f.due_at).total_seconds()),
    }


def run(session: Session, *, now: datetime, settings: Settings, dry_run: bool = False) -> dict[str, Any]:
    """One evaluation at `now`: raise what is newly overdue, clear what was answered, commit once."""
    scan = _scan(session, now=now, settings=settings)
    found = scan.found
    if dry_run:
        session.rollback()
        return {
            "now": now.isoformat(),
            "dry_run": True,
            "cleared": 0,
            "raised": [_describe(f, now=now) for f in found],
        }
    cleared = kept.clear(session, kept.lock(session, found), now=now) if found or scan.to_clear else 0
    new = _insert(session, found, now=now) if found else {}
    kept.record(session, found)
    _mark(session, new, now=now)
    _announce(session, new, now=now)
    session.commit()
    return {
        "now": now.isoformat(),
        "dry_run": False,
        "cleared": cleared,
        "raised": [_describe(f, now=now) for f in new.values()],
    }
