"""Partners' officers manage their organisation's webhook subscriptions in the console."""

from __future__ import annotations

import re
import socket

import pytest
import sqlalchemy as sa

from referral_api.audit.actions import AuditAction
from referral_api.audit.models import AuditEvent
from referral_api.webhooks.models import WebhookSubscription
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
