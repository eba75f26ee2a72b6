"""The audit trail: append-only, hash-chained events that hold no personal data.

An event is written unsealed (no `seq`, `prev_hash`, `hash`) and sealed when its transaction commits,
or soon after by the next sealer (see `services.py`); a sealed event never changes again.
"""

from __future__ import annotations

import hashlib
import json
import secrets
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

    # The chain position and hashes: NULL until the event is sealed, then set once (the trigger of
    # migrations 0985 and 0996 refuses any other change on PostgreSQL).
    seq: Mapped[int | None] = mapped_column(sa.BigInteger, nullable=True, unique=True)
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
    prev_hash: Mapped[str | None] = mapped_column(sa.String(64), nullable=True)
    hash: Mapped[str | None] = mapped_column(sa.String(64), nullable=True, unique=True)
    # Until sealed, what the database hashes to seal it (`make_seal_input()`); cleared by the seal. Never
    # read by the application, and not part of what the hash covers (verify recomputes from the columns).
    seal_input: Mapped[str | None] = mapped_column(sa.Text, nullable=True, deferred=True)

    __table_args__ = (
        sa.CheckConstraint("seq > 0", name="seq_positive"),
        sa.CheckConstraint(
            "(seq IS NULL AND prev_hash IS NULL AND hash IS NULL)"
            " OR (seq IS NOT NULL AND prev_hash IS NOT NULL AND hash IS NOT NULL)",
            name="sealed_whole",
        ),
        sa.Index("ix_audit_events_resource", "resource_type", "resource_id"),
        # The few events waiting for their seal, in the order they are sealed.
        sa.Index("ix_audit_events_unsealed", "occurred_at", "id", postgresql_where=sa.text("seq IS NULL"),
                 sqlite_where=sa.text("seq IS NULL")),
    )

    def canonical(self) -> bytes:
        """The canonical JSON the hash covers: every field, the previous hash included."""
        return canonical(*(getattr(self, name) for name in CANONICAL_COLUMNS))

    def compute_hash(self) -> str:
        return hashlib.sha256(self.canonical()).hexdigest()

    def make_seal_input(self) -> str:
        """`canonical()` with the chain position left open, for the database to seal: `open_seal_input`."""
        return open_seal_input(*(getattr(self, name) for name in CONTENT_COLUMNS))


# The columns `canonical()` takes, in its order (verify streams exactly these).
CANONICAL_COLUMNS = ("seq", "id", "occurred_at", "organisation_id", "client_id", "user_id", "action",
                     "resource_type", "resource_id", "outcome", "request_id", "details", "prev_hash")
# What an event says, without its chain position: the columns an event is recorded with.
CONTENT_COLUMNS = CANONICAL_COLUMNS[1:-1]


def canonical(seq: Any, id_: Any, occurred_at: datetime, organisation_id: Any, client_id: str | None,
              user_id: str | None, action: Any, resource_type: str, resource_id: str | None, outcome: Any,
              request_id: str | None, details: Any, prev_hash: str | None) -> bytes:
    """The canonical JSON of an event's fields (ids as text or UUIDs, the outcome as text or enum)."""
    doc = {
        "v": HASH_VERSION,
        "seq": int(seq),
        "id": str(id_),
        "occurred_at": occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "organisation_id": str(organisation_id) if organisation_id else None,
        "client_id": client_id,
        "user_id": user_id,
        "action": str(action),
        "resource_type": resource_type,
        "resource_id": resource_id,
        "outcome": Outcome(outcome).value,
        "request_id": request_id,
        "details": details,
        "prev_hash": prev_hash,
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def open_seal_input(*content: Any) -> str:
    """`canonical()` of an event's CONTENT_COLUMNS values with the chain position left open, for the
    database to seal (migration 0996's `audit_seal_digest`): U+0001 where the previous hash goes, with
    its quotes, and U+0002 where the seq goes. json.dumps writes no raw control character, so each
    stands exactly once."""
    seq_mark, prev_mark = secrets.randbits(60) | 1 << 60, secrets.token_hex(16)
    text = canonical(seq_mark, *content, prev_mark).decode()
    opened = text.replace(f'"prev_hash":"{prev_mark}"', '"prev_hash":\x01').replace(
        f'"seq":{seq_mark},', '"seq":\x02,')
    if opened.count("\x01") != 1 or opened.count("\x02") != 1:  # unreachable: random marks
        raise ValueError("the seal input's marks are not unique")
    return opened
