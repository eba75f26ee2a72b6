"""`deadlines run`: find the waits past a level of their deadline, raise each once, clear the answered.

One evaluation is a few set-based statements: one SELECT (a UNION ALL over every row and level of the
table) of the records past a level with no item yet for their waiting period, index ranges on status
or stage and clock; one INSERT ... ON CONFLICT DO NOTHING RETURNING of the new items (in chunks); one
UPDATE clearing the items whose wait was answered, and one resetting the overdue marks of their
records where no open item is left. Only the items this evaluation inserted are published and
audited, so evaluations running at once (several workers on PostgreSQL) raise each item once.
Everything commits together.
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
    """The records waiting in the rule's state past `level`, with no item of it (or higher) yet."""
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
    raised = sa.exists().where(
        OverdueItem.subject_id == model.id,
        OverdueItem.deadline == rule.deadline,
        OverdueItem.level >= level.number,
        OverdueItem.period_start == period,
    )
    return sa.select(
        model.id, model.reference, period.label("period"), clock.label("clock"), held.label("held")
    ).where(*where, model.erased_at.is_(None), ~raised)


def find(session: Session, *, now: datetime, settings: Settings) -> list[_Found]:
    """Every wait past a level of its deadline not raised yet; of a wait past several levels, the highest.

    One statement: the waits of every row and level of the table, as one UNION ALL."""
    steps = [(rule, level) for rule in TABLE for level in reversed(rule.levels_in(settings))]
    selects = [
        _waiting(rule, level, now=now, settings=settings)
        .add_columns(sa.literal(i).label("step"))
        .order_by(None)
        for i, (rule, level) in enumerate(steps)
    ]
    rows = session.execute(sa.union_all(*selects).order_by("step", "id")).all()
    found: list[_Found] = []
    seen: set[tuple[int, uuid.UUID]] = set()
    for row in rows:
        rule, level = steps[row.step]
        if (id(rule), row.id) in seen:
            continue  # past a higher level of the same rule: that one is raised
        seen.add((id(rule), row.id))
        found.append(
            _Found(
                rule, level, row.id, row.reference, row.period, level.due(row.clock, settings), int(row.held)
            )
        )
    return found


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


def _answered() -> sa.ColumnElement[bool]:
    """An open item whose wait is over: its record left the status or stage (a new period), was erased,
    or (service_plan) has a service planned. Scalar subqueries: one primary-key probe per open item."""
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
    # probed only for the items of a deadline a service answers (not a hash of every service)
    service = (
        sa.select(CaseService.id)
        .where(CaseService.case_id == OverdueItem.subject_id, CaseService.status != ServiceStatus.DECLINED)
        .limit(1)
        .scalar_subquery()
    )
    service_rules = {r.deadline for r in TABLE if r.needs_service}
    return sa.or_(
        period.is_distinct_from(OverdueItem.period_start),
        sa.and_(OverdueItem.deadline.in_(service_rules), service.is_not(None)),
    )


def _clear(session: Session, *, now: datetime) -> int:
    """Clear the answered items, then the overdue marks no open item holds up any more; returns items cleared.

    Only the records of the items cleared now are looked at: a move resets its record's mark itself,
    and a mark set by an evaluation racing a move belongs to an item this step clears."""
    cleared = list(
        session.scalars(
            sa.update(OverdueItem)
            .where(OverdueItem.cleared_at.is_(None), _answered())
            .values(cleared_at=now)
            .returning(OverdueItem.subject_id)
            .execution_options(synchronize_session=False)
        )
    )
    subjects = set(cleared)
    for subject, model in ((Subject.REFERRAL, Referral), (Subject.CASE, Case)):
        if not subjects:
            break
        marking = {r.deadline for r in TABLE if r.subject is subject and r.marks_overdue}
        table = model.__table__
        held_up = sa.exists().where(
            OverdueItem.subject_id == table.c.id,
            OverdueItem.cleared_at.is_(None),
            OverdueItem.deadline.in_(marking),
        )
        session.execute(
            sa.update(table)
            .where(table.c.id.in_(subjects), table.c.overdue_since.is_not(None), ~held_up)
            .values(overdue_since=None)
        )
    return len(cleared)


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
    found = find(session, now=now, settings=settings)
    if dry_run:
        session.rollback()
        return {
            "now": now.isoformat(),
            "dry_run": True,
            "cleared": 0,
            "raised": [_describe(f, now=now) for f in found],
        }
    new = _insert(session, found, now=now) if found else {}
    _mark(session, new, now=now)
    cleared = _clear(session, now=now)
    _announce(session, new, now=now)
    session.commit()
    return {
        "now": now.isoformat(),
        "dry_run": False,
        "cleared": cleared,
        "raised": [_describe(f, now=now) for f in new.values()],
    }
