"""Delivering one delivery: claim it (commit), send it (no transaction open), record the attempt (commit).

Order per subscription: only the oldest pending delivery of a subscription can be claimed, so a later
event waits while an earlier one is being sent or waits for its next attempt. Several workers on
PostgreSQL claim with FOR UPDATE SKIP LOCKED; a claim carries an expiry, so the delivery of a worker
that died mid-send is claimed again once it expires (at least once: the receiver dedupes on
`webhook-id`).
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from ..audit import AuditAction, record
from ..organisations.models import Organisation, OrganisationStatus
from . import schedule, signing, transport
from .models import (
    DeliveryStatus,
    DisabledReason,
    FlaggedReason,
    WebhookAttempt,
    WebhookDelivery,
    WebhookSubscription,
)

Sender = Callable[..., transport.Outcome]
log = logging.getLogger(__name__)


def claim(session: Session, *, worker_id: str, now: datetime, claim_seconds: int) -> uuid.UUID | None:
    """Claim the next due delivery (the oldest pending one of its subscription) and commit."""
    earlier = aliased(WebhookDelivery)
    an_earlier_one_pending = (
        sa.select(earlier.id)
        .where(earlier.subscription_id == WebhookDelivery.subscription_id,
               earlier.status == DeliveryStatus.PENDING,
               earlier.event_seq < WebhookDelivery.event_seq)
        .exists()
    )
    query = (
        sa.select(WebhookDelivery)
        .join(WebhookSubscription, WebhookSubscription.id == WebhookDelivery.subscription_id)
        .join(Organisation, Organisation.id == WebhookSubscription.organisation_id)
        .where(
            WebhookDelivery.status == DeliveryStatus.PENDING,
            WebhookDelivery.next_attempt_at <= now,
            sa.or_(WebhookDelivery.claim_expires_at.is_(None), WebhookDelivery.claim_expires_at <= now),
            WebhookSubscription.active.is_(True),
            Organisation.status == OrganisationStatus.ACTIVE,
            ~an_earlier_one_pending,
        )
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.event_seq)
        .limit(1)
        .with_for_update(of=WebhookDelivery, skip_locked=True)
        .execution_options(populate_existing=True)
    )
    delivery = session.scalar(query)
    if delivery is None:
        session.rollback()
        return None
    delivery.claimed_by = worker_id
    delivery.claim_expires_at = now + timedelta(seconds=claim_seconds)
    session.commit()
    return delivery.id


def prepare(session: Session, delivery_id: uuid.UUID, *, now: datetime) -> tuple[str, bytes, dict[str, str]]:
    """The URL, body and signed headers of one attempt at `now` (ends the read transaction)."""
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        raise LookupError(delivery_id)
    sub = session.get(WebhookSubscription, delivery.subscription_id)
    body = signing.encode_body(delivery.event.body())
    headers = signing.headers(sub.signing_secrets(now), msg_id=str(delivery.event.id),
                              timestamp=int(now.timestamp()), body=body)
    url = sub.url
    session.rollback()  # no transaction stays open while the receiver is called
    return url, body, headers


def record_attempt(session: Session, delivery_id: uuid.UUID, outcome: transport.Outcome, *, worker_id: str,
                   attempted_at: datetime, now: datetime, rng: random.Random) -> DeliveryStatus | None:
    """Keep the attempt and move the delivery on: succeeded, retry later, or failed; commit."""
    delivery = session.scalar(
        sa.select(WebhookDelivery).where(WebhookDelivery.id == delivery_id).with_for_update()
        .execution_options(populate_existing=True)
    )
    if delivery is None:  # the subscription was deleted meanwhile
        session.rollback()
        return None
    session.add(WebhookAttempt(
        id=uuid.uuid4(), delivery_id=delivery.id, attempted_at=attempted_at, status_code=outcome.status_code,
        duration_ms=outcome.duration_ms, error=(outcome.error or None) and outcome.error[:500],
        response_body=(outcome.body or None) and outcome.body[:transport.BODY_CAP],
    ))
    if delivery.claimed_by != worker_id or delivery.status is not DeliveryStatus.PENDING:
        # Our claim expired and another worker has it (or it was redelivered): keep the attempt only.
        session.commit()
        return delivery.status
    delivery.claimed_by = None
    delivery.claim_expires_at = None
    delivery.attempt_count += 1
    sub = session.get(WebhookSubscription, delivery.subscription_id)
    if outcome.succeeded:
        delivery.status = DeliveryStatus.SUCCEEDED
        delivery.completed_at = now
    elif outcome.status_code == 410:
        delivery.status = DeliveryStatus.FAILED
        delivery.completed_at = now
        sub.disable(DisabledReason.GONE)
        record(session, actor=None, action=AuditAction.WEBHOOK_SUBSCRIPTION_DISABLE,
               resource_type="webhook_subscription", resource_id=sub.id,
               details={"reason": DisabledReason.GONE.value, "delivery_id": str(delivery.id)})
    else:
        when = schedule.next_attempt(delivery.attempt_count, now=now, retry_after_header=outcome.retry_after,
                                     rng=rng)
        if when is None:
            delivery.status = DeliveryStatus.FAILED
            delivery.completed_at = now
            sub.flag(FlaggedReason.DELIVERY_FAILED, now=now)
            record(session, actor=None, action=AuditAction.WEBHOOK_SUBSCRIPTION_FLAG,
                   resource_type="webhook_subscription", resource_id=sub.id,
                   details={"reason": FlaggedReason.DELIVERY_FAILED.value, "delivery_id": str(delivery.id)})
        else:
            delivery.next_attempt_at = when
    status = delivery.status
    session.commit()
    return status


def deliver(session: Session, delivery_id: uuid.UUID, *, worker_id: str, clock: Callable[[], datetime],
            rng: random.Random, allow_http_loopback: bool,
            send: Sender = transport.post) -> DeliveryStatus | None:
    """One attempt of a claimed delivery: prepare, send outside any transaction, record.

    An attempt always counts: should sending or recording raise unexpectedly (a bug, never what a
    receiver may do), the attempt is recorded as failed instead, so the delivery still moves on to
    its next attempt or to `failed`, and is not sent again at every claim expiry without end.
    """
    attempted_at = clock()
    try:
        url, body, headers = prepare(session, delivery_id, now=attempted_at)
    except LookupError:
        return None
    try:
        outcome = send(url, body=body, headers=headers, allow_http_loopback=allow_http_loopback)
    except Exception as exc:  # noqa: BLE001  transport.post never raises; another sender might
        outcome = _unexpected(exc, delivery_id, "sending")
    try:
        return record_attempt(session, delivery_id, outcome, worker_id=worker_id, attempted_at=attempted_at,
                              now=clock(), rng=rng)
    except Exception as exc:  # noqa: BLE001  a database error raises again below: the claim expires
        session.rollback()
        failed = _unexpected(exc, delivery_id, "recording", after=outcome)
        return record_attempt(session, delivery_id, failed, worker_id=worker_id, attempted_at=attempted_at,
                              now=clock(), rng=rng)


def _unexpected(exc: Exception, delivery_id: uuid.UUID, step: str,
                after: transport.Outcome | None = None) -> transport.Outcome:
    """A failed attempt for an exception in `step` (after the receiver's answer `after`, if any); logged
    and recorded by the exception's type only (its message might hold the URL, which may hold a token)."""
    name = type(exc).__name__
    log.error("webhook attempt failed unexpectedly: recorded as a failed attempt",
              extra={"delivery_id": str(delivery_id), "step": step, "error": name})
    error = f"internal error {step}: {name}"
    if after is not None and after.error:
        error = f"{error} ({after.error})"
    return transport.Outcome(status_code=None, duration_ms=after.duration_ms if after else 0, error=error)


def release_claims(session: Session, *, worker_id: str) -> int:
    """Give up this worker's claims (graceful stop), so another worker takes them at once."""
    result = session.execute(
        sa.update(WebhookDelivery)
        .where(WebhookDelivery.claimed_by == worker_id, WebhookDelivery.status == DeliveryStatus.PENDING)
        .values(claimed_by=None, claim_expires_at=None)
    )
    session.commit()
    return result.rowcount or 0
