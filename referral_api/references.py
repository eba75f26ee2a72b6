"""Human references (`REF-2026-000123`, `CASE-2026-000042`): a number per prefix, the year in the text.

On PostgreSQL the number comes from one sequence per prefix (`nextval`: no row lock held until the
transaction ends, one round trip). Numbers never repeat within a prefix and do not restart with the
year: a reference is unique as a whole. Migration 0980 starts each sequence after the largest number
the counter table gave, so existing references never come again. A rolled-back transaction leaves a
gap, which is fine.

On SQLite (one writer at a time) the number comes from one counter row per prefix and year, locked by
the UPDATE for the rest of the transaction, so two transactions never get the same number.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from .db import Base, utcnow


class ReferenceCounter(Base):
    __tablename__ = "reference_counters"

    prefix: Mapped[str] = mapped_column(sa.String(10), primary_key=True)
    year: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    last: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)


# PostgreSQL's numbers, one sequence per prefix (created by migration 0980).
SEQUENCES = {
    prefix: sa.Sequence(f"reference_{prefix.lower()}_seq", metadata=Base.metadata)
    for prefix in ("REF", "CASE")
}


def _counted(session: Session, prefix: str, year: int) -> int:
    session.execute(
        sqlite.insert(ReferenceCounter)
        .values(prefix=prefix, year=year, last=0)
        .on_conflict_do_nothing(index_elements=["prefix", "year"])
    )
    return session.execute(
        sa.update(ReferenceCounter)
        .where(ReferenceCounter.prefix == prefix, ReferenceCounter.year == year)
        .values(last=ReferenceCounter.last + 1)
        .returning(ReferenceCounter.last)
    ).scalar_one()


def next_reference(session: Session, prefix: str, *, now: datetime | None = None) -> str:
    """The next reference for `prefix` (REF or CASE) in the current year, e.g. REF-2026-000124."""
    return next_reference_with(session, prefix, None, now=now)[0]


def next_reference_with(session: Session, prefix: str, column: sa.ColumnElement[Any] | None, *,
                        now: datetime | None = None,
                        params: Mapping[str, Any] | None = None) -> tuple[str, Any]:
    """The next reference, and the value of the scalar `column` (a read the caller needs anyway, or
    None; its bind parameters' values in `params`): on PostgreSQL one statement and one round trip for
    both. A `column` built once (a module's constant) makes its statement built once too; it is read
    on the session's connection (no autoflush: nothing the caller has pending changes the count)."""
    year = (now or utcnow()).year
    if session.get_bind().dialect.name == "postgresql":
        if column is None:
            number, value = session.scalar(sa.select(SEQUENCES[prefix].next_value())), None
        else:
            number, value = session.connection().execute(_numbered_with(prefix, column), params).one()
    else:
        number = _counted(session, prefix, year)
        value = None if column is None else session.scalar(sa.select(column), params)
    return f"{prefix}-{year}-{number:06d}", value


@functools.lru_cache(maxsize=16)
def _numbered_with(prefix: str, column: sa.ColumnElement[Any]) -> sa.Select:
    """The next number of `prefix` with `column`, built once per (prefix, column)."""
    return sa.select(SEQUENCES[prefix].next_value(), column)
