"""The data keys: one per person record, stored wrapped by a master key (envelope encryption)."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, UTCDateTime, utcnow


class DataKey(Base):
    """A record's data key, wrapped by master key `master_key_id`; erased keys keep only their dates.

    No foreign key points here: the table may live in a separate key-store database (KEYSTORE_URL).
    """

    __tablename__ = "data_keys"

    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, primary_key=True, default=uuid.uuid4)
    wrapped_key: Mapped[bytes | None] = mapped_column(sa.LargeBinary(128), nullable=True)
    master_key_id: Mapped[str | None] = mapped_column(sa.String(64), nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (
        # Either a live key (wrapped, with its master key) or an erased one (neither), nothing between.
        sa.CheckConstraint(
            "(erased_at IS NULL AND wrapped_key IS NOT NULL AND master_key_id IS NOT NULL) OR "
            "(erased_at IS NOT NULL AND wrapped_key IS NULL AND master_key_id IS NULL)",
            name="live_or_erased",
        ),
    )
