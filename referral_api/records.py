"""What referrals and cases both do with one record: find it by id or reference, refuse and audit,
page a list by keyset, and settle a write that lost a race. Stands beside audit/ (it records denials)."""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, Session, make_transient_to_detached
from sqlalchemy.orm.exc import StaleDataError

from . import audit
from .access import Actor
from .audit.actions import AuditAction, Outcome
from .db import commit
from .errors import Conflict, NotFound
from .paging import cursor_time, cursor_uuid, decode_cursor, page
from .privacy.fields import seal_now


def by_id_or_reference(model: Any, ref: str) -> sa.ColumnElement[bool]:
    """The condition matching `ref`: a UUID is an id, anything else a human reference (any case)."""
    try:
        return model.id == uuid.UUID(ref)
    except ValueError:
        return model.reference == ref.upper()


def deny(session: Session, actor: Actor, *, resource_type: str, resource_id: uuid.UUID | None,
         what: str) -> NotFound:
    """Audit a refused look at a record and return the 404 to raise.

    Rolled back first, so nothing half-done commits with the denial; committed on its own, since the
    request ends in the 404 (within a unit of work that commit is its checkpoint).
    """
    session.rollback()
    audit.record(
        session,
        actor=actor,
        action=AuditAction.HTTP_REQUEST_DENY,
        resource_type=resource_type,
        resource_id=resource_id,
        outcome=Outcome.DENIED,
        details={"reason": "not visible" if resource_id else f"no such {resource_type}"},
    )
    commit(session)
    return NotFound(f"No {resource_type} {what} that you may see.")


def keyset_page(session: Session, query: sa.Select, *, at: InstrumentedAttribute,
                row_id: InstrumentedAttribute, limit: int,
                cursor: str | None) -> tuple[list[Any], str | None]:
    """One page of `query`, newest `at` first (ties by id), and the cursor of the next page."""
    if cursor:
        when, rid = decode_cursor(cursor, size=2)
        when, rid = cursor_time(when), cursor_uuid(rid)
        query = query.where(sa.tuple_(at, row_id) < sa.tuple_(sa.literal(when), sa.literal(rid)))
    rows = list(session.scalars(query.order_by(at.desc(), row_id.desc()).limit(limit + 1)))
    return page(rows, limit=limit,
                key=lambda row: [getattr(row, at.key).isoformat(), str(getattr(row, row_id.key))])


def settle(session: Session, *, what: str, step: Callable[[Session], None] = commit,
           field: str | None = None) -> None:
    """Commit (or flush), turning a lost race into a 409: a version column that moved, or a unique key
    taken meanwhile (named as `field` when one field is the cause)."""
    try:
        step(session)
    except (StaleDataError, IntegrityError) as lost:
        session.rollback()
        if field is None or isinstance(lost, StaleDataError):
            raise Conflict(f"The {what} was changed by someone else at the same time; "
                           "read it again.") from None
        raise Conflict("The change conflicts with another one made at the same time.",
                       errors={field: ["conflicts with a concurrent change"]}) from None


def insert_now(session: Session, record: Any) -> None:
    """INSERT a new `record` at once on the session's connection with Core, and attach it to the
    session as a flush would have left it: persistent, clean, every column loaded (none read back).

    What the flush does is done here: encrypted values sealed (a new data key INSERTed first), a column
    left None gets its Python default, a version column starts at 1. Cheaper than a flush for a wide
    row: no unit of work, one statement compiled once. In a `db.pipelined` block a failure (a unique
    key taken) raises at the block's end; the caller rolls back."""
    seal_now(session, record)
    insert, columns, version = _insertable(type(record))
    state, values = record.__dict__, {}
    for attribute, column in columns:
        value = state.get(attribute)
        if value is None:
            if column is version:
                value = 1
            elif column.default is not None:
                value = column.default.arg(None) if column.default.is_callable else column.default.arg
            state[attribute] = value
        values[column.key] = value
    session.connection().execute(insert, values)
    make_transient_to_detached(record)
    session.add(record)


@functools.cache
def _insertable(model: type) -> tuple[sa.Insert, tuple[tuple[str, sa.Column], ...], sa.Column | None]:
    """The INSERT of all the columns of `model`, its (attribute, column) pairs and its version column
    (built once per class: mapped classes do not change)."""
    mapper = sa.inspect(model)
    if any(column.server_default is not None for column in mapper.local_table.columns):
        raise TypeError(f"{model.__name__} has server defaults: insert_now would send NULL for them")
    return (mapper.local_table.insert(), tuple((p.key, p.columns[0]) for p in mapper.column_attrs),
            mapper.version_id_col)
