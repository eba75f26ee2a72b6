"""Human references (`REF-2026-000123`, `CASE-2026-000042`): one counter row per prefix and year.

The counter row is locked by the UPDATE for the rest of the transaction, so two concurrent
transactions never get the same number; a rolled-back transaction may leave a gap, which is fine.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column

from .db import Base, utcnow


class ReferenceCounter(Base):
    __tablename__ = "reference_counters"

    prefix: Mapped[str] = mapped_column(sa.String(10), primary_key=True)
    year: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    last: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)


def next_reference(session: Session, prefix: str, *, now: datetime | None = None) -> str:
    """The next reference for `prefix` in the current year, e.g. REF-2026-000124."""
    year = (now or utcnow()).year
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert(ReferenceCounter)
        .values(prefix=prefix, year=year, last=0)
        .on_conflict_do_nothing(index_elements=["prefix", "year"])
    )
    number = session.execute(
        sa.update(ReferenceCounter)
        .where(ReferenceCounter.prefix == prefix, ReferenceCounter.year == year)
        .values(last=ReferenceCounter.last + 1)
        .returning(ReferenceCounter.last)
    ).scalar_one()
    return f"{prefix}-{year}-{number:06d}"
