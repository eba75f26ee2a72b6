"""A person's console session: the browser holds a random id, the server its hash and the token."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, IdMixin, UTCDateTime, utcnow


class ConsoleSession(IdMixin, Base):
    """One sign-in: pending until the code is exchanged, then holding a reference to the token row.

    The refresh token is sealed with a key derived from the browser's cookie, so the table alone
    cannot be used to act as anyone.
    """

    __tablename__ = "console_sessions"

    session_hash: Mapped[str] = mapped_column(sa.String(64), unique=True, nullable=False)
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_id: Mapped[uuid.UUID | None] = mapped_column(sa.ForeignKey("oauth_tokens.id", ondelete="SET NULL"))
    sealed_refresh_token: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    language: Mapped[str] = mapped_column(sa.String(5), nullable=False, default="mn")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    @property
    def signed_in(self) -> bool:
        return self.user_id is not None and self.ended_at is None
