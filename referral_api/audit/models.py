"""The audit trail: append-only, hash-chained events that hold no personal data."""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from ..db import Base, IdMixin, UTCDateTime, enum_column, utcnow
from .actions import Outcome

GENESIS_HASH = "0" * 64
HASH_VERSION = 1


class AuditEvent(IdMixin, Base):
    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, unique=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, nullable=False, index=True)
    organisation_id: Mapped[uuid.UUID | None] = mapped_column(sa.Uuid, nullable=True, index=True)
    client_id: Mapped[str | None] = mapped_column(sa.String(100), nullable=True)
    user_id: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    # Free text, checked against AuditAction by record(): the list grows with every part, without migrations.
    action: Mapped[str] = mapped_column(sa.String(80), nullable=False, index=True)
    resource_type: Mapped[str] = mapped_column(sa.String(50), nullable=False)
    resource_id: Mapped[str | None] = mapped_column(sa.String(100), nullable=True)
    outcome: Mapped[Outcome] = mapped_column(enum_column(Outcome, "outcome"), nullable=False)
    request_id: Mapped[str | None] = mapped_column(sa.String(128), nullable=True)
    details: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON, nullable=True)
    prev_hash: Mapped[str] = mapped_column(sa.String(64), nullable=False)
    hash: Mapped[str] = mapped_column(sa.String(64), nullable=False, unique=True)

    __table_args__ = (
        sa.CheckConstraint("seq > 0", name="seq_positive"),
        sa.Index("ix_audit_events_resource", "resource_type", "resource_id"),
    )

    def canonical(self) -> bytes:
        """The canonical JSON the hash covers: every field, the previous hash included."""
        occurred = self.occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        doc = {
            "v": HASH_VERSION,
            "seq": int(self.seq),
            "id": str(self.id),
            "occurred_at": occurred,
            "organisation_id": str(self.organisation_id) if self.organisation_id else None,
            "client_id": self.client_id,
            "user_id": self.user_id,
            "action": str(self.action),
            "resource_type": self.resource_type,
            "resource_id": self.resource_id,
            "outcome": Outcome(self.outcome).value,
            "request_id": self.request_id,
            "details": self.details,
            "prev_hash": self.prev_hash,
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    def compute_hash(self) -> str:
        return hashlib.sha256(self.canonical()).hexdigest()
