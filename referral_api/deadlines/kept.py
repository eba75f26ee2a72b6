"""What a record keeps of the deadlines raised for it, and the clearing of answered items (evaluate.py).

A record keeps what was raised last for it (`raised_deadline`, `raised_period`, `raised_level`,
db.RaisedMixin): a cache beside the unique overdue items, which alone decide what is raised once. The
records whose raised period is no longer their own (a move) or that were erased are few, found by a
partial index; only their items, and the open items a service answers, are looked at for clearing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..cases.models import Case, CaseService, ServiceStatus
from ..referrals.models import Referral
from .models import OverdueItem
from .table import TABLE, Subject

# `found` below are evaluate.Found items (rule, subject_id, period_start, level ...); evaluate.py imports
# this module, so they are typed loosely here rather than importing back up.
Found = Any

_IN_CHUNK = 5000  # ids in one IN (...): within every backend's limit of parameters


def records(subject: Subject) -> tuple[type[Referral] | type[Case], Any]:
    """The model of a subject and its period column (when the record entered its status or stage)."""
    return (Referral, Referral.status_changed_at) if subject is Subject.REFERRAL else (Case, Case.stage_since)


def moved_on_where(model: type[Referral] | type[Case], period: Any) -> sa.ColumnElement[bool]:
    """The record's last raised wait was answered: its period is no longer the record's, or it was erased.
    The predicate of the partial index `ix_<table>_raised_answered` (db.answered_index)."""
    return sa.and_(
        model.raised_period.is_not(None),
        sa.or_(model.raised_period != period, model.erased_at.is_not(None)),
    )


def chunks(ids: Iterable[uuid.UUID]) -> list[list[uuid.UUID]]:
    """`ids` in order, in lists short enough for one statement's parameters (never none: one empty)."""
    ordered = sorted(set(ids), key=lambda i: i.bytes)
    return [ordered[start : start + _IN_CHUNK] for start in range(0, len(ordered), _IN_CHUNK)] or [[]]


def lock(session: Session, found: list[Found]) -> dict[Subject, list[uuid.UUID]]:
    """Lock (referrals, then cases, each by id) the records found and those whose raised wait was
    answered; returns the latter. Concurrent evaluations and moves of these records wait their turn."""
    answered: dict[Subject, list[uuid.UUID]] = {}
    for subject in (Subject.REFERRAL, Subject.CASE):
        model, period = records(subject)
        moved_on = moved_on_where(model, period)
        answered[subject] = []
        for i, ids in enumerate(chunks(f.subject_id for f in found if f.rule.subject is subject)):
            which = [moved_on] if i == 0 else []  # the answered ones with the first (or only) chunk
            rows = session.execute(
                sa.select(model.id, moved_on.label("moved_on"))
                .where(sa.or_(*which, model.id.in_(ids)))
                .order_by(model.id)
                .with_for_update()
            ).all()
            answered[subject] += [row.id for row in rows if row.moved_on]
    return answered


def item_answered() -> sa.ColumnElement[bool]:
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


def serviced() -> sa.ColumnElement[bool]:
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


def clear(session: Session, answered: dict[Subject, list[uuid.UUID]], *, now: datetime) -> int:
    """Clear the answered items, reset what their records keep and the overdue marks no open item holds
    up any more; returns the items cleared.

    Only the records `lock` found answered are looked at (and the open service_plan items): the
    others' raised period is still their own. A move resets its record's mark itself, and a mark set
    by an evaluation racing a move belongs to an item this step clears."""
    ids = [i for subject_ids in answered.values() for i in subject_ids]
    wheres = [sa.and_(OverdueItem.subject_id.in_(chunk), item_answered()) for chunk in chunks(ids) if chunk]
    cleared: set[uuid.UUID] = set()
    for where in [*wheres, serviced()]:
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
        model, period = records(subject)
        table = model.__table__
        for chunk in chunks(answered[subject]):
            if chunk:
                session.execute(
                    sa.update(table)
                    .where(table.c.id.in_(chunk), moved_on_where(model, period))
                    .values(raised_deadline=None, raised_period=None, raised_level=None)
                )
        marking = {r.deadline for r in TABLE if r.subject is subject and r.marks_overdue}
        held_up = sa.exists().where(
            OverdueItem.subject_id == table.c.id,
            OverdueItem.cleared_at.is_(None),
            OverdueItem.deadline.in_(marking),
        )
        for chunk in chunks(cleared):
            if chunk:
                session.execute(
                    sa.update(table)
                    .where(table.c.id.in_(chunk), table.c.overdue_since.is_not(None), ~held_up)
                    .values(overdue_since=None)
                )
    return len(cleared)


def record(session: Session, found: list[Found]) -> None:
    """Keep on each record found what was raised for it (inserted now, or by another evaluation first).

    Never lowers the level of the same wait, and leaves a record whose raised wait was answered as it
    is (`clear` of a later evaluation looks at it: it still has items to clear)."""
    for subject in (Subject.REFERRAL, Subject.CASE):
        rows = [
            {"rid": f.subject_id, "rperiod": f.period_start, "rlevel": f.level.number}
            | {"rdeadline": f.rule.deadline.value}
            for f in found
            if f.rule.subject is subject
        ]
        if not rows:
            continue
        model, period = records(subject)
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
