"""Cases: one person's way home and back into life in Mongolia (DOMAIN.md, Case).

Opened when a referral is accepted. The case shares the person's data key with the referral that
opened it (the key is shared, not copied), so crypto-shredding one erases the person everywhere.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, IdMixin, TimestampMixin, UTCDateTime, utcnow


class Case(IdMixin, TimestampMixin, Base):
    __tablename__ = "cases"

    reference: Mapped[str] = mapped_column(sa.String(20), unique=True, nullable=False)
    data_key_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, index=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    opened_by_organisation_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey("organisations.id"), nullable=False
    )
    opened_by_user_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid)
    # Whose consent rules govern the case: the organisation kinds the person agreed to share with.
    share_with: Mapped[list[str]] = mapped_column(sa.JSON, nullable=False, default=list)
