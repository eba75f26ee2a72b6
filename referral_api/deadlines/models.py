"""An overdue item: one wait of one record past one level of its deadline, raised once.

The unique constraint is the promise "raised once, again only on escalation": one row per record,
deadline, level and waiting period (the time the record entered the status or stage it waits in; a
new period begins when it leaves and comes back). Evaluations running at once insert with ON CONFLICT
DO NOTHING, and only the one whose row went in publishes the event and writes the audit event.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, IdMixin, UTCDateTime, enum_column
from .table import Deadline, Subject, Told


class OverdueItem(IdMixin, Base):
    __tablename__ = "overdue_items"

    subject: Mapped[Subject] = mapped_column(enum_column(Subject, "subject"), nullable=False)
    # a referral's or a case's id (which one: `subject`); no personal data is kept here
    subject_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, nullable=False)
    reference: Mapped[str] = mapped_column(sa.String(20), nullable=False)
    deadline: Mapped[Deadline] = mapped_column(enum_column(Deadline, "deadline"), nullable=False)
    level: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    told: Mapped[Told] = mapped_column(enum_column(Told, "told"), nullable=False)
    # when the record entered the status or stage it waits in: the waiting period this item is about
    period_start: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    # the time the case had spent on hold in this period when the item was raised (its clock was paused)
    held_seconds: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    raised_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    # set by the evaluation that finds the wait answered (a move, or a service planned)
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    __table_args__ = (
        sa.UniqueConstraint("subject_id", "deadline", "level", "period_start", name="uq_overdue_items_once"),
        sa.CheckConstraint("level >= 1", name="level_positive"),
        sa.Index("ix_overdue_items_open", "subject", "cleared_at"),
        sa.Index("ix_overdue_items_raised", "raised_at"),
        # the open items of a deadline a service answers (service_plan): probed each evaluation
        sa.Index(
            "ix_overdue_items_open_deadline", "deadline", "subject_id",
            postgresql_where=sa.text("cleared_at IS NULL"), sqlite_where=sa.text("cleared_at IS NULL"),
        ),
    )
