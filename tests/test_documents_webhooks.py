"""`document.added` reaches exactly the organisations the document routes show the document to.

The webhook audience of a document is MGEC and the partners that pass the routes' own checks: the
parent's view (a referral's status-only view shows no documents) and, for personal kinds, the
person's consent (the referring partner also sees what it sent itself on a referral). Nobody else
may even learn that a document of that kind was added.
"""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from referral_api.db import utcnow
from referral_api.webhooks import fanout
from referral_api.webhooks import services as webhook_services
from referral_api.webhooks import visibility as webhook_visibility
from referral_api.webhooks.models import WebhookDelivery
from tests.case_helpers import add_participant, open_case
from tests.document_helpers import pdf_bytes, upload_ok
from tests.referral_data import referral_body
from tests.webhook_helpers import Actor, align_cursor
from tests.world import ACTORS

CALLERS = ("hotline", "police", "embassy", "iom", "ngo")
CONSENTS = {"embassy_iom": ["embassy", "iom"], "police": ["police"], "nobody": []}


def _documents(client, world, share_with) -> dict[str, str]:
    """A case (the police's accepted referral, with the embassy taking part), that accepted referral
    (status only for the police now) and an open referral of the police: documents of every sort."""
    case_id = open_case(client, world, consent__share_with=share_with)
    add_participant(client, world, case_id, "embassy", "embassy")
    listed = client.get("/api/v1/referrals", headers=world.headers("police")).get_json()["items"]
    accepted_id = next(r["id"] for r in listed if r["case_id"] == case_id)
    body = referral_body(external_reference="MO-PSP-2026-0501", consent__share_with=share_with)
    submitted = client.post("/api/v1/referrals", json=body, headers=world.headers("police"))
    assert submitted.status_code == 201, submitted.get_json()
    open_id = submitted.get_json()["id"]

    def add(parent, parent_id, kind, who="coordinator"):
        return upload_ok(client, world, parent, parent_id, pdf_bytes(), kind=kind, who=who)["id"]

    return {
        "case_passport": add("case", case_id, "passport_copy"),
        "case_medical": add("case", case_id, "medical"),
        "case_report": add("case", case_id, "police_report"),
        "open_referral_own_passport": add("referral", open_id, "passport_copy", who="police"),
        "open_referral_medical": add("referral", open_id, "medical"),
        "open_referral_consent_form": add("referral", open_id, "consent_form"),
        "accepted_referral_medical": add("referral", accepted_id, "medical"),
        "accepted_referral_consent_form": add("referral", accepted_id, "consent_form"),
    }


@pytest.mark.parametrize("consent", CONSENTS)
def test_the_webhook_audience_of_a_document_is_who_may_download_it(client, world, session, consent):
    documents = _documents(client, world, CONSENTS[consent])
    for name, document_id in documents.items():
        downloads = {
            world.orgs[ACTORS[who][0]].id for who in CALLERS
            if client.get(f"/api/v1/documents/{document_id}/content",
                          headers=world.headers(who)).status_code == 200
        }
        assert world.orgs["mgec"].id in downloads, name
        audience = webhook_visibility.audience(session, "document", uuid.UUID(document_id))
        assert audience == downloads, name


def test_a_missing_document_reaches_nobody(session):
    assert webhook_visibility.audience(session, "document", uuid.uuid4()) == set()


def _subscribe(session, world, who: str):
    sub, _ = webhook_services.create(session, actor=Actor(organisation_id=world.orgs[who].id),
                                     url="http://127.0.0.1:9/hook", events=["document.added"],
                                     allow_http_loopback=True)
    return sub.id


def _kinds_delivered(session, subscription_id) -> list[str]:
    rows = session.scalars(sa.select(WebhookDelivery)
                           .where(WebhookDelivery.subscription_id == subscription_id)
                           .order_by(WebhookDelivery.event_seq)).all()
    return [d.event.payload["kind"] for d in rows]


def test_document_added_is_sent_only_where_the_document_may_be_seen(app, client, world, session):
    with app.app_context():
        # The person consented to embassies only; the police referred, so the police take part too.
        case_id = open_case(client, world, consent__share_with=["embassy"])
        add_participant(client, world, case_id, "embassy", "embassy")
        listed = client.get("/api/v1/referrals", headers=world.headers("police")).get_json()["items"]
        accepted_id = next(r["id"] for r in listed if r["case_id"] == case_id)
        align_cursor(session)
        subs = {who: _subscribe(session, world, who) for who in ("mgec", "police", "embassy")}
        for kind in ("medical", "police_report"):
            upload_ok(client, world, "case", case_id, pdf_bytes(), kind=kind)
        upload_ok(client, world, "referral", accepted_id, pdf_bytes(), kind="consent_form")
        fanout.fan_out(session, now=utcnow())
        got = {who: _kinds_delivered(session, sub) for who, sub in subs.items()}
        session.rollback()
    assert got == {
        "mgec": ["medical", "police_report", "consent_form"],
        "police": ["police_report"],  # not the medical report (consent), nor the status-only referral's
        "embassy": ["medical", "police_report"],  # the referral is not the embassy's to see
    }
