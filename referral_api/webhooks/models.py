"""Webhook subscriptions, their deliveries (one per event and subscription) and every attempt."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..db import Base, IdMixin, TimestampMixin, UTCDateTime, enum_column, utcnow
from ..events import EventType, OutboxEvent
from ..privacy import EncryptedRecordMixin, encrypted_column


class DisabledReason(StrEnum):
    GONE = "gone"  # the receiver answered 410 Gone
    BY_OWNER = "by_owner"  # PATCH {"active": false}


class FlaggedReason(StrEnum):
    DELIVERY_FAILED = "delivery_failed"  # a delivery used up every attempt


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class WebhookSubscription(IdMixin, TimestampMixin, EncryptedRecordMixin, Base):
    """An organisation's receiver: where to send which events, and the secret(s) that sign them."""

    __tablename__ = "webhook_subscriptions"

    organisation_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("organisations.id", ondelete="CASCADE"), nullable=False, index=True
    )
    url: Mapped[str] = mapped_column(sa.String(2048), nullable=False)
    # Event type values; an empty list means every event type.
    events: Mapped[list[str]] = mapped_column(sa.JSON, nullable=False, default=list)
    active: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=True)
    disabled_reason: Mapped[DisabledReason | None] = mapped_column(
        enum_column(DisabledReason, "disabled_reason"), nullable=True
    )
    flagged_reason: Mapped[FlaggedReason | None] = mapped_column(
        enum_column(FlaggedReason, "flagged_reason"), nullable=True
    )
    flagged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Signing secrets ("whsec_..."), encrypted under the record's data key.
    secret = encrypted_column("secret")
    previous_secret = encrypted_column("previous_secret")
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The last outbox number when the subscription was made: only later events are sent to it.
    starts_after_seq: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False, default=0, server_default="0"
    )

    def wants(self, event_type: EventType | str) -> bool:
        """Whether this subscription asked for events of `event_type`."""
        return not self.events or str(event_type) in self.events

    def receives(self, event: OutboxEvent) -> bool:
        """Whether `event` is for this subscription: of a type it asked for, published after it was made."""
        return event.seq > self.starts_after_seq and self.wants(event.type)

    def signing_secrets(self, now: datetime) -> list[str]:
        """The secrets to sign with at `now`: the current one, and the previous one during the overlap."""
        secrets = [self.secret]
        if self.previous_secret_expires_at is not None and now < self.previous_secret_expires_at:
            previous = self.previous_secret
            if previous:
                secrets.append(previous)
        return secrets

    def rotate(self, new_secret: str, *, overlap_until: datetime) -> None:
        """Make `new_secret` current; the current one stays valid until `overlap_until`."""
        self.previous_secret = self.secret
        self.previous_secret_expires_at = overlap_until
        self.secret = new_secret

    def disable(self, reason: DisabledReason) -> None:
        self.active = False
        self.disabled_reason = reason

    def enable(self) -> None:
        self.active = True
        self.disabled_reason = None
        self.flagged_reason = None
        self.flagged_at = None

    def flag(self, reason: FlaggedReason, *, now: datetime) -> None:
        self.flagged_reason = reason
        self.flagged_at = now


class WebhookDelivery(IdMixin, Base):
    """One outbox event for one subscription: pending until a 2xx, or failed after the last attempt."""

    __tablename__ = "webhook_deliveries"

    subscription_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("webhook_subscriptions.id", ondelete="CASCADE"), nullable=False
    )
    event_seq: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
        sa.ForeignKey("outbox_events.seq", ondelete="CASCADE"),
        nullable=False,
    )
    status: Mapped[DeliveryStatus] = mapped_column(
        enum_column(DeliveryStatus, "status"), nullable=False, default=DeliveryStatus.PENDING
    )
    attempt_count: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(sa.String(100), nullable=True)
    claim_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    event: Mapped[OutboxEvent] = relationship()
    attempts: Mapped[list[WebhookAttempt]] = relationship(
        back_populates="delivery", order_by="WebhookAttempt.attempted_at", cascade="all, delete-orphan",
        passive_deletes=True,
    )

    __table_args__ = (
        sa.UniqueConstraint("subscription_id", "event_seq"),
        sa.CheckConstraint("attempt_count >= 0", name="attempt_count_not_negative"),
        # The worker's question: the oldest pending delivery of each subscription.
        sa.Index("ix_webhook_deliveries_pending", "status", "subscription_id", "event_seq"),
    )


class WebhookAttempt(IdMixin, Base):
    """One HTTP attempt of a delivery: when, what came back, how long it took, what went wrong."""

    __tablename__ = "webhook_attempts"

    delivery_id: Mapped[uuid.UUID] = mapped_column(
        sa.Uuid, sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False, index=True
    )
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    status_code: Mapped[int | None] = mapped_column(sa.Integer, nullable=True)
    duration_ms: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    error: Mapped[str | None] = mapped_column(sa.String(500), nullable=True)
    # The start of the receiver's answer, truncated at the read cap (transport.BODY_CAP).
    response_body: Mapped[str | None] = mapped_column(sa.Text, nullable=True)

    delivery: Mapped[WebhookDelivery] = relationship(back_populates="attempts")


class WebhookCursor(Base):
    """How far fan-out has read the outbox: every event up to `last_seq` has its deliveries."""

    __tablename__ = "webhook_cursors"

    name: Mapped[str] = mapped_column(sa.String(40), primary_key=True)
    last_seq: Mapped[int] = mapped_column(
        sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False, default=0
    )
    # Since when the cursor waits at a gap in the outbox numbers (fanout.py); None when it does not.
    gap_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
