"""Use cases on webhook subscriptions: create, read, change, delete, rotate the secret, ping, redeliver.

Every function is scoped to `actor.organisation_id`: another organisation's subscription or delivery
is NotFound, as if it did not exist. Changes are audited and committed once, at the end.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, selectinload

from .. import outbound
from ..audit import AuditAction, record
from ..db import commit, utcnow
from ..errors import Conflict, InvalidPayload, NotFound, require_current
from ..events import EventType, OutboxEvent, publish
from ..paging import cursor_int, cursor_time, cursor_uuid, decode_cursor, page
from ..privacy import shred
from . import signing
from .fanout import PING_RESOURCE
from .models import DeliveryStatus, DisabledReason, WebhookDelivery, WebhookSubscription
from .views import etag

RESOURCE = "webhook_subscription"
DELIVERY_RESOURCE = "webhook_delivery"
SUBSCRIBABLE = frozenset(e.value for e in EventType) - {EventType.WEBHOOK_PING.value}


def check_url(url: str, *, allow_http_loopback: bool) -> None:
    """Refuse a receiver URL early (422 naming `url`); the delivery-time check is the one that counts."""
    try:
        outbound.vet(url, allow_http_loopback=allow_http_loopback)
    except outbound.RefusedAddress as exc:
        raise InvalidPayload("The receiver URL is not allowed.", errors={"url": [str(exc)]}) from None


def _check_events(events: list[str]) -> list[str]:
    unknown = sorted(set(events) - SUBSCRIBABLE)
    if unknown:
        raise InvalidPayload("Unknown event types.", errors={"events": [f"unknown: {', '.join(unknown)}"]})
    return sorted(set(events))


def _audit(session: Session, actor: Any, action: AuditAction, resource_id: uuid.UUID,
           details: dict[str, Any] | None = None, resource_type: str = RESOURCE) -> None:
    record(session, actor=actor, action=action, resource_type=resource_type, resource_id=resource_id,
           details=details)


def create(session: Session, *, actor: Any, url: str, events: list[str] | None,
           allow_http_loopback: bool) -> tuple[WebhookSubscription, str]:
    """A new subscription of the actor's organisation; returns it and its secret (shown once)."""
    check_url(url, allow_http_loopback=allow_http_loopback)
    secret = signing.new_secret()
    # Events already in the outbox happened before the subscription: they are not sent to it.
    last_seq = session.scalar(sa.select(sa.func.coalesce(sa.func.max(OutboxEvent.seq), 0)))
    sub = WebhookSubscription(id=uuid.uuid4(), organisation_id=actor.organisation_id, url=url,
                              events=_check_events(events or []), active=True, starts_after_seq=last_seq)
    sub.secret = secret
    session.add(sub)
    _audit(session, actor, AuditAction.WEBHOOK_SUBSCRIPTION_CREATE, sub.id, {"events": sub.events})
    commit(session)
    return sub, secret


def get(session: Session, *, actor: Any, subscription_id: uuid.UUID,
        if_match: str | None = None) -> WebhookSubscription:
    """The actor's organisation's subscription, or NotFound; a stale `if_match` is PreconditionFailed."""
    sub = session.get(WebhookSubscription, subscription_id, populate_existing=True)
    if sub is None or sub.organisation_id != actor.organisation_id:
        raise NotFound("No such webhook subscription.")
    require_current(if_match, etag(sub), what="subscription")
    return sub


def list_for(session: Session, *, actor: Any, limit: int, cursor: str | None) -> tuple[list, str | None]:
    """A page of the actor's organisation's subscriptions, oldest first (keyset on created_at, id)."""
    query = sa.select(WebhookSubscription).where(WebhookSubscription.organisation_id == actor.organisation_id)
    if cursor:
        created, last_id = decode_cursor(cursor, size=2)
        after = (cursor_time(created), cursor_uuid(last_id))
        query = query.where(sa.tuple_(WebhookSubscription.created_at, WebhookSubscription.id) > after)
    rows = list(session.scalars(query.order_by(WebhookSubscription.created_at, WebhookSubscription.id)
                                .limit(limit + 1)))
    return page(rows, limit=limit, key=lambda s: [s.created_at.isoformat(), str(s.id)])


def update(session: Session, *, actor: Any, subscription_id: uuid.UUID, changes: dict[str, Any],
           allow_http_loopback: bool, if_match: str | None = None) -> WebhookSubscription:
    """Change url, events or active; re-activating clears the disabled and flagged marks."""
    sub = get(session, actor=actor, subscription_id=subscription_id, if_match=if_match)
    if "url" in changes:
        check_url(changes["url"], allow_http_loopback=allow_http_loopback)
        sub.url = changes["url"]
    if "events" in changes:
        sub.events = _check_events(changes["events"] or [])
    if "active" in changes:
        if changes["active"]:
            sub.enable()
        elif sub.active:
            sub.disable(DisabledReason.BY_OWNER)
    _audit(session, actor, AuditAction.WEBHOOK_SUBSCRIPTION_UPDATE, sub.id, {"fields": sorted(changes)})
    commit(session)
    return sub


def delete(session: Session, *, actor: Any, subscription_id: uuid.UUID, if_match: str | None = None) -> None:
    """Delete a subscription with its deliveries; its secrets are crypto-shredded."""
    sub = get(session, actor=actor, subscription_id=subscription_id, if_match=if_match)
    data_key_id = sub.data_key_id
    session.delete(sub)
    if data_key_id is not None:
        shred(session, data_key_id)
    _audit(session, actor, AuditAction.WEBHOOK_SUBSCRIPTION_DELETE, subscription_id)
    commit(session)


def rotate_secret(session: Session, *, actor: Any, subscription_id: uuid.UUID, overlap_hours: int,
                  now: datetime | None = None) -> tuple[WebhookSubscription, str]:
    """A new secret (returned, shown once); the old one keeps signing for `overlap_hours`."""
    sub = get(session, actor=actor, subscription_id=subscription_id)
    secret = signing.new_secret()
    now = now or utcnow()
    sub.rotate(secret, overlap_until=now + timedelta(hours=overlap_hours))
    _audit(session, actor, AuditAction.WEBHOOK_SECRET_ROTATE, sub.id,
           {"previous_valid_until": sub.previous_secret_expires_at.isoformat()})
    commit(session)
    return sub, secret


def ping(session: Session, *, actor: Any, subscription_id: uuid.UUID) -> uuid.UUID:
    """Queue a `webhook.ping` for this subscription only; returns the event id (the webhook-id)."""
    sub = get(session, actor=actor, subscription_id=subscription_id)
    if not sub.active:
        raise Conflict("The subscription is not active; activate it before pinging.")
    event = publish(session, EventType.WEBHOOK_PING, resource_type=PING_RESOURCE, resource_id=sub.id, data={})
    _audit(session, actor, AuditAction.WEBHOOK_SUBSCRIPTION_PING, sub.id)
    commit(session)
    return event.id


def list_deliveries(session: Session, *, actor: Any, subscription_id: uuid.UUID, limit: int,
                    cursor: str | None) -> tuple[list[WebhookDelivery], str | None]:
    """A page of a subscription's deliveries with their attempts, newest event first."""
    sub = get(session, actor=actor, subscription_id=subscription_id)
    query = (sa.select(WebhookDelivery).where(WebhookDelivery.subscription_id == sub.id)
             .options(selectinload(WebhookDelivery.event), selectinload(WebhookDelivery.attempts)))
    if cursor:
        (last_seq,) = decode_cursor(cursor, size=1)
        query = query.where(WebhookDelivery.event_seq < cursor_int(last_seq))
    rows = list(session.scalars(query.order_by(WebhookDelivery.event_seq.desc()).limit(limit + 1)))
    return page(rows, limit=limit, key=lambda d: [d.event_seq])


def get_delivery(session: Session, *, actor: Any, delivery_id: uuid.UUID,
                 for_update: bool = False) -> WebhookDelivery:
    """A delivery of one of the actor's organisation's subscriptions, or NotFound."""
    delivery = session.get(WebhookDelivery, delivery_id, with_for_update=for_update, populate_existing=True)
    if delivery is None:
        raise NotFound("No such webhook delivery.")
    get(session, actor=actor, subscription_id=delivery.subscription_id)  # NotFound when not the actor's
    return delivery


def redeliver(session: Session, *, actor: Any, delivery_id: uuid.UUID,
              now: datetime | None = None) -> WebhookDelivery:
    """Send a delivery again (same webhook-id), in its place in the subscription's order."""
    # Locked: the worker may be recording an attempt of it right now.
    delivery = get_delivery(session, actor=actor, delivery_id=delivery_id, for_update=True)
    if delivery.status is DeliveryStatus.PENDING:
        raise Conflict("The delivery is still pending; it will be attempted again by itself.")
    delivery.status = DeliveryStatus.PENDING
    delivery.attempt_count = 0
    delivery.next_attempt_at = now or utcnow()
    delivery.completed_at = None
    delivery.claimed_by = None
    delivery.claim_expires_at = None
    _audit(session, actor, AuditAction.WEBHOOK_DELIVERY_REDELIVER, delivery.id,
           {"subscription_id": str(delivery.subscription_id)}, resource_type=DELIVERY_RESOURCE)
    commit(session)
    return delivery
