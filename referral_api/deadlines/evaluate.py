"""`deadlines run`: find the waits past a level of their deadline, raise each once, clear the answered.

One evaluation is a few set-based statements, all committed together:
- find: one SELECT (a UNION ALL over every row and level of the table) of the records past a level,
  index ranges on status or stage and clock. Each record keeps what was raised last for it
  (`raised_deadline`, `raised_period`, `raised_level`, db.RaisedMixin), so a wait raised up to its
  level in this period is skipped without looking at the items;
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
from ..referrals.models import Referral
from .models import OverdueItem
from .table import TABLE, Level, Rule, Subject

RESOURCE = "overdue_item"
_INSERT_CHUNK = 1000
_UNIQUE = ("subject_id", "deadline", "level", "period_start")


@dataclass(frozen=True)
class _Found:
    rule: Rule
    level: Level
    subject_id: uuid.UUID
    reference: str
    period_start: datetime
    due_at: datetime
    held_seconds: int


def _planned_service() -> sa.Exists:
    return sa.exists().where(CaseService.case_id == Case.id, CaseService.status != ServiceStatus.DECLINED)


def _waiting(rule: Rule, level: Level, *, now: datetime, settings: Settings) -> sa.Select:
    """The records waiting in the rule's state past `level`, not raised at it (or higher) in this period."""
    latest = level.latest_clock(now, settings)
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
    found: list[_Found]
    to_clear: bool  # some record's raised wait was answered, or a service answered an open item


_MOVED_ON = {Subject.REFERRAL: -3, Subject.CASE: -2}
_SERVICED = -1


def _to_clear() -> list[sa.Select]:
    """The arms of the scan that find what waits to be cleared (partial indexes: few rows, none mostly)."""
    item = OverdueItem
    open_serviced = item.cleared_at.is_(None) & _serviced()
    arms = [(item.subject_id, item.reference, item.period_start, _SERVICED, open_serviced)]
    for subject, step in _MOVED_ON.items():
        model, period = _records(subject)
        arms.append((model.id, model.reference, period, step, _moved_on(model, period)))
    selects = []
    for key, reference, period, step, where in arms:
        names = ("id", "reference", "period", "clock", "held", "step")
        values = (key, reference, period, period, sa.literal(0), sa.literal(step))
        arm = sa.select(*(v.label(n) for v, n in zip(values, names, strict=True)))
        selects.append(arm.where(where))
    return selects


def _scan(session: Session, *, now: datetime, settings: Settings) -> _Scan:
    """One statement, a UNION ALL: the waits of every row and level of the table, and whether anything
    waits to be cleared. Of a wait past several levels, the highest."""
    steps = [(rule, level) for rule in TABLE for level in reversed(rule.levels_in(settings))]
    selects = [
        _waiting(rule, level, now=now, settings=settings)
        .add_columns(sa.literal(i).label("step"))
        .order_by(None)
        for i, (rule, level) in enumerate(steps)
    ]
    rows = session.execute(sa.union_all(*_to_clear(), *selects).order_by("step", "id")).all()
    found: list[_Found] = []
    seen: set[tuple[int, uuid.UUID]] = set()
    for row in rows:
        if row.step < 0:
            continue
        rule, level = steps[row.step]
        if (id(rule), row.id) in seen:
            continue  # past a higher level of the same rule: that one is raised
        seen.add((id(rule), row.id))
        found.append(
            _Found(
                rule, level, row.id, row.reference, row.period, level.due(row.clock, settings), int(row.held)
            )
        )
    return _Scan(found, any(row.step < 0 for row in rows))


def find(session: Session, *, now: datetime, settings: Settings) -> list[_Found]:
    """Every wait past a level of its deadline not raised yet; of a wait past several levels, the highest."""
    return _scan(session, now=now, settings=settings).found


def _insert(session: Session, found: list[_Found], *, now: datetime) -> dict[uuid.UUID, _Found]:
    """Insert the items; those another evaluation inserted first are skipped. The new ones, by item id."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    new: dict[uuid.UUID, _Found] = {}
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


def _mark(session: Session, new: dict[uuid.UUID, _Found], *, now: datetime) -> None:
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


def _announce(session: Session, new: dict[uuid.UUID, _Found], *, now: datetime) -> None:
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


def _records(subject: Subject) -> tuple[type[Referral] | type[Case], Any]:
    """The model of a subject and its period column (when the record entered its status or stage)."""
    return (Referral, Referral.status_changed_at) if subject is Subject.REFERRAL else (Case, Case.stage_since)


def _moved_on(model: type[Referral] | type[Case], period: Any) -> sa.ColumnElement[bool]:
    """The record's last raised wait was answered: its period is no longer the record's, or it was erased.
    The predicate of the partial index `ix_<table>_raised_answered` (db.answered_index)."""
    return sa.and_(
        model.raised_period.is_not(None),
        sa.or_(model.raised_period != period, model.erased_at.is_not(None)),
    )


def _lock(session: Session, found: list[_Found]) -> dict[Subject, list[uuid.UUID]]:
    """Lock (referrals, then cases, each by id) the records found and those whose raised wait was
    answered; returns the latter. Concurrent evaluations and moves of these records wait their turn."""
    answered: dict[Subject, list[uuid.UUID]] = {}
    for subject in (Subject.REFERRAL, Subject.CASE):
        model, period = _records(subject)
        ids = {f.subject_id for f in found if f.rule.subject is subject}
        moved_on = _moved_on(model, period)
        rows = session.execute(
            sa.select(model.id, moved_on.label("moved_on"))
            .where(sa.or_(moved_on, model.id.in_(ids)) if ids else moved_on)
            .order_by(model.id)
            .with_for_update()
        ).all()
        answered[subject] = [row.id for row in rows if row.moved_on]
    return answered


def _answered() -> sa.ColumnElement[bool]:
    """An open item whose wait is over: its record left the status or stage (a new period) or was erased."""
    referral_period = (
        sa.select(Referral.status_changed_at)
        .where(Referral.id == OverdueItem.subject_id, Referral.erased_at.is_(None))
        .scalar_subquery()
    )
    case_period = (
        sa.select(Case.stage_since)
        .where(Case.id == OverdueItem.subject_id, Case.erased_at.is_(None))
        .scalar_subquery()
    )
    period = sa.case((OverdueItem.subject == Subject.REFERRAL, referral_period), else_=case_period)
    return period.is_distinct_from(OverdueItem.period_start)


def _serviced() -> sa.ColumnElement[bool]:
    """An open item of a deadline a service answers (service_plan) whose case has a service planned."""
    # a probe per open item of such a deadline (not a hash of every service)
    service = (
        sa.select(CaseService.id)
        .where(CaseService.case_id == OverdueItem.subject_id, CaseService.status != ServiceStatus.DECLINED)
        .limit(1)
        .scalar_subquery()
    )
    answered_by_service = {r.deadline for r in TABLE if r.needs_service}
    return sa.and_(OverdueItem.deadline.in_(answered_by_service), service.is_not(None))


def _clear(session: Session, answered: dict[Subject, list[uuid.UUID]], *, now: datetime) -> int:
    """Clear the answered items, reset what their records keep and the overdue marks no open item holds
    up any more; returns the items cleared.

    Only the records `_lock` found answered are looked at (and the open service_plan items): the
    others' raised period is still their own. A move resets its record's mark itself, and a mark set
    by an evaluation racing a move belongs to an item this step clears."""
    ids = [i for subject_ids in answered.values() for i in subject_ids]
    wheres = [sa.and_(OverdueItem.subject_id.in_(ids), _answered())] if ids else []
    cleared: set[uuid.UUID] = set()
    for where in [*wheres, _serviced()]:
        cleared.update(
            session.scalars(
                sa.update(OverdueItem)
                .where(OverdueItem.cleared_at.is_(None), where)
                .values(cleared_at=now)
                .returning(OverdueItem.subject_id)
                .execution_options(synchronize_session=False)
            )
        )
    for subject in (Subject.REFERRAL, Subject.CASE):
        model, period = _records(subject)
        table = model.__table__
        if answered[subject]:
            session.execute(
                sa.update(table)
                .where(table.c.id.in_(answered[subject]), _moved_on(model, period))
                .values(raised_deadline=None, raised_period=None, raised_level=None)
            )
        if not cleared:
            continue
        marking = {r.deadline for r in TABLE if r.subject is subject and r.marks_overdue}
        held_up = sa.exists().where(
            OverdueItem.subject_id == table.c.id,
            OverdueItem.cleared_at.is_(None),
            OverdueItem.deadline.in_(marking),
        )
        session.execute(
            sa.update(table)
            .where(table.c.id.in_(cleared), table.c.overdue_since.is_not(None), ~held_up)
            .values(overdue_since=None)
        )
    return len(cleared)


def _record(session: Session, found: list[_Found]) -> None:
    """Keep on each record found what was raised for it (inserted now, or by another evaluation first).

    Never lowers the level of the same wait, and leaves a record whose raised wait was answered as it
    is (`_clear` of a later evaluation looks at it: it still has items to clear)."""
    for subject in (Subject.REFERRAL, Subject.CASE):
        rows = [
            {"rid": f.subject_id, "rdeadline": f.rule.deadline.value, "rperiod": f.period_start,
             "rlevel": f.level.number}
            for f in found
            if f.rule.subject is subject
        ]
        if not rows:
            continue
        model, period = _records(subject)
        table = model.__table__
        raised_period = table.c.raised_period
        session.execute(
            sa.update(table)
            .where(
                table.c.id == sa.bindparam("rid"),
                sa.or_(raised_period.is_(None), raised_period == period),
                sa.or_(
                    raised_period.is_(None),
                    table.c.raised_deadline != sa.bindparam("rdeadline"),
                    raised_period != sa.bindparam("rperiod"),
                    table.c.raised_level < sa.bindparam("rlevel"),
                ),
            )
            .values(
                raised_deadline=sa.bindparam("rdeadline"),
                raised_period=sa.bindparam("rperiod"),
                raised_level=sa.bindparam("rlevel"),
            ),
            rows,
        )


def _describe(f: _Found, *, now: datetime) -> dict[str, Any]:
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
    cleared = _clear(session, _lock(session, found), now=now) if found or scan.to_clear else 0
    new = _insert(session, found, now=now) if found else {}
    _record(session, found)
    _mark(session, new, now=now)
    _announce(session, new, now=now)
    session.commit()
    return {
        "now": now.isoformat(),
        "dry_run": False,
        "cleared": cleared,
        "raised": [_describe(f, now=now) for f in new.values()],
    }
