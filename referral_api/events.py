"""The outbox: thin domain events written in the caller's transaction; webhooks/ delivers them later.

A payload carries only what a receiver needs to fetch the record with its own token: ids,
references, the new state and times. Anything else is refused at publish time, so personal data
cannot slip into a webhook by accident.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column

from .db import Base, UTCDateTime, enum_column, utcnow


class EventType(StrEnum):
    REFERRAL_SUBMITTED = "referral.submitted"
    REFERRAL_UNDER_REVIEW = "referral.under_review"
    REFERRAL_INFORMATION_REQUESTED = "referral.information_requested"
    REFERRAL_INFORMATION_PROVIDED = "referral.information_provided"
    REFERRAL_ACCEPTED = "referral.accepted"
    REFERRAL_REJECTED = "referral.rejected"
    REFERRAL_WITHDRAWN = "referral.withdrawn"
    CASE_STAGE_CHANGED = "case.stage_changed"
    CASE_ON_HOLD = "case.on_hold"
    CASE_RESUMED = "case.resumed"
    CASE_CLOSED = "case.closed"
    CASE_PARTICIPANT_ADDED = "case.participant_added"
    CASE_PARTICIPANT_REMOVED = "case.participant_removed"
    CASE_CONSENT_CHANGED = "case.consent_changed"
    SERVICE_UPDATED = "service.updated"
    REFERRAL_OVERDUE = "referral.overdue"
    CASE_OVERDUE = "case.overdue"
    CASE_FOLLOW_UP_DUE = "case.follow_up_due"
    DOCUMENT_ADDED = "document.added"
    WEBHOOK_PING = "webhook.ping"


# The only keys a payload may carry: identifiers, references, states and times. Never personal data.
THIN_KEYS = frozenset(
    {
        "id", "reference", "external_reference", "status", "previous_status", "stage", "previous_stage",
        "on_hold", "referral_id", "referral_reference", "case_id", "case_reference", "service_id", "kind",
        "organisation_id", "role", "reason_code", "occurred_at",
        "deadline", "level", "due_at", "late_by_seconds",
    }
)
_THIN_VALUE_TYPES = (str, int, bool, uuid.UUID, datetime, date, type(None))


class OutboxEvent(Base):
    __tablename__ = "outbox_events"

    # Integer key: the order of events is the order of this sequence.
    seq: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, unique=True, nullable=False, default=uuid.uuid4)
    type: Mapped[EventType] = mapped_column(enum_column(EventType, "type"), nullable=False)
    resource_type: Mapped[str] = mapped_column(sa.String(40), nullable=False)
    resource_id: Mapped[uuid.UUID] = mapped_column(sa.Uuid, nullable=False, index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(sa.JSON, nullable=False)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)

    def body(self) -> dict[str, Any]:
        """The JSON document a receiver gets: type, event id, time and the thin data."""
        return {
            "type": self.type.value,
            "id": str(self.id),
            "timestamp": self.occurred_at.isoformat().replace("+00:00", "Z"),
            "data": self.payload,
        }


def _thin(data: dict[str, Any]) -> dict[str, Any]:
    extra = set(data) - THIN_KEYS
    if extra:
        raise ValueError(f"outbox payloads are thin; refused keys: {', '.join(sorted(extra))}")
    out: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(value, _THIN_VALUE_TYPES):
            raise ValueError(f"outbox payload value of {key!r} must be a scalar, got {type(value).__name__}")
        if isinstance(value, datetime):
            value = value.isoformat().replace("+00:00", "Z")
        elif isinstance(value, date):
            value = value.isoformat()
        elif isinstance(value, uuid.UUID):
            value = str(value)
        out[key] = value
    return out


def _row(type_: EventType, resource_type: str, resource_id: uuid.UUID, data: dict[str, Any],
         occurred_at: datetime | None) -> dict[str, Any]:
    """The outbox row of a thin event (the resource's id and what `data` adds, no personal data)."""
    return {
        "type": type_,
        "resource_type": resource_type,
        "resource_id": resource_id,
        "payload": _thin({"id": str(resource_id), **data}),
        "occurred_at": occurred_at or utcnow(),
    }


def publish(
    session: Session,
    type_: EventType,
    *,
    resource_type: str,
    resource_id: uuid.UUID,
    data: dict[str, Any],
    occurred_at: datetime | None = None,
) -> OutboxEvent:
    """Add a thin event to the outbox in the caller's transaction (the caller commits)."""
    event = OutboxEvent(**_row(type_, resource_type, resource_id, data, occurred_at))
    session.add(event)
    return event


_INSERT = OutboxEvent.__table__.insert().inline()  # inline: no implicit RETURNING of the sequence number


def publish_row(
    session: Session,
    type_: EventType,
    *,
    resource_type: str,
    resource_id: uuid.UUID,
    data: dict[str, Any],
    occurred_at: datetime | None = None,
) -> None:
    """`publish()` as one INSERT on the session's connection, for a caller that does not need the event
    back: nothing to read back (no RETURNING of its sequence number), so it may travel in a pipeline
    (`db.pipelined`) with the change it announces."""
    row = _row(type_, resource_type, resource_id, data, occurred_at)
    session.connection().execute(_INSERT, {"id": uuid.uuid4(), **row})
