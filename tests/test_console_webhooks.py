"""Partners' officers manage their organisation's webhook subscriptions in the console."""

from __future__ import annotations

import re
import socket
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa

from referral_api import events
from referral_api.audit.actions import AuditAction
from referral_api.audit.models import AuditEvent
from referral_api.db import utcnow
from referral_api.webhooks.models import DeliveryStatus, WebhookDelivery, WebhookSubscription
from tests import console_helpers as c
from tests.partner_helpers import partners, sign_in_as  # noqa: F401  (the fixture)

URL = "https://hooks.psp-macau.example/mgec"


@pytest.fixture(autouse=True)
def _dns(monkeypatch):
    """The receiver's name resolves to a public address from a table (no network in tests)."""

    def getaddrinfo(host, port, *args, **kwargs):
        table = {"hooks.psp-macau.example": "93.184.215.14", "intranet.psp-macau.example": "10.1.2.3"}
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (table[host], port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def test_an_officer_subscribes_sees_the_secret_once_and_rotates_it(app, session, partners):
    http = sign_in_as(app, session, partners, "police_officer")
    page = http.get("/console/partner/webhooks").get_data(as_text=True)
    token = c.csrf_of(page)
    private = http.post(
        "/console/partner/webhooks", data={"csrf_token": token, "url": "https://intranet.psp-macau.example/x"}
    )
    assert private.status_code == 422 and 'id="error-url"' in private.get_data(as_text=True)
    made = http.post(
        "/console/partner/webhooks", data={"csrf_token": token, "url": URL, "events": ["referral.accepted"]}
    )
    html = made.get_data(as_text=True)
    assert made.status_code == 201
    secret = re.search(r'id="issued-secret">([^<]+)<', html).group(1)
    assert secret.startswith("whsec_") and secret not in http.get("/console/partner/webhooks").get_data(
        as_text=True
    )
    sub = session.scalar(sa.select(WebhookSubscription).where(WebhookSubscription.url == URL))
    assert sub.organisation_id == partners.orgs["police"].id and sub.events == ["referral.accepted"]
    rotated = http.post(f"/console/partner/webhooks/{sub.id}/rotate", data={"csrf_token": token})
    new = re.search(r'id="issued-secret">([^<]+)<', rotated.get_data(as_text=True)).group(1)
    assert new != secret
    rotations = session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == AuditAction.WEBHOOK_SECRET_ROTATE)
    ).all()
    assert [e for e in rotations if e.resource_id == str(sub.id)]
    other = sign_in_as(app, session, partners, "ngo_officer")
    theirs = other.get("/console/partner/webhooks").get_data(as_text=True)
    assert URL not in theirs
    answer = other.post(f"/console/partner/webhooks/{sub.id}/rotate", data={"csrf_token": c.csrf_of(theirs)})
    assert answer.status_code == 404  # another organisation's subscription


def _failed_delivery(session, sub: WebhookSubscription) -> WebhookDelivery:
    """A delivery whose last attempt failed (the worker gave up on it)."""
    event = events.publish(session, events.EventType.CASE_STAGE_CHANGED, resource_type="case",
                           resource_id=uuid.uuid4(), data={"stage": "in_transit"})
    session.flush()
    delivery = WebhookDelivery(subscription_id=sub.id, event_seq=event.seq, status=DeliveryStatus.FAILED,
                               attempt_count=8, completed_at=utcnow() - timedelta(hours=2),
                               next_attempt_at=utcnow() - timedelta(hours=2))
    session.add(delivery)
    session.commit()
    return delivery


def test_send_again_queues_the_delivery_and_only_for_its_own_organisation(app, session, partners):
    http = sign_in_as(app, session, partners, "police_officer")
    token = c.csrf_of(http.get("/console/partner/webhooks").get_data(as_text=True))
    http.post("/console/partner/webhooks", data={"csrf_token": token, "url": URL})
    sub = session.scalar(sa.select(WebhookSubscription).where(WebhookSubscription.url == URL))
    delivery = _failed_delivery(session, sub)
    page = http.get("/console/partner/webhooks").get_data(as_text=True)
    button = f"/console/partner/webhooks/deliveries/{delivery.id}/redeliver"
    assert button in page  # the button is on the page for a failed delivery
    other = sign_in_as(app, session, partners, "ngo_officer")
    theirs = c.csrf_of(other.get("/console/partner/webhooks").get_data(as_text=True))
    assert other.post(button, data={"csrf_token": theirs}).status_code == 404
    session.expire_all()
    assert session.get(WebhookDelivery, delivery.id).status is DeliveryStatus.FAILED
    before = utcnow()
    assert http.post(button, data={"csrf_token": token}).status_code == 303
    session.expire_all()
    queued = session.get(WebhookDelivery, delivery.id)
    assert (queued.status, queued.attempt_count, queued.completed_at) == (DeliveryStatus.PENDING, 0, None)
    assert queued.next_attempt_at >= before - timedelta(seconds=1)  # the worker picks it up now
    audited = session.scalars(sa.select(AuditEvent).where(
        AuditEvent.action == AuditAction.WEBHOOK_DELIVERY_REDELIVER,
        AuditEvent.resource_id == str(delivery.id),
    )).all()
    assert [e.user_id for e in audited] == [str(partners.people["police_officer"][0].id)]
    pending = http.get("/console/partner/webhooks").get_data(as_text=True)
    assert button not in pending  # a pending delivery has no button: it will be tried by itself
    assert http.post(button, data={"csrf_token": token}).status_code == 409
