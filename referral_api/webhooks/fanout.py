"""Fan-out: each outbox event becomes one delivery per matching subscription allowed to see its record.

A cursor row (`webhook_cursors`, name "fanout") says how far the outbox has been read; it is
advanced in the same transaction as the deliveries it creates, and locked (PostgreSQL, SKIP
LOCKED) so that of several workers one fans out at a time while the others deliver.

Gaps: on PostgreSQL a transaction may take an outbox number and commit after a later one did (or
roll back, leaving the number unused for good). The cursor stops at a gap and waits for it to fill.
It passes the gap at once when no other transaction is writing to the outbox (no other backend holds
a RowExclusiveLock on it: whoever took the missing number has ended, and its event, not there, was
rolled back); otherwise it passes it GAP_GRACE after it first stopped there. Only an event whose
transaction stayed open that long after publishing, while others kept writing, could be skipped:
services publish at their end, just before their commit. SQLite writes one transaction at a time,
so it has no such gaps.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from ..events import EventType, OutboxEvent
from ..organisations.models import Organisation, OrganisationStatus
from . import visibility
from .models import WebhookCursor, WebhookDelivery, WebhookSubscription

CURSOR = "fanout"
BATCH = 500
GAP_GRACE = timedelta(seconds=60)
PING_RESOURCE = "webhook_subscription"


def _lock_cursor(session: Session) -> WebhookCursor | None:
    """The cursor row, locked until commit; None while another worker holds it."""
    query = sa.select(WebhookCursor).where(WebhookCursor.name == CURSOR).with_for_update(skip_locked=True)
    cursor = session.scalar(query.execution_options(populate_existing=True))
    if cursor is None and session.get(WebhookCursor, CURSOR) is None:
        # The migration inserts the row; a database made otherwise gets it here.
        cursor = WebhookCursor(name=CURSOR, last_seq=0)
        session.add(cursor)
        session.flush()  # take the row (and its lock) before reading the outbox
    return cursor


def _subscriptions_by_org(session: Session) -> tuple[dict[uuid.UUID, list[WebhookSubscription]],
                                                     dict[uuid.UUID, WebhookSubscription]]:
    subs = session.scalars(
        sa.select(WebhookSubscription)
        .join(Organisation, Organisation.id == WebhookSubscription.organisation_id)
        .where(WebhookSubscription.active.is_(True), Organisation.status == OrganisationStatus.ACTIVE)
    ).all()
    by_org: dict[uuid.UUID, list[WebhookSubscription]] = defaultdict(list)
    for sub in subs:
        by_org[sub.organisation_id].append(sub)
    return by_org, {s.id: s for s in subs}


def recipients(session: Session, event: OutboxEvent, by_org: dict[uuid.UUID, list[WebhookSubscription]],
               by_id: dict[uuid.UUID, WebhookSubscription]) -> list[WebhookSubscription]:
    """The active subscriptions that get `event`."""
    if event.type is EventType.WEBHOOK_PING:
        if event.resource_type != PING_RESOURCE:
            return []
        sub = by_id.get(event.resource_id)
        return [sub] if sub is not None and event.seq > sub.starts_after_seq else []
    audience = visibility.event_audience(session, event)
    return [sub for org in audience for sub in by_org.get(org, []) if sub.receives(event)]


def _gap_settled(session: Session, *, after: int, before: int) -> bool:
    """Whether the numbers between `after` and `before` are gone for good (PostgreSQL only)."""
    if session.get_bind().dialect.name != "postgresql":
        return False
    writers = session.scalar(sa.text(
        "SELECT count(*) FROM pg_locks WHERE relation = 'outbox_events'::regclass "
        "AND mode = 'RowExclusiveLock' AND pid <> pg_backend_pid()"))
    if writers:
        return False
    # Every number below `before` was taken before we read `before`, by a transaction that has now
    # ended: if its event is not visible now (a new snapshot), it was rolled back.
    late = session.scalar(sa.select(sa.func.count()).select_from(OutboxEvent)
                          .where(OutboxEvent.seq > after, OutboxEvent.seq < before))
    return not late


def fan_out(session: Session, *, now: datetime, batch: int = BATCH) -> int:
    """Create the deliveries of the events after the cursor and commit; returns events passed."""
    cursor = _lock_cursor(session)
    if cursor is None:
        session.rollback()
        return 0
    events = session.scalars(
        sa.select(OutboxEvent).where(OutboxEvent.seq > cursor.last_seq).order_by(OutboxEvent.seq).limit(batch)
    ).all()
    if not events:
        session.rollback()
        return 0
    by_org, by_id = _subscriptions_by_org(session)
    passed = 0
    expected = cursor.last_seq + 1
    for event in events:
        if event.seq != expected:
            if passed:
                break  # the next call looks at the gap afresh
            if not _gap_settled(session, after=cursor.last_seq, before=event.seq) and (
                cursor.gap_since is None or now - cursor.gap_since < GAP_GRACE
            ):
                # Wait: an earlier event may still commit. The wait starts now (or at the next call).
                break
        for sub in recipients(session, event, by_org, by_id):
            session.add(WebhookDelivery(id=uuid.uuid4(), subscription_id=sub.id, event_seq=event.seq,
                                        next_attempt_at=now, created_at=now))
        cursor.last_seq = event.seq
        cursor.gap_since = None
        expected = event.seq + 1
        passed += 1
    if not passed and cursor.gap_since is None:
        cursor.gap_since = now
    cursor.updated_at = now
    session.commit()
    return passed
